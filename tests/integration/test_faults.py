"""Faults: Redis and PostgreSQL restarts, a slow consumer, a node killed mid-surge. Nothing acknowledged is lost."""
from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import pytest
import redis.asyncio as aioredis

from handlers.context import BUS, KEYS
from testkit import stack as stack_mod
from testkit.accounts import Front
from testkit.client import Client, http, incident_is
from testkit.geo import near
from testkit.nodes import InProcess
from testkit.private import PrivatePostgres, PrivateRedis

pytestmark = pytest.mark.cluster

T = TypeVar("T")


async def wait_until(check: Callable[[], Awaitable[T | None]], timeout: float = 15, every: float = 0.2) -> T:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(every)


async def ready(app: Front) -> tuple[int, Any]:
    return await http("GET", app.base + "/readyz")


@pytest.fixture
async def private_redis_app(stack, clean_db):
    r = PrivateRedis().start()
    s = stack_mod.Stack(admin_url=stack.admin_url, base_url=stack.base_url, database=stack.database,
                        redis_url=r.url, prefix=stack.prefix)
    app = await InProcess(s).start()
    try:
        yield app, r
    finally:
        await app.stop()
        r.kill()


async def test_redis_restart_mid_traffic(private_redis_app):
    app, r = private_redis_app
    medic = await app.user("responder", skills=["medical"])
    await medic.ok("duty.start", **near(0.001))
    resident = await app.resident()
    first = (await resident.ok("help.request", request_id="before", category="medical", **near(0)))["incident"]
    offer = await medic.push("offer")
    await medic.ok("offer.accept", offer_id=offer["offer_id"])
    for step in ("en_route", "on_scene", "resolved"):
        await medic.ok("incident.progress", incident_id=first["id"], status=step)

    r.kill()
    st, body = await wait_until(lambda: _down(app))
    assert body["failed"].keys() == {"redis"}
    # PostgreSQL still takes requests: acknowledged only once committed, dispatched once Redis is back
    during = (await resident.ok("help.request", request_id="during", category="medical", **near(0)))["incident"]
    assert during["status"] == "queued"

    r.start()
    await wait_until(lambda: _up(app))
    # the node re-subscribed, rebuilt its GEO index, re-announced presence; the sweeper dispatches the incident
    offer2 = await medic.push("offer", lambda m: m["incident"]["id"] == during["id"], timeout=20)
    await medic.ok("offer.accept", offer_id=offer2["offer_id"])
    await resident.push("incident.updated", incident_is(during["id"], "assigned"), timeout=10)
    conn = await asyncpg.connect(app.database_url)
    try:
        rows = await conn.fetch("SELECT request_id, status FROM incidents ORDER BY created_at")
    finally:
        await conn.close()
    assert [(x["request_id"], x["status"]) for x in rows] == [("before", "resolved"), ("during", "assigned")]


async def test_redis_restart_loses_no_acknowledged_chat_message(private_redis_app):
    """Messages acknowledged while Redis is down are in PostgreSQL; once Redis is back every subscriber
    gets all of them, in seq order, each once."""
    from tests.integration.test_mediation_chat import collect, setup_case

    app, r = private_redis_app
    case = await setup_case(app)
    cid, members = case["id"], case["clients"]
    for c in members:
        await c.ok("chat.subscribe", case_id=cid, room="joint")
    await members[0].ok("chat.send", case_id=cid, room="joint", client_msg_id="b1", body="before")
    r.kill()
    await wait_until(lambda: _down(app))
    acked = []
    for i, c in enumerate(members[:3]):              # filer, other party, mediator write during the outage
        ans = await c.ok("chat.send", case_id=cid, room="joint", client_msg_id=f"d{i}", body=f"during {i}")
        acked.append(ans["message"]["seq"])
    assert acked == [2, 3, 4]                        # committed, acknowledged: the doorbell did not ring
    r.start()
    await wait_until(lambda: _up(app))
    await members[1].ok("chat.send", case_id=cid, room="joint", client_msg_id="a1", body="after")
    for c in members:
        got = await collect(c, cid, "joint", 5)
        assert [m["seq"] for m in got] == [1, 2, 3, 4, 5], (c.account_id, [m["seq"] for m in got])
        await c.no_push("chat.message", wait=0.1)
    conn = await asyncpg.connect(app.database_url)
    try:
        ids = [x["client_msg_id"] for x in await conn.fetch(
            "SELECT client_msg_id FROM case_messages WHERE case_id = $1 ORDER BY seq", uuid.UUID(cid))]
    finally:
        await conn.close()
    assert ids == ["b1", "d0", "d1", "d2", "a1"]


