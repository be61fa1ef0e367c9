"""Fixtures: a run-wide database and Redis prefix; per test an app, a node or a cluster.

    stack    the run's PostgreSQL database and Redis key prefix (session)
    hl       an in-process app on a loopback port (tables emptied, fresh key prefix)
    cluster  a factory of `helpline serve` processes on the same database and prefix
    node     one `helpline serve` process (for browser tests and outside-client checks)
    redis    a plain redis.asyncio client of the run's Redis (keys under stack.prefix are the test's to make)
    fake     a FakeTwilio on a loopback port
    shl      an in-process app with sms.provider twilio pointed at `fake`, its public URL
             set to the URL the tests post to

The harness itself (shared with the benchmarks) is the top-level package `testkit`.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from testkit import stack as stack_mod
from testkit.nodes import Cluster, InProcess, NodeProcess
from testkit.twilio import FakeTwilio, sms_app
from testkit.webpush import FakePushService


@pytest.fixture(scope="session")
def stack() -> Iterator[stack_mod.Stack]:
    s = stack_mod.start()
    try:
        yield s
    finally:
        stack_mod.stop(s)


@pytest.fixture
async def redis(stack: stack_mod.Stack) -> AsyncIterator[aioredis.Redis]:
    r = aioredis.Redis.from_url(stack.redis_url)
    yield r
    await r.aclose()


@pytest.fixture
async def clean_db(stack: stack_mod.Stack) -> None:
    """Each test starts from empty tables and no keys under the run's prefix (rate-limit counters of an
    earlier test, e.g. wrong join codes from 127.0.0.1, must not count against this one)."""
    await stack_mod.truncate_all(stack.database_url)
    await stack.delete_keys()


@pytest.fixture
async def hl(stack: stack_mod.Stack, clean_db: None,
             request: pytest.FixtureRequest) -> AsyncIterator[InProcess]:
    marker = request.node.get_closest_marker("config")
    overrides = dict(marker.kwargs) if marker else {}
    app = await InProcess(stack, **overrides).start()
    try:
        yield app
    finally:
        await app.stop()


@pytest.fixture
async def cluster(stack: stack_mod.Stack, clean_db: None,
                  request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    marker = request.node.get_closest_marker("config")
    c = Cluster(stack, **(dict(marker.kwargs) if marker else {}))
    try:
        yield c
    finally:
        await c.stop()


@pytest.fixture
async def node(cluster: Cluster) -> AsyncIterator[NodeProcess]:
    n = await cluster.start_node()
    yield n


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    f = await FakeTwilio().start()
    try:
        yield f
    finally:
        await f.stop()


@pytest.fixture
async def shl(stack: stack_mod.Stack, clean_db: None, fake: FakeTwilio) -> AsyncIterator[InProcess]:
    app = await sms_app(stack, fake)
    try:
        yield app
    finally:
        await app.stop()


@pytest.fixture
async def pushsvc() -> AsyncIterator[FakePushService]:
    """The Web Push stand-in (testkit/webpush.py): checks VAPID, decrypts, records what it got."""
    f = await FakePushService().start()
    try:
        yield f
    finally:
        await f.stop()
