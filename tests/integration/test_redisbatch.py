"""server/redisbatch.py on the real Redis: commands coalesce into pipelines, keep their order and results."""
from __future__ import annotations

import asyncio
import socket
import uuid

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from infra import ratelimit
from infra.redisbatch import Pipeliner
from testkit.stack import Stack


def key(stack: Stack, name: str) -> str:
    return f"{stack.prefix}batch:{uuid.uuid4().hex[:8]}:{name}"


async def test_concurrent_publishes_share_pipelines_and_arrive_in_the_order_issued(stack, redis):
    ch = key(stack, "order")
    sub = redis.pubsub()
    await sub.subscribe(ch)
    await sub.get_message(timeout=1)          # the subscribe confirmation
    p = Pipeliner(redis)
    await asyncio.gather(*[p.publish([(ch, str(i))]) for i in range(300)])
    got: list[int] = []
    while len(got) < 300:
        m = await sub.get_message(ignore_subscribe_messages=True, timeout=2)
        assert m is not None, f"only {len(got)} of 300 arrived"
        got.append(int(m["data"]))
    await sub.aclose()
    assert got == list(range(300))
    assert p.commands == 300
    assert p.batches < 30                      # 300 callers, a handful of round trips


async def test_counters_count_every_caller_once_and_always_expire(stack, redis):
    k = key(stack, "count")
    p = Pipeliner(redis)
    values = await asyncio.gather(*[p.count(k, 60) for _ in range(50)])
    assert sorted(values) == list(range(1, 51))
    assert int(await redis.get(k)) == 50
    assert 0 < await redis.ttl(k) <= 60
    assert await ratelimit.allow(p, k, 51, 60) and not await ratelimit.allow(p, k, 51, 60)


async def test_redis_down_counts_as_zero_and_publishes_do_not_raise():
    with socket.socket() as s:                 # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = aioredis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    p = Pipeliner(r)
    try:
        with pytest.raises(RedisError):
            await p.count("k", 60)
        assert await ratelimit.count(p, "k", 60) == 0      # the limiter lets requests through
        await p.publish([("ch", "x"), ("ch", "y")])        # logged, not raised: a doorbell
        # and it recovers: a later batch is a new attempt, not a stuck flusher
        assert p._flusher is None
    finally:
        await r.aclose()


class Inbox:
    def __init__(self) -> None:
        self.got: list[str] = []

    def deliver(self, payload: str) -> None:
        self.got.append(payload)


async def test_listens_in_one_loop_turn_share_one_subscribe_and_each_is_confirmed(stack, redis, monkeypatch):
    """A reconnect storm: thousands of hellos each listen on their channel; Redis gets few SUBSCRIBEs,
    and every listen returns only once its subscription is live (a publish right after is heard)."""
    from infra.bus import Bus

    bus = Bus(aioredis.Redis.from_url(stack.redis_url))
    await bus.start()
    sent = []
    pubsub = bus._pubsub
    assert pubsub is not None                     # a started bus has its subscriber
    real = pubsub.subscribe

    async def counting(*channels):
        sent.append(len(channels))
        return await real(*channels)
    monkeypatch.setattr(pubsub, "subscribe", counting)
    try:
        chans = [key(stack, f"ch{i}") for i in range(300)]
        boxes = [Inbox() for _ in chans]
        extra = Inbox()                           # a second listener of a channel whose SUBSCRIBE is pending
        await asyncio.gather(*[bus.listen(c, b) for c, b in zip(chans, boxes)], bus.listen(chans[0], extra))
        assert sum(sent) == 300 and len(sent) < 10, sent
        await redis.publish(chans[0], "a")
        await redis.publish(chans[-1], "z")
        for _ in range(100):
            if boxes[0].got and boxes[-1].got and extra.got:
                break
            await asyncio.sleep(0.02)
        assert boxes[0].got == ["a"] and extra.got == ["a"] and boxes[-1].got == ["z"]
    finally:
        await bus.close()
        await bus.redis.aclose()