async def _down(app: InProcess) -> tuple[int, Any] | None:
    st, body = await ready(app)
    return (st, body) if st == 503 else None


async def _up(app: InProcess) -> tuple[int, Any] | None:
    st, body = await ready(app)
    return (st, body) if st == 200 and app.app[BUS].connected else None


async def test_postgres_restart_answers_unavailable_then_resumes(stack):
    pg = PrivatePostgres().start()
    s = stack_mod.Stack(admin_url=pg.url, base_url=f"postgresql://postgres@127.0.0.1:{pg.port}",
                        database="hl_fault_" + uuid.uuid4().hex[:6], redis_url=stack.redis_url, prefix=stack.prefix)
    await s.create()
    app = await InProcess(s).start()
    try:
        resident = await app.resident()
        await resident.ok("help.request", request_id="a", category="other", **near(0))
        pg.stop()
        ans = await resident.call("help.request", request_id="b", category="other", **near(0))
        assert ans["type"] == "error" and ans["code"] == "unavailable", ans
        st, body = await ready(app)
        assert st == 503 and "postgres" in body["failed"]
        pg.start()

        async def resumed():
            a = await resident.call("help.request", request_id="b", category="other", **near(0))
            return a if a["type"] == "ok" else None
        ok = await wait_until(resumed, timeout=20, every=0.5)
        assert ok["incident"]["status"] == "escalated"
        conn = await asyncpg.connect(s.database_url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM incidents") == 2
        finally:
            await conn.close()
    finally:
        await app.stop()
        pg.cleanup()


def _masked_frame(text: str) -> bytes:
    """A client text frame (FIN, opcode 1, masked) as RFC 6455 lays it out."""
    import os
    import struct

    data, mask = text.encode(), os.urandom(4)
    n = len(data)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


async def _client_that_never_reads(hl: Front, token: str) -> socket.socket:
    """A WebSocket client that says hello, watches the queue, then stops reading (a tiny receive window)."""
    import base64
    import os

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", int(hl.base.rsplit(":", 1)[1])))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += await asyncio.to_thread(sock.recv, 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    sock.sendall(_masked_frame(json.dumps({"type": "hello", "token": token})))
    sock.sendall(_masked_frame(json.dumps({"type": "queue.watch", "ref": "w"})))
    return sock


@pytest.mark.config(server_ws_max_queue=100)
async def test_slow_consumer_is_disconnected_and_others_go_on(hl):
    import base64
    import os

    token = await hl.login((await _staff(hl))["username"])
    slow = await _client_that_never_reads(hl, token)
    fast = await hl.connect(token)
    await fast.ok("queue.watch")
    await wait_until(lambda: _watchers(hl, 2))
    # a flood of 20 KB incompressible events on the dispatch channel; the slow client reads nothing
    r = aioredis.Redis.from_url(hl.redis_url)
    blob = json.dumps({"type": "responder.updated",
                       "responder": {"id": "x", "pad": base64.b64encode(os.urandom(15000)).decode()}})
    try:
        for i in range(1000):
            await r.publish(hl.app[KEYS].dispatch_channel, blob)
            if i % 10 == 0:
                await asyncio.sleep(0.01)   # a pace a reading client keeps up with
    finally:
        await r.aclose()
    await wait_until(lambda: _slow_dropped(hl), timeout=20)
    # the reading client got everything and is still served
    await wait_until(lambda: _count(fast, 1000), timeout=20)
    await fast.ok("queue.watch")
    slow.close()


async def _watchers(hl: InProcess, n: int) -> bool:
    return hl.app[BUS].listening(hl.app[KEYS].dispatch_channel) >= n


async def _staff(hl: Front) -> dict[str, str]:
    username = "disp-" + uuid.uuid4().hex[:6]
    await hl.add_user(username, "dispatcher")
    return {"username": username}


async def _slow_dropped(hl: Front) -> bool:
    st, text = await http("GET", hl.base + "/metrics")
    return "helpline_ws_slow_consumers_total 1.0" in text


async def _count(client: Client, n: int) -> bool:
    return len([p for p in client.pushes if p["type"] == "responder.updated"]) >= n


async def test_node_killed_mid_surge_loses_nothing(cluster):
    a, b = await cluster.start_node(), await cluster.start_node()
    responders = []
    for i in range(4):
        r = await b.user("responder", skills=["medical"])
        await r.ok("duty.start", **near(0.001 * (i + 1)))
        responders.append(r)

    async def auto_accept(r: Client) -> None:
        while True:
            offer = await r.push("offer", timeout=60)
            with contextlib.suppress(Exception):
                ans = await r.call("offer.accept", offer_id=offer["offer_id"])
                if ans["type"] == "ok":
                    for step in ("en_route", "on_scene", "resolved"):
                        await r.ok("incident.progress", incident_id=ans["incident"]["id"], status=step)
    acceptors = [asyncio.create_task(auto_accept(r)) for r in responders]

    devices = [f"surge-{i}-{uuid.uuid4().hex[:6]}" for i in range(30)]
    tokens = [await a.device_token(d) for d in devices]
    clients = [await a.connect(t) for t in tokens]
    acked: dict[int, str] = {}

    async def press(i: int) -> None:
        with contextlib.suppress(Exception):
            ans = await clients[i].call("help.request", request_id=f"req-{i}", category="medical", **near(0),
                                        timeout=5)
            if ans["type"] == "ok":
                acked[i] = ans["incident"]["id"]
    presses = [asyncio.create_task(press(i)) for i in range(30)]
    await asyncio.sleep(0.05)
    a.kill()
    await asyncio.gather(*presses)
    # every resident's app reconnects to the surviving node and re-sends what was not acknowledged
    for i, d in enumerate(devices):
        c = await b.connect(await b.device_token(d))
        mine = {x["id"] for x in c.welcome["open_incidents"]}
        if i in acked:
            assert acked[i] in mine or await _closed(b, c, acked[i])
        ans = await c.ok("help.request", request_id=f"req-{i}", category="medical", **near(0))
        if i in acked:
            assert ans["incident"]["id"] == acked[i]

    async def settled():
        conn = await asyncpg.connect(cluster.database_url)
        try:
            return await conn.fetch("SELECT request_id, status FROM incidents")
        finally:
            await conn.close()
    rows = await wait_until(lambda: _all_final(settled), timeout=60, every=1)
    assert len(rows) == 30 and len({x["request_id"] for x in rows}) == 30
    for t in acceptors:
        t.cancel()


async def _closed(node: Front, client: Client, iid: str) -> bool:
    ev = await client.ok("incident.events", incident_id=iid)
    return ev["incident"]["status"] in ("resolved", "assigned", "escalated")


async def _all_final(fetch: Callable[[], Awaitable[list[asyncpg.Record]]]) -> list[asyncpg.Record] | None:
    rows = await fetch()
    done = [x for x in rows if x["status"] in ("resolved", "escalated")]
    return rows if len(rows) == 30 and len(done) == 30 else None
