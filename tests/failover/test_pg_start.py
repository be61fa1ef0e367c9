"""A node on several PostgreSQL hosts: a bad URL is refused at start naming the part, a standby listed
first is skipped for the primary, a URL with only a standby fails at start in words (never a hang)."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from infra import db
from testkit.nodes import node_env
from testkit.pgpair import PgPair, create_database
from testkit.runtime import REPO


def _serve(database_url: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = node_env(database_url, "redis://127.0.0.1:6379", "hl_never_used:")
    return subprocess.run([sys.executable, "-m", "server.cli", "serve"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("url, words", [
    ("postgresql://postgres@127.0.0.1:5432,127.0.0.1:x/helpline", "the port 'x' of host 2 of 2 (127.0.0.1)"),
    ("postgresql://postgres@127.0.0.1:5432,,127.0.0.1:5433/helpline", "host 2 of 3 is empty"),
    ("mysql://postgres@127.0.0.1/helpline", "the scheme 'mysql'"),
    ("postgresql://postgres@h1,h2/helpline?target_session_attrs=any", "target_session_attrs=any would let"),
    ("postgresql://postgres@h1,h2/helpline?target_session_attrs=read_write", "target_session_attrs='read_write'"),
])
def test_serve_refuses_a_malformed_url_in_one_line(url, words):
    p = _serve(url)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert lines[0].startswith("helpline: configuration error: database.url") and words in lines[0], lines[0]


@pytest.fixture(scope="module")
def pair() -> Iterator[PgPair]:
    p = PgPair(sync=True).start()
    try:
        asyncio.run(create_database(p, "helpline"))
        yield p
    finally:
        p.stop()



@pytest.mark.failover
async def test_a_standby_listed_first_is_skipped_for_the_primary(pair):
    assert pair.standby_first and pair.url("helpline").index(str(pair.standby_port)) < \
        pair.url("helpline").index(str(pair.primary_port))
    conn = await db.connect(pair.url("helpline"))
    try:
        assert await conn.fetchval("SHOW port") == str(pair.primary_port)   # the second host: the first is read-only
        assert await conn.fetchval("SELECT pg_is_in_recovery()") is False
        await conn.execute("CREATE TEMP TABLE t (x int)")  # it takes writes
    finally:
        await conn.close()
    pool = await db.create_pool(pair.url("helpline"), 2, 2)
    try:
        async with pool.acquire() as c:
            assert await c.fetchval("SHOW port") == str(pair.primary_port)
    finally:
        await pool.close()


@pytest.mark.failover
async def test_a_url_with_only_a_standby_is_refused_in_words(pair):
    with pytest.raises(db.DatabaseUnavailable) as e:
        await db.connect(pair.standby_url("helpline"))
    assert str(e.value) == (f"no read-write host among 127.0.0.1:{pair.standby_port}"
                            " (the hosts that answered are read-only: standbys)")
    with pytest.raises(db.DatabaseUnavailable):
        await db.create_pool(pair.standby_url("helpline"), 1, 1)


@pytest.mark.failover
async def test_serve_on_only_a_standby_exits_with_words_not_a_hang(pair):
    t0 = time.monotonic()
    p = await asyncio.to_thread(_serve, pair.standby_url("helpline"), db.START_WAIT_S + 45)
    took = time.monotonic() - t0
    assert p.returncode == 1, p.stderr[-2000:]
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    last = p.stderr.strip().splitlines()[-1]
    assert last == (f"helpline: database unavailable: no read-write host among 127.0.0.1:{pair.standby_port}"
                    " (the hosts that answered are read-only: standbys)"), last
    assert took >= db.START_WAIT_S - 1          # it waited for a primary (a failover under way) before giving up
