"""5,000 clients reconnecting at once after a node restart (with jitter) all come back.

The test proves nobody is left out and everyone gets their state back; how fast is
measured by `python -m bench.reconnect` (target: all back within 10 s of the restart), since
timing assertions do not belong in tests on a shared 2-core machine.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import time

import asyncpg
import pytest
import websockets

from infra.auth import TokenService
from testkit.accounts import SECRET

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]
N = int(os.environ.get("HELPLINE_TEST_RECONNECT_N", "5000"))


async def test_reconnect_storm_after_node_restart(cluster):
    node = await cluster.start_node()
    conn = await asyncpg.connect(cluster.database_url)
    try:
        ids = [str(r["id"]) for r in await conn.fetch(
            "INSERT INTO accounts (role, name, device_id) SELECT 'resident', '', 'storm-' || g"
            " FROM generate_series(1, $1) g RETURNING id", N)]
        # a few of them have an open incident, which they must see again after the restart
        with_incident = ids[:: max(1, N // 50)]
        for i, acc in enumerate(with_incident):
            await conn.execute(
                "INSERT INTO incidents (ref_no, reporter_id, request_id, status, category, skill, priority, lat, lon,"
                " channel) VALUES ('H-' || nextval('incident_ref_seq'), $1, $2, 'escalated', 'other', 'general', 3,"
                " 31.23, 121.47, 'ws')", acc, f"storm-{i}")
    finally:
        await conn.close()
    tokens = TokenService(SECRET, "helpline", "helpline", 3600)
    toks = [tokens.issue(i, "resident") for i in ids]
    opened = set(with_incident)

    async def session(token: str, account: str, back: asyncio.Event, done: list[float], t0: list[float]) -> None:
        """Connect; when the node goes away, reconnect with jitter until welcomed again."""
        first = True
        delay = 0.5
        while True:
            try:
                async with websockets.connect(node.ws_url, open_timeout=30, close_timeout=1,
                                              compression=None) as ws:
                    await ws.send(json.dumps({"type": "hello", "token": token}))
                    welcome = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    assert welcome["type"] == "welcome"
                    if not first:
                        assert bool(welcome["open_incidents"]) == (account in opened)
                        done.append(time.monotonic() - t0[0])
                        return
                    first = False
                    back.set()
                    await ws.wait_closed()
            except (TimeoutError, OSError, websockets.WebSocketException):
                pass
            if first:
                await asyncio.sleep(0.05)
            else:  # what the apps do: exponential backoff with full jitter
                await asyncio.sleep(random.uniform(0.0, delay))
                delay = min(delay * 2, 8.0)

    done: list[float] = []
    t0 = [0.0]
    events = [asyncio.Event() for _ in ids]
    tasks = []
    for k, (tok, acc, ev) in enumerate(zip(toks, ids, events)):
        tasks.append(asyncio.create_task(session(tok, acc, ev, done, t0)))
        if k % 200 == 199:
            await asyncio.sleep(0.2)
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 180)
    # restart the node on the same port: everyone is cut off at once
    t0[0] = time.monotonic()
    await node.stop()
    t_stop = time.monotonic() - t0[0]
    await node.start(timeout=60)
    print(f"\nstop {t_stop:.1f}s, up again {time.monotonic() - t0[0]:.1f}s")
    await asyncio.wait_for(asyncio.gather(*tasks), 300)
    assert len(done) == N
    done.sort()
    print(f"\n{N} clients back after restart: p50 {done[N // 2]:.1f}s, last {done[-1]:.1f}s")
