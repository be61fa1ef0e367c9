"""Fixtures: a run-wide database and Redis prefix; per test an app, a node or a cluster.

    stack    the run's PostgreSQL database and Redis key prefix (session)
    hl       an in-process app on a loopback port (tables emptied, fresh key prefix)
    cluster  a factory of `helpline serve` processes on the same database and prefix
    node     one `helpline serve` process (for browser tests and outside-client checks)
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support import stack as stack_mod
from tests.support.harness import Cluster, InProcess, NodeProcess


@pytest.fixture(scope="session")
def stack() -> Iterator[stack_mod.Stack]:
    s = stack_mod.start()
    try:
        yield s
    finally:
        stack_mod.stop(s)


@pytest.fixture
async def clean_db(stack: stack_mod.Stack) -> None:
    await stack_mod.truncate_all(stack.database_url)


@pytest.fixture
async def hl(stack: stack_mod.Stack, clean_db: None, request: pytest.FixtureRequest) -> AsyncIterator[InProcess]:
    marker = request.node.get_closest_marker("config")
    overrides = dict(marker.kwargs) if marker else {}
    app = await InProcess(stack, **overrides).start()
    try:
        yield app
    finally:
        await app.stop()


@pytest.fixture
async def cluster(stack: stack_mod.Stack, clean_db: None, request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
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
