"""`redis.url`, read: a plain Redis URL, a Sentinel set or a Redis Cluster. Pure: parsing only, no I/O.

Accepted forms (docs/operations.md, "Redis Sentinel"):

    redis://[[user]:password@]host[:port][/db]          one Redis (redis-py's own form; rediss:// for TLS)
    unix://[[user]:password@]/path/to/socket[?db=N]
    redis+sentinel://[[user]:password@]host:port[,host:port...]/service_name[/db][?sentinel_password=...]
    redis+cluster://[[user]:password@]host:port[,host:port...]          (docs/operations.md, "Redis Cluster")

In the Sentinel form the hosts are the sentinels (every one with its port: a sentinel's port is not
the Redis default), `service_name` is the name the sentinels monitor (`sentinel monitor NAME ...`),
the user and password are the Redis servers' (the primary's and replicas'), and the one option,
`sentinel_password`, is the sentinels' own `requirepass` when they have one. An IPv6 host is written
in brackets: `[::1]:26379`.

In the Cluster form the hosts are seed nodes (any few of the cluster's nodes, each with its port): the
client asks them for the cluster's map of slots and finds every other node from it. A cluster has only
database 0, and takes no options.

Every malformed URL raises RedisUrlError naming the part that is wrong.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

PLAIN_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_OPTIONS = ("sentinel_password",)
CLUSTER_SCHEME = "redis+cluster"


class RedisUrlError(ValueError):
    """A malformed redis.url; the message names the wrong part."""


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: list[tuple[str, int]]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        """The set as an operator writes it, without passwords."""
        hosts = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.sentinels)
        return f"service {self.service!r} via sentinels {hosts}"


@dataclass(frozen=True)
class ClusterTarget:
    seeds: list[tuple[str, int]]
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        """The seeds as an operator writes them, without the password."""
        return "cluster seeds " + ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.seeds)


@dataclass(frozen=True)
class PlainTarget:
    url: str


Target = PlainTarget | SentinelTarget | ClusterTarget


def parse(url: str) -> Target:
    """Read `url`; raise RedisUrlError (naming the wrong part) when it is malformed."""
    url = url.strip()
    if "://" not in url:
        raise RedisUrlError(f"{_shown(url)} is not a URL: expected redis://host:port, unix:///path or "
                            "redis+sentinel://host:port,host:port/service_name or redis+cluster://host:port,host:port")
    scheme = url.split("://", 1)[0].lower()
    if scheme == SENTINEL_SCHEME:
        return _sentinel(url)
    if scheme == CLUSTER_SCHEME:
        return _cluster(url)
    if scheme not in PLAIN_SCHEMES:
        raise RedisUrlError(f"unknown scheme {scheme + '://'!r}: use redis://, rediss://, unix://, "
                            "redis+sentinel:// or redis+cluster://")
    _plain(url, scheme)
    return PlainTarget(url)


def _shown(url: str) -> str:
    return repr(url if len(url) <= 60 else url[:57] + "...")


def _plain(url: str, scheme: str) -> None:
    parts = urlsplit(url)
    if scheme == "unix":
        if not parts.path:
            raise RedisUrlError("unix:// needs the socket's path, e.g. unix:///run/redis/redis.sock")
        return
    if "," in parts.netloc:
        raise RedisUrlError(f"{scheme}:// takes one host; several hosts are the Sentinel form "
                            "redis+sentinel://host:port,host:port/service_name or the Cluster form "
                            "redis+cluster://host:port,host:port")
    if not parts.hostname:
        raise RedisUrlError(f"{scheme}:// needs a host, e.g. {scheme}://127.0.0.1:6379")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise RedisUrlError(f"bad port in {parts.netloc.rsplit('@', 1)[-1]!r}: a number 1-65535") from None
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise RedisUrlError(f"bad database number {db!r} after the host: a number such as /0")


def _sentinel(url: str) -> SentinelTarget:
    rest = url.split("://", 1)[1]
    rest, _, query = rest.partition("?")
    if "#" in query or "#" in rest:
        raise RedisUrlError("a fragment ('#...') has no meaning in redis.url")
    netloc, slash, path = rest.partition("/")
    username, password, netloc = _auth(netloc)
    if not netloc:
        raise RedisUrlError("redis+sentinel:// names no sentinel: list them as host:port,host:port")
    sentinels = [_host_port(item, i) for i, item in enumerate(netloc.split(","), 1)]
    if len(set(sentinels)) != len(sentinels):
        raise RedisUrlError("the same sentinel is listed twice")
    segments = path.split("/") if slash else []
    if not segments or not segments[0]:
        raise RedisUrlError("no service name: redis+sentinel://host:port,.../service_name (the name of "
                            "`sentinel monitor NAME ...` in the sentinels' configuration)")
    service = unquote(segments[0])
    if any(c.isspace() for c in service):
        raise RedisUrlError(f"service name {service!r}: no spaces")
    db = 0
    if len(segments) > 1 and segments[1:] != [""]:
        if len(segments) > 2 and segments[2:] != [""]:
            raise RedisUrlError(f"junk after the database number: {'/'.join(segments[2:])!r}")
        if not segments[1].isdigit():
            raise RedisUrlError(f"bad database number {segments[1]!r} after the service name: a number such as /0")
        db = int(segments[1])
    sentinel_password = None
    if query:
        try:
            options = parse_qs(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise RedisUrlError(f"bad query {query!r}: expected ?sentinel_password=...") from None
        for key, values in options.items():
            if key not in SENTINEL_OPTIONS:
                raise RedisUrlError(f"unknown option {key!r}: the Sentinel form takes only "
                                    + ", ".join(SENTINEL_OPTIONS))
            if len(values) != 1:
                raise RedisUrlError(f"option {key!r} given {len(values)} times")
        sentinel_password = options["sentinel_password"][0] if "sentinel_password" in options else None
    return SentinelTarget(sentinels=sentinels, service=service, db=db, username=username, password=password,
                          sentinel_password=sentinel_password)


def _auth(netloc: str) -> tuple[str | None, str | None, str]:
    """(username, password, the hosts) of `[[user]:password@]hosts`."""
    username = password = None
    if "@" in netloc:
        auth, netloc = netloc.rsplit("@", 1)
        user, colon, pw = auth.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if colon else None
        if password is None and username is not None:   # redis://secret@host: the password alone
            username, password = None, username
    return username, password, netloc


def _cluster(url: str) -> ClusterTarget:
    rest = url.split("://", 1)[1]
    if "#" in rest:
        raise RedisUrlError("a fragment ('#...') has no meaning in redis.url")
    rest, question, query = rest.partition("?")
    if question:
        raise RedisUrlError(f"unknown option(s) {query!r}: the Cluster form takes none")
    netloc, _, path = rest.partition("/")
    username, password, netloc = _auth(netloc)
    if not netloc:
        raise RedisUrlError("redis+cluster:// names no seed node: list some of the cluster's nodes as "
                            "host:port,host:port")
    seeds = [_host_port(item, i, "seed", 6379) for i, item in enumerate(netloc.split(","), 1)]
    if len(set(seeds)) != len(seeds):
        raise RedisUrlError("the same seed node is listed twice")
    if path.strip("/") not in ("", "0"):
        raise RedisUrlError(f"{'/' + path!r} after the seeds: a Redis Cluster has only database 0 and no "
                            "service name (that is the Sentinel form, redis+sentinel://)")
    return ClusterTarget(seeds=seeds, username=username, password=password)


def _host_port(item: str, n: int, what: str = "sentinel", port_example: int = 26379) -> tuple[str, int]:
    where = f"{what} {n} ({item!r})" if item else f"{what} {n}"
    if not item:
        raise RedisUrlError(f"{where} is empty: list the {what}s as host:port,host:port")
    if item.startswith("["):
        host, close, tail = item[1:].partition("]")
        if not close or not host:
            raise RedisUrlError(f"{where}: an IPv6 address is written [address]:port")
        if not tail.startswith(":"):
            raise RedisUrlError(f"{where} has no port: write [{host}]:{port_example}")
        port_text = tail[1:]
    else:
        host, colon, port_text = item.rpartition(":")
        if not colon:
            raise RedisUrlError(f"{where} has no port: write {item}:{port_example} (every {what} needs its port)")
        if not host:
            raise RedisUrlError(f"{where} has no host before the port")
        if ":" in host:
            raise RedisUrlError(f"{where}: an IPv6 address is written [address]:port")
    if any(c.isspace() or c in "@/?#" for c in host):
        raise RedisUrlError(f"{where}: {host!r} is not a host name")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise RedisUrlError(f"{where}: bad port {port_text!r}, a number 1-65535")
    return host, int(port_text)
