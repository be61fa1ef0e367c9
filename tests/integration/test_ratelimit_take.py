"""infra/ratelimit.take on the real Redis: parallel attempts against several counters of one limit let exactly
the limit through (the counters of one attempt move together)."""
from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as aioredis

from infra import ratelimit as rl


async def test_parallel_attempts_on_three_counters_let_exactly_the_limit_through(stack, clean_db):
    r = aioredis.Redis.from_url(stack.redis_url)
    try:
        for _ in range(5):
            base = f"{stack.prefix}rl-take-{uuid.uuid4().hex}"
            counters: list[tuple[str, rl.Limit]] = [(f"{base}:{k}", (10, 60)) for k in ("account", "code", "addr")]
            got = await asyncio.gather(*(rl.take(r, counters) for _ in range(30)))
            assert got.count(True) == 10, got
            assert [int(await r.get(k) or 0) for k, _ in counters] == [30, 30, 30]
            assert 0 < await r.ttl(counters[0][0]) <= 60
    finally:
        await r.aclose()


async def test_one_counter_past_its_limit_refuses_though_the_others_have_room(stack, clean_db):
    r = aioredis.Redis.from_url(stack.redis_url)
    try:
        base = f"{stack.prefix}rl-take-{uuid.uuid4().hex}"
        tight, roomy = (f"{base}:tight", (2, 60)), (f"{base}:roomy", (100, 60))
        assert [await rl.take(r, [roomy, tight]) for _ in range(3)] == [True, True, False]
    finally:
        await r.aclose()
