"""On a Redis Cluster every key and channel of a deployment hashes to one slot (infra/keys.py): the
matching script, the rate limits' MULTI and the pipelined publishes touch several at once."""
from __future__ import annotations

import inspect

import pytest
from redis.crc import key_slot

from infra.keys import Keys, cluster_prefix, has_hash_tag

CLUSTER = "redis+cluster://10.0.0.1:7000,10.0.0.2:7000"


def every_key(keys: Keys) -> list[str]:
    """Every key and channel name Keys builds, each with sample arguments."""
    out = []
    for name, member in inspect.getmembers(type(keys)):
        if name.startswith("_") or name == "for_redis":
            continue
        if isinstance(member, property):
            out.append(getattr(keys, name))
        elif inspect.isfunction(member):
            params = list(inspect.signature(member).parameters)[1:]
            out.append(getattr(keys, name)(*[f"{p}-7f3a" for p in params]))
    return out


@pytest.mark.parametrize("prefix", ["helpline:", "city-b:", "hl", "t_1234:c7:", "a{b", "{x}:"])
def test_on_a_cluster_every_key_is_in_one_slot(prefix: str) -> None:
    keys = Keys.for_redis(prefix, CLUSTER)
    names = every_key(keys)
    assert len(names) >= 14, names        # channels, indexes, counters, markers
    assert all(n.startswith(keys.prefix) for n in names)
    assert len({key_slot(n.encode()) for n in names}) == 1, {n: key_slot(n.encode()) for n in names}


def test_the_prefix_becomes_a_hash_tag_only_on_a_cluster() -> None:
    assert Keys.for_redis("helpline:", CLUSTER).prefix == "{helpline}:"
    assert Keys.for_redis("helpline:", CLUSTER).geo("medical") == "{helpline}:geo:medical"
    for url in ("redis://127.0.0.1:6379/0", "redis+sentinel://h:26379/hl", "unix:///tmp/r.sock", "", None):
        assert Keys.for_redis("helpline:", url).prefix == "helpline:"
    # on a plain Redis the keys of one deployment are spread over slots as ever (nothing changes there)
    assert len({key_slot(n.encode()) for n in every_key(Keys("helpline:"))}) > 1


@pytest.mark.parametrize(("prefix", "tagged"), [
    ("helpline:", "{helpline}:"), ("hl", "{hl}"), ("a:b::", "{a:b}::"), (":", "{:}"),
    ("{city}:", "{city}:"), ("pre{x}fix:", "pre{x}fix:"),     # a tag of its own is kept
    ("a{}b:", "{a{}b}:"), ("a{b:", "{a{b}:"),                 # an empty or open '{' is no tag
])
def test_cluster_prefix(prefix: str, tagged: str) -> None:
    assert cluster_prefix(prefix) == tagged
    assert has_hash_tag(tagged)
    assert cluster_prefix(tagged) == tagged
