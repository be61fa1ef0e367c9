"""The basic help flow over real WebSockets, on real PostgreSQL and Redis."""
from __future__ import annotations

import uuid

from testkit.client import http, incident_is
from testkit.geo import near


async def test_press_offer_accept_progress_resolved(hl):
    disp = await hl.user("dispatcher")
    snap = await disp.ok("queue.watch")
    assert snap["incidents"] == [] and snap["responders"] == []
    medic = await hl.user("responder", name="Medic Wang", skills=["medical"])
    r = await medic.ok("duty.start", **near(0.003))
    assert r["responder"]["status"] == "available" and r["responder"]["skills"] == ["medical"]
    await disp.push("responder.updated", lambda m: m["responder"]["id"] == medic.account_id)

    resident = await hl.resident()
    inc = (await resident.ok("help.request", request_id=uuid.uuid4().hex, category="medical",
                             note="chest pain", accuracy_m=12, **near(0)))["incident"]
    assert inc["status"] == "offered" and inc["ref_no"].startswith("H-") and inc["channel"] == "ws"
    assert inc["note"] == "chest pain" and inc["offer_attempts"] == 1 and inc["responder"] is None

    offer = await medic.push("offer", lambda m: m["incident"]["id"] == inc["id"])
    assert offer["expires_at"] and offer["incident"]["category"] == "medical"
    acc = (await medic.ok("offer.accept", offer_id=offer["offer_id"]))["incident"]
    assert acc["status"] == "assigned" and acc["responder"] == {"id": medic.account_id, "name": "Medic Wang"}

    pushed = await resident.push("incident.updated", incident_is(inc["id"], "assigned"))
    assert pushed["incident"]["responder"]["name"] == "Medic Wang"
    await disp.push("incident.updated", incident_is(inc["id"], "assigned"))
    busy = await disp.push("responder.updated", lambda m: m["responder"]["status"] == "busy")
    assert busy["responder"]["id"] == medic.account_id

    for status in ("en_route", "on_scene", "resolved"):
        got = (await medic.ok("incident.progress", incident_id=inc["id"], status=status))["incident"]
        assert got["status"] == status
        await resident.push("incident.updated", incident_is(inc["id"], status))
        await disp.push("incident.updated", incident_is(inc["id"], status))
    await disp.push("responder.updated", lambda m: m["responder"]["status"] == "available")

    # the event log has the whole story, and is served to those allowed to see it
    st, body = await http("GET", f"{hl.base}/api/incidents/{inc['id']}", token=await hl.device_token())
    assert st == 403 and body["error"]["code"] == "forbidden"
    disp_token = await hl.login(disp.welcome["account"]["username"])
    st, body = await http("GET", f"{hl.base}/api/incidents/{inc['id']}", token=disp_token)
    assert st == 200
    kinds = [e["kind"] for e in body["events"]]
    assert kinds == ["reported", "offered", "assigned", "en_route", "on_scene", "resolved"]
    assert body["incident"]["status"] == "resolved"


async def test_help_request_is_idempotent(hl):
    resident = await hl.resident()
    rid = uuid.uuid4().hex
    a = (await resident.ok("help.request", request_id=rid, category="fire", **near(0)))["incident"]
    b = (await resident.ok("help.request", request_id=rid, category="fire", **near(0)))["incident"]
    assert a["id"] == b["id"] and a["ref_no"] == b["ref_no"]
    # over HTTP: 201 the first time, 200 and the same incident after
    token = await hl.device_token()
    body = {"request_id": rid, "category": "police", **near(0.01)}
    st1, r1 = await http("POST", hl.base + "/api/help", token=token, json=body)
    st2, r2 = await http("POST", hl.base + "/api/help", token=token, json=body)
    assert (st1, st2) == (201, 200) and r1["incident"]["id"] == r2["incident"]["id"]
    assert r1["incident"]["channel"] == "http" and r1["incident"]["id"] != a["id"]
    async with __import__("asyncpg").create_pool(hl.database_url, min_size=1, max_size=1) as pool:
        n = await pool.fetchval("SELECT count(*) FROM incidents")
    assert n == 2


async def test_no_candidate_escalates_and_dispatcher_assigns(hl):
    disp = await hl.user("dispatcher")
    await disp.ok("queue.watch")
    resident = await hl.resident()
    inc = (await resident.ok("help.request", request_id="r1", category="fire", **near(0)))["incident"]
    assert inc["status"] == "escalated"
    await disp.push("incident.updated", incident_is(inc["id"], "escalated"))
    # a firefighter far away (out of radius) comes on duty; the dispatcher assigns them anyway
    ff = await hl.user("responder", name="Fire Li", skills=["fire"])
    await ff.ok("duty.start", **near(0.5))
    got = (await disp.ok("incident.assign", incident_id=inc["id"], responder_id=ff.account_id))["incident"]
    assert got["status"] == "assigned" and got["responder"]["id"] == ff.account_id
    await resident.push("incident.updated", incident_is(inc["id"], "assigned"))
    await ff.push("incident.updated", incident_is(inc["id"], "assigned"))
    # assigning again is a conflict: exactly one responder
    other = await hl.user("responder", skills=["fire"])
    await other.ok("duty.start", **near(0.001))
    await disp.error("incident.assign", "conflict", incident_id=inc["id"], responder_id=other.account_id)


async def test_welcome_restores_state_after_reconnect(hl):
    medic = await hl.user("responder", skills=["medical"])
    await medic.ok("duty.start", **near(0.001))
    token = await hl.device_token("device-restore-1")
    resident = await hl.connect(token)
    inc = (await resident.ok("help.request", request_id="x", category="medical", **near(0)))["incident"]
    offer = await medic.push("offer")
    await resident.close()
    again = await hl.connect(token)
    assert [i["id"] for i in again.welcome["open_incidents"]] == [inc["id"]]
    medic_token = await hl.login(medic.welcome["account"]["username"])
    medic2 = await hl.connect(medic_token)
    assert medic2.welcome["offer"]["offer_id"] == offer["offer_id"]
    await medic2.ok("offer.accept", offer_id=offer["offer_id"])
    await medic2.close()
    medic3 = await hl.connect(medic_token)
    assert [i["id"] for i in medic3.welcome["open_incidents"]] == [inc["id"]]
    assert medic3.welcome["offer"] is None


async def test_resident_cancels(hl):
    medic = await hl.user("responder", skills=["medical"])
    await medic.ok("duty.start", **near(0.001))
    resident = await hl.resident()
    inc = (await resident.ok("help.request", request_id="c", category="medical", **near(0)))["incident"]
    offer = await medic.push("offer")
    got = (await resident.ok("help.cancel", incident_id=inc["id"]))["incident"]
    assert got["status"] == "cancelled"
    w = await medic.push("offer.withdrawn")
    assert w == {"type": "offer.withdrawn", "offer_id": offer["offer_id"], "reason": "cancelled"}
    await medic.error("offer.accept", "conflict", offer_id=offer["offer_id"])
    await resident.error("help.cancel", "conflict", incident_id=inc["id"])
    other = await hl.resident()
    await other.error("help.cancel", "not_found", incident_id=str(__import__("uuid").uuid4()))
