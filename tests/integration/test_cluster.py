"""Several `helpline serve` processes on one PostgreSQL and Redis act as one service."""
from __future__ import annotations

import asyncio

import pytest

from testkit.client import incident_is
from testkit.geo import near

pytestmark = pytest.mark.cluster


async def test_three_nodes_one_service(cluster):
    a, b, c = [await cluster.start_node() for _ in range(3)]
    disp = await c.user("dispatcher")
    await disp.ok("queue.watch")
    medic = await b.user("responder", name="Medic on B", skills=["medical"])
    await medic.ok("duty.start", **near(0.002))
    await disp.push("responder.updated", lambda m: m["responder"]["id"] == medic.account_id)
    resident = await a.resident()
    inc = (await resident.ok("help.request", request_id="k", category="medical", **near(0)))["incident"]
    offer = await medic.push("offer", lambda m: m["incident"]["id"] == inc["id"])
    await disp.push("incident.updated", incident_is(inc["id"], "offered"))
    await medic.ok("offer.accept", offer_id=offer["offer_id"])
    got = await resident.push("incident.updated", incident_is(inc["id"], "assigned"))
    assert got["incident"]["responder"]["name"] == "Medic on B"
    await disp.push("incident.updated", incident_is(inc["id"], "assigned"))
    for status in ("en_route", "on_scene", "resolved"):
        await medic.ok("incident.progress", incident_id=inc["id"], status=status)
        await resident.push("incident.updated", incident_is(inc["id"], status))
        await disp.push("incident.updated", incident_is(inc["id"], status))


@pytest.mark.config(dispatch_offer_timeout_s=3)
async def test_killed_node_with_a_pending_offer_another_node_finishes_the_cascade(cluster):
    a, b = await cluster.start_node(), await cluster.start_node()
    device = "device-survivor-1"
    resident = await a.connect(await a.device_token(device))
    r0 = await a.user("responder", name="R0 on A", skills=["medical"])
    await r0.ok("duty.start", **near(0.001))
    r1 = await b.user("responder", name="R1 on B", skills=["medical"])
    await r1.ok("duty.start", **near(0.003))
    inc = (await resident.ok("help.request", request_id="kill", category="medical", **near(0)))["incident"]
    await r0.push("offer", lambda m: m["incident"]["id"] == inc["id"])
    a.kill()                                   # kill -9: the node that took the request and holds R0
    offer = await r1.push("offer", lambda m: m["incident"]["id"] == inc["id"], timeout=15)
    assert offer["incident"]["offer_attempts"] == 2
    await r1.ok("offer.accept", offer_id=offer["offer_id"])
    # the resident's app reconnects to the surviving node and picks up where it was
    again = await b.connect(await b.device_token(device))
    (mine,) = again.welcome["open_incidents"]
    assert mine["id"] == inc["id"] and mine["status"] == "assigned" and mine["responder"]["name"] == "R1 on B"


async def test_orphaned_queued_incident_is_dispatched_by_a_live_node(cluster, stack):
    """An incident committed as queued whose node died before offering it is picked up by another node."""
    import asyncpg

    node = await cluster.start_node()
    medic = await node.user("responder", skills=["medical"])
    await medic.ok("duty.start", **near(0.001))
    reporter = await node.add_user(role="resident")
    conn = await asyncpg.connect(stack.database_url)
    try:  # what a node leaves behind if it dies right after the commit
        iid = await conn.fetchval(
            "INSERT INTO incidents (ref_no, reporter_id, request_id, status, category, skill, priority, lat, lon,"
            " channel) VALUES ('H-' || nextval('incident_ref_seq'), $1, 'orphan', 'queued', 'medical', 'medical',"
            " 1, $2, $3, 'ws') RETURNING id", reporter, near(0)["lat"], near(0)["lon"])
    finally:
        await conn.close()
    offer = await medic.push("offer", lambda m: m["incident"]["id"] == str(iid), timeout=10)
    assert offer["incident"]["status"] == "offered"


async def test_cli_on_the_same_data_while_serving(cluster):
    node = await cluster.start_node()
    r = cluster.cli("user", "add", "cli-disp", "--role", "dispatcher", "--password", "Pw-123456!",
                    "--name", "Ops Zhang")
    assert r.returncode == 0, r.stderr
    account_id = r.stdout.strip().splitlines()[-1]
    tok = cluster.cli("token", "cli-disp")
    assert tok.returncode == 0, tok.stderr
    client = await node.connect(tok.stdout.strip())
    assert client.welcome["account"]["id"] == account_id
    assert client.welcome["account"]["name"] == "Ops Zhang"
    await client.ok("queue.watch")
    dup = cluster.cli("user", "add", "cli-disp", "--role", "dispatcher", "--password", "Pw-123456!")
    assert dup.returncode == 1 and "already exists" in dup.stderr
    bad = cluster.cli("user", "add", "x", "--role", "pilot", "--password", "Pw-123456!")
    assert bad.returncode == 2
    weak = cluster.cli("user", "add", "weak", "--role", "resident", "--password", "short")
    assert weak.returncode == 1 and "password" in weak.stderr
    missing = cluster.cli("token", "nobody")
    assert missing.returncode == 1
    assert cluster.cli("migrate").returncode == 0
    purged = cluster.cli("purge", "--days", "30")
    assert purged.returncode == 0 and "incidents=0" in purged.stdout and "cases=0" in purged.stdout, purged
    assert cluster.cli("purge", "--days", "0").returncode == 2
    await asyncio.sleep(0)
