"""`database.url`: one PostgreSQL host or several, checked before anything connects (pure, no I/O).

The grammar (libpq's URI form, as asyncpg reads it):

    postgresql://[user[:password]@]host[:port][,host[:port]...][/database][?key=value&...]

`postgres://` is the same. A host is a name, an IPv4 address or an IPv6 address in brackets; a port is
1-65535 (5432 when left out). The hosts may instead be given as `?host=h1,h2&port=p1,p2` (a host
starting with `/` is a unix-socket directory: the embedded default's form). `target_session_attrs`
says which host a connection may use: a node writes, so only `read-write` (the default helpline adds
when it is left out) or `primary` will do; `any`, `read-only`, `standby` and `prefer-standby` are
refused, so that a read-only host reached by mistake is never written to.

`parse` raises `DbUrlError` naming the part that is wrong; `for_node` is the check a node makes.
"""
from __future__ import annotations

import difflib
import re
import urllib.parse
from dataclasses import dataclass, field

SCHEMES = ("postgresql", "postgres")
# what asyncpg's DSN parser takes itself; any other key is sent to the server as a setting (application_name,
# search_path, ...), so a misspelt connection key would only fail at connect time: those close to a known key
# are refused here instead
KNOWN_KEYS = ("host", "port", "dbname", "database", "user", "password", "passfile", "sslmode", "sslcert",
              "sslkey", "sslrootcert", "sslcrl", "sslpassword", "sslnegotiation", "ssl_min_protocol_version",
              "ssl_max_protocol_version", "target_session_attrs", "krbsrvname", "gsslib", "service")
# libpq keys asyncpg does not read from a URL (it would send them to the server, which refuses them)
UNSUPPORTED_KEYS = ("connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
                    "keepalives_count", "tcp_user_timeout", "load_balance_hosts", "options", "requiressl",
                    "channel_binding", "gssencmode", "replication", "hostaddr")
SESSION_ATTRS = ("read-write", "primary", "any", "read-only", "standby", "prefer-standby")
NODE_ATTRS = ("read-write", "primary")      # what a node may use: it writes
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_HOSTNAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
_SETTING = re.compile(r"^[a-z_][a-z0-9_.]*$")


class DbUrlError(ValueError):
    """database.url cannot be used; the message names the part that is wrong."""


@dataclass(frozen=True)
class Host:
    host: str          # a name, an address, or a unix-socket directory (starts with /)
    port: int

    def __str__(self) -> str:
        if self.host.startswith("/"):
            return f"{self.host}/.s.PGSQL.{self.port}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class DbUrl:
    hosts: tuple[Host, ...]
    database: str
    user: str
    target_session_attrs: str | None          # as written; None when left out
    params: dict[str, str] = field(default_factory=dict)

    def hosts_text(self) -> str:
        """`127.0.0.1:5501, 127.0.0.1:5502`: the hosts as an operator would name them."""
        return ", ".join(str(h) for h in self.hosts)


