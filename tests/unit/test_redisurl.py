"""redis.url: the plain and Sentinel forms (infra/redisurl.py), and a bad one at `helpline serve`."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from infra import config as config_mod
from infra.redisurl import PlainTarget, RedisUrlError, SentinelTarget, parse
from testkit.runtime import REPO


def test_sentinel_form_in_full() -> None:
    t = parse("redis+sentinel://app:s%40cret@10.0.0.1:26379,sentinel-b.local:26380,[::1]:26381/helpline/3"
              "?sentinel_password=watch")
    assert t == SentinelTarget(sentinels=[("10.0.0.1", 26379), ("sentinel-b.local", 26380), ("::1", 26381)],
                               service="helpline", db=3, username="app", password="s@cret",
                               sentinel_password="watch")
    assert "watch" not in repr(t) and "s@cret" not in t.describe()
    assert t.describe() == "service 'helpline' via sentinels 10.0.0.1:26379,sentinel-b.local:26380,[::1]:26381"


def test_sentinel_form_at_its_smallest() -> None:
    t = parse("redis+sentinel://127.0.0.1:26379/mymaster")
    assert isinstance(t, SentinelTarget)
    assert (t.sentinels, t.service, t.db, t.username, t.password, t.sentinel_password) == (
        [("127.0.0.1", 26379)], "mymaster", 0, None, None, None)
    assert parse("redis+sentinel://:pw@h:1/s/").password == "pw"          # type: ignore[union-attr]
    assert parse("redis+sentinel://pw@h:1/s").password == "pw"            # type: ignore[union-attr]


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379", "redis://:pw@10.1.1.1:6380/2", "rediss://r.example:6379",
                                 "unix:///run/redis.sock", "unix:///tmp/r.sock?db=1", "redis://localhost"])
def test_plain_forms_pass_through(url: str) -> None:
    assert parse(url) == PlainTarget(url)


@pytest.mark.parametrize(("url", "named"), [
    ("redis+sentinel:///helpline", "names no sentinel"),
    ("redis+sentinel://", "names no sentinel"),
    ("redis+sentinel://h1:26379,,h2:26379/s", "sentinel 2 is empty"),
    ("redis+sentinel://h1:26379,h2/s", "sentinel 2 ('h2') has no port"),
    ("redis+sentinel://h1:2637x/s", "sentinel 1 ('h1:2637x'): bad port '2637x'"),
    ("redis+sentinel://h1:70000/s", "bad port '70000'"),
    ("redis+sentinel://h1:0/s", "bad port '0'"),
    ("redis+sentinel://:26379/s", "has no host before the port"),
    ("redis+sentinel://::1:26379/s", "IPv6 address is written [address]:port"),
    ("redis+sentinel://[::1/s", "IPv6 address is written [address]:port"),
    ("redis+sentinel://[::1]/s", "has no port: write [::1]:26379"),
    ("redis+sentinel://h1:26379", "no service name"),
    ("redis+sentinel://h1:26379/", "no service name"),
    ("redis+sentinel://h1:26379//0", "no service name"),
    ("redis+sentinel://h1:26379/my%20master", "service name 'my master': no spaces"),
    ("redis+sentinel://h1:26379/svc/x", "bad database number 'x' after the service name"),
    ("redis+sentinel://h1:26379/svc/0/junk", "junk after the database number: 'junk'"),
    ("redis+sentinel://h1:26379/svc?socket_timeout=1", "unknown option 'socket_timeout'"),
    ("redis+sentinel://h1:26379/svc?sentinel_password=a&sentinel_password=b", "given 2 times"),
    ("redis+sentinel://h1:26379/svc?junk", "bad query 'junk'"),
    ("redis+sentinel://h1:26379,h1:26379/svc", "the same sentinel is listed twice"),
    ("redis+sentinel://h 1:26379/svc", "'h 1' is not a host name"),
    ("redis+sentinel://h1:26379/svc#x", "fragment"),
    ("sentinel://h1:26379/svc", "unknown scheme 'sentinel://'"),
    ("http://127.0.0.1:6379", "unknown scheme 'http://'"),
    ("127.0.0.1:6379", "'127.0.0.1:6379' is not a URL"),
    ("junk", "'junk' is not a URL"),
    ("redis://h1:6379,h2:6379", "redis:// takes one host"),
    ("redis://h1:63x9", "bad port in 'h1:63x9'"),
    ("redis://:6379", "redis:// needs a host"),
    ("redis://h1:6379/zero", "bad database number 'zero'"),
    ("unix://", "unix:// needs the socket's path"),
])
def test_malformed_urls_name_the_wrong_part(url: str, named: str) -> None:
    with pytest.raises(RedisUrlError) as e:
        parse(url)
    assert named in str(e.value)


def test_config_refuses_a_bad_url_naming_the_key() -> None:
    with pytest.raises(config_mod.ConfigError, match=r"^redis\.url: sentinel 2 \('h2'\) has no port"):
        config_mod.load({"HELPLINE_REDIS_URL": "redis+sentinel://h1:26379,h2/helpline"})
    cfg = config_mod.load({"HELPLINE_REDIS_URL": "redis+sentinel://h1:26379,h2:26379/helpline"})
    assert cfg.redis.url.startswith("redis+sentinel://")


@pytest.mark.parametrize(("url", "named"), [
    ("redis+sentinel://127.0.0.1:26379,127.0.0.1/helpline", "sentinel 2 ('127.0.0.1') has no port"),
    ("redis+sentinel://127.0.0.1:26379/", "no service name"),
])
def test_serve_with_a_bad_url_exits_2_with_one_line(url: str, named: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPLINE_")}
    env["HELPLINE_REDIS_URL"] = url
    env["HELPLINE_DATABASE_URL"] = "postgresql://postgres@127.0.0.1:1/never"   # never reached
    out = subprocess.run([sys.executable, "-m", "server.cli", "serve"], env=env, cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2, out
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.startswith("helpline: configuration error: redis.url: ") and named in out.stderr, out.stderr


# ---------------------------------------------------------------- Redis Cluster (issue 17, the second step)
def test_cluster_form_in_full() -> None:
    from infra.redisurl import ClusterTarget

    t = parse("redis+cluster://app:s%40cret@10.0.0.1:7000,redis-b.local:7001,[::1]:7002")
    assert t == ClusterTarget(seeds=[("10.0.0.1", 7000), ("redis-b.local", 7001), ("::1", 7002)],
                              username="app", password="s@cret")
    assert "s@cret" not in repr(t) and "s@cret" not in t.describe()
    assert t.describe() == "cluster seeds 10.0.0.1:7000,redis-b.local:7001,[::1]:7002"


def test_cluster_form_at_its_smallest() -> None:
    from infra.redisurl import ClusterTarget

    assert parse("redis+cluster://127.0.0.1:7000") == ClusterTarget(seeds=[("127.0.0.1", 7000)])
    assert parse("REDIS+CLUSTER://h:1/") == ClusterTarget(seeds=[("h", 1)])
    assert parse("redis+cluster://:pw@h:1/0") == ClusterTarget(seeds=[("h", 1)], password="pw")
    assert parse("redis+cluster://pw@h:1,h:2").password == "pw"          # type: ignore[union-attr]


@pytest.mark.parametrize(("url", "named"), [
    ("redis+cluster://", "names no seed node"),
    ("redis+cluster://pw@", "names no seed node"),
    ("redis+cluster://h1:7000,,h2:7001", "seed 2 is empty"),
    ("redis+cluster://h1:7000,h2", "seed 2 ('h2') has no port: write h2:6379"),
    ("redis+cluster://h1:70x0", "seed 1 ('h1:70x0'): bad port '70x0'"),
    ("redis+cluster://h1:65536", "bad port '65536'"),
    ("redis+cluster://:7000", "seed 1 (':7000') has no host before the port"),
    ("redis+cluster://::1:7000", "IPv6 address is written [address]:port"),
    ("redis+cluster://[::1]", "has no port: write [::1]:6379"),
    ("redis+cluster://h1:7000,h1:7000", "the same seed node is listed twice"),
    ("redis+cluster://h 1:7000", "'h 1' is not a host name"),
    ("redis+cluster://h1:7000/2", "'/2' after the seeds: a Redis Cluster has only database 0"),
    ("redis+cluster://h1:7000/mymaster", "no service name (that is the Sentinel form"),
    ("redis+cluster://h1:7000?read_from_replicas=1", "the Cluster form takes none"),
    ("redis+cluster://h1:7000#x", "fragment"),
    ("cluster://h1:7000", "unknown scheme 'cluster://'"),
    ("redis://h1:7000,h2:7001", "or the Cluster form redis+cluster://host:port,host:port"),
])
def test_malformed_cluster_urls_name_the_wrong_part(url: str, named: str) -> None:
    with pytest.raises(RedisUrlError) as e:
        parse(url)
    assert named in str(e.value)


def test_config_refuses_a_bad_cluster_url_naming_the_key() -> None:
    with pytest.raises(config_mod.ConfigError, match=r"^redis\.url: seed 3 \('h3'\) has no port"):
        config_mod.load({"HELPLINE_REDIS_URL": "redis+cluster://h1:7000,h2:7001,h3"})
    cfg = config_mod.load({"HELPLINE_REDIS_URL": "redis+cluster://h1:7000,h2:7001"})
    assert cfg.redis.url.startswith("redis+cluster://")
