"""Issue 20: Redis killed for real (SIGKILL) and started again empty, under a `helpline serve` process
with responders on duty. Reports made during the outage and right after it are acknowledged and kept,
none escalates `no_candidate` while the live index and presence are rebuilt, and once Redis is back
every one of them is offered to the responders on duty; /readyz says not ready meanwhile. And a Redis
that hangs (SIGSTOP) does not hold a report for its socket timeout."""
from __future__ import annotations

import asyncio
import os
import signal
import uuid
from typing import Any

import asyncpg
import pytest

from testkit import stack as stack_mod
from testkit.client import Client, http, incident_is
from testkit.geo import near
from testkit.nodes import Cluster, InProcess, NodeProcess
from testkit.private import PrivateRedis

pytestmark = pytest.mark.cluster


@pytest.fixture
async def redis_node(stack, clean_db):
    r = PrivateRedis().start()
    s = stack_mod.Stack(admin_url=stack.admin_url, base_url=stack.base_url, database=stack.database,
                        redis_url=r.url, prefix=stack.prefix)
    cluster = Cluster(s, dispatch_offer_timeout_s=60)    # offers wait for their answer: no expiry in play
    try:
        yield await cluster.start_node(), r
    finally:
        await cluster.stop()
        r.kill()


async def readyz(node: NodeProcess) -> tuple[int, Any]:
    return await http("GET", node.base + "/readyz")


async def report(resident: Client, tag: str) -> dict[str, Any]:
    ans = await resident.call("help.request", timeout=15, request_id=tag, category="medical", **near(0))
    assert ans["type"] == "ok", ans             # acknowledged: committed to PostgreSQL
    inc: dict[str, Any] = ans["incident"]
    return inc


async def test_redis_killed_and_restarted_empty_loses_no_report_and_escalates_none(redis_node):
    node, r = redis_node
    responders = []
    for i in range(6):
        c = await node.user("responder", name=f"R{i}", skills=["medical"])
        await c.ok("duty.start", **near(0.002 * (i + 1)))
        responders.append(c)
    dispatcher = await node.user("dispatcher")
    await dispatcher.ok("queue.watch")
    residents = [await node.resident() for _ in range(6)]     # device tokens minted while Redis is up

    r.kill()                                                   # SIGKILL: no shutdown, nothing saved
    for _ in range(100):
        st, body = await readyz(node)
        if st == 503:
            break
        await asyncio.sleep(0.1)
    assert st == 503 and body["failed"].keys() == {"redis"}, (st, body)
    during = [await report(c, f"during-{i}") for i, c in enumerate(residents[:3])]
    assert all(i["status"] == "queued" for i in during), [i["status"] for i in during]
    st, _ = await readyz(node)
    assert st == 503

    r.start()                                                  # empty, same address
    # at once, before the node has rebuilt the live index and presence: these must wait, not escalate
    after = [await report(c, f"after-{i}") for i, c in enumerate(residents[3:])]
    assert all(i["status"] in ("queued", "offered") for i in after), [i["status"] for i in after]
    incidents = {i["id"] for i in during + after}

    # every report is offered to a responder on duty, each to one, and accepted
    async def take(c: Client) -> str:
        offer = await c.push("offer", lambda m: m["incident"]["id"] in incidents, timeout=30)
        await c.ok("offer.accept", offer_id=offer["offer_id"])
        return str(offer["incident"]["id"])
    taken = await asyncio.gather(*(take(c) for c in responders))
    assert set(taken) == incidents
    for c, inc in zip(residents, during + after, strict=True):     # and each reporter is told
        await c.push("incident.updated", incident_is(inc["id"], "assigned"), timeout=10)
    st, _ = await readyz(node)
    assert st == 200

    conn = await asyncpg.connect(node.database_url)
    try:
        rows = await conn.fetch("SELECT request_id, status FROM incidents WHERE id = ANY($1::uuid[])",
                                [uuid.UUID(i) for i in incidents])
        escalations = await conn.fetch("SELECT incident_id, data FROM incident_events WHERE kind = 'escalated'")
    finally:
        await conn.close()
    assert sorted((x["request_id"], x["status"]) for x in rows) == sorted(
        [(f"during-{i}", "assigned") for i in range(3)] + [(f"after-{i}", "assigned") for i in range(3)])
    assert escalations == [], [dict(e) for e in escalations]
    assert not [ln for ln in node.log_problems() if "Traceback" in ln or " ERROR " in ln]


async def test_a_hung_redis_does_not_hold_a_report(stack, clean_db):
    """Redis stopped (SIGSTOP), not gone: its socket timeout is 5 s, and a report used to wait for it twice
    (the nearby search, then the doorbell): 10 s, past the 6 s after which the resident page gives up on
    the socket. Now each waits at most 1 s; the report is committed, acknowledged queued, and offered
    once Redis answers again."""
    r = PrivateRedis().start()
    s = stack_mod.Stack(admin_url=stack.admin_url, base_url=stack.base_url, database=stack.database,
                        redis_url=r.url, prefix=stack.prefix)
    app = await InProcess(s).start()
    assert r.proc is not None
    pid = r.proc.pid
    try:
        medic = await app.user("responder", skills=["medical"])
        await medic.ok("duty.start", **near(0.001))
        resident = await app.resident()
        os.kill(pid, signal.SIGSTOP)
        ans = await resident.call("help.request", timeout=6, request_id="hung", category="medical", **near(0))
        assert ans["type"] == "ok" and ans["incident"]["status"] == "queued", ans
        os.kill(pid, signal.SIGCONT)
        offer = await medic.push("offer", lambda m: m["incident"]["id"] == ans["incident"]["id"], timeout=30)
        await medic.ok("offer.accept", offer_id=offer["offer_id"])
    finally:
        os.kill(pid, signal.SIGCONT)
        await app.stop()
        r.kill()