def _port(text: str, where: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise DbUrlError(f"database.url: the port {text!r} of {where} is not a number from 1 to 65535")
    return int(text)


def _hostspec(spec: str, i: int, n: int, default_port: int | None) -> Host:
    where = f"host {i + 1} of {n}" if n > 1 else "the host"
    if not spec:
        raise DbUrlError(f"database.url: {where} is empty (a stray comma in the host list?)")
    if spec.startswith("["):
        m = re.fullmatch(r"\[([0-9A-Fa-f:.%A-Za-z]+)\](?::(.*))?", spec)
        if not m:
            raise DbUrlError(f"database.url: {where} {spec!r} is not an IPv6 address in brackets like [::1]:5432")
        addr, port_text = m.group(1), m.group(2)
        if port_text is None:
            return Host(addr, default_port or 5432)
        return Host(addr, _port(port_text, f"{where} ({addr})"))
    addr, colon, port_text = spec.partition(":")
    addr = urllib.parse.unquote(addr)
    if addr.startswith("/"):
        return Host(addr, _port(port_text, where) if colon else default_port or 5432)
    if not _HOSTNAME.match(addr):
        raise DbUrlError(f"database.url: {where} {addr!r} is not a host name or address")
    if colon:
        return Host(addr, _port(port_text, f"{where} ({addr})"))
    return Host(addr, default_port or 5432)


def parse(url: str) -> DbUrl:
    """The URL's parts, or DbUrlError naming what is wrong."""
    url = url.strip()
    if not url:
        raise DbUrlError("database.url is empty")
    if "://" not in url:
        raise DbUrlError("database.url must look like postgresql://user@host:5432,host2:5432/helpline"
                         f"?target_session_attrs=read-write, not {_clip(url)!r}")
    scheme, rest = url.split("://", 1)
    if scheme.lower() not in SCHEMES:
        raise DbUrlError(f"database.url: the scheme {scheme!r} is not postgresql:// (or postgres://)")
    before_query, _, query = rest.partition("?")
    netloc, _, path = before_query.partition("/")
    if "#" in query or "#" in path or "#" in netloc:
        raise DbUrlError("database.url: a '#' has no place in it (percent-encode it as %23 in a password)")
    auth, at, hostlist = netloc.rpartition("@")
    user = urllib.parse.unquote(auth.partition(":")[0]) if at else ""
    if "/" in path:
        raise DbUrlError(f"database.url: the database name {path!r} has a '/' in it")
    database = urllib.parse.unquote(path)
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise DbUrlError(f"database.url: the query {query!r} is not key=value pairs joined by '&'") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise DbUrlError(f"database.url: the parameter {key!r} is given twice")
        if key in UNSUPPORTED_KEYS:
            raise DbUrlError(f"database.url: the parameter {key!r} is not supported (asyncpg does not read it"
                             " from the URL)")
        if key not in KNOWN_KEYS:
            close = difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=0.8)
            if close or not _SETTING.match(key):
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise DbUrlError(f"database.url: unknown parameter {key!r}{hint}")
        params[key] = value
    attrs = params.get("target_session_attrs")
    if attrs is not None and attrs not in SESSION_ATTRS:
        raise DbUrlError(f"database.url: target_session_attrs={attrs!r} is not one of {', '.join(SESSION_ATTRS)}")
    if "sslmode" in params and params["sslmode"] not in SSL_MODES:
        raise DbUrlError(f"database.url: sslmode={params['sslmode']!r} is not one of {', '.join(SSL_MODES)}")
    hosts = _hosts(hostlist, params)
    return DbUrl(hosts=hosts, database=database or params.get("dbname", params.get("database", "")) or user,
                 user=user or params.get("user", ""), target_session_attrs=attrs, params=params)


def _hosts(hostlist: str, params: dict[str, str]) -> tuple[Host, ...]:
    ports: list[int] = []
    if "port" in params:
        ports = [_port(p, "the port parameter") for p in params["port"].split(",")]
    if hostlist and "host" in params:
        raise DbUrlError("database.url: hosts are given both before the '/' and as the host parameter; use one")
    specs = hostlist.split(",") if hostlist else params["host"].split(",") if params.get("host") else []
    if "host" in params and not params["host"]:
        raise DbUrlError("database.url: the host parameter is empty")
    if not specs:
        return (Host("localhost", ports[0] if ports else 5432),)
    if ports and len(ports) not in (1, len(specs)):
        raise DbUrlError(f"database.url: {len(specs)} hosts but {len(ports)} ports in the port parameter")
    out = []
    for i, spec in enumerate(specs):
        default: int | None = ports[i] if len(ports) == len(specs) else ports[0] if ports else None
        if ports and ":" in spec.lstrip("[").split("]")[-1] and not spec.startswith("/"):
            raise DbUrlError(f"database.url: host {i + 1} ({spec}) has a port and the port parameter gives another")
        out.append(_hostspec(spec, i, len(specs), default))
    return tuple(out)


def for_node(url: str) -> tuple[DbUrl, str]:
    """The URL checked for a node that writes, and the target_session_attrs its connections use:
    `read-write` unless the URL says `primary`; anything else is refused."""
    parsed = parse(url)
    attrs = parsed.target_session_attrs
    if attrs is None:
        return parsed, "read-write"
    if attrs not in NODE_ATTRS:
        raise DbUrlError(f"database.url: target_session_attrs={attrs} would let a node write to a host that"
                         " cannot take writes; use read-write (or primary), or leave it out")
    return parsed, attrs


def _clip(s: str, n: int = 60) -> str:
    return s if len(s) <= n else s[:n] + "..."
