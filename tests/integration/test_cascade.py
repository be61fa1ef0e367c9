"""Offers move on: decline, timeout, disconnect; escalation after max_offers; duty rules."""
from __future__ import annotations

import asyncio

import pytest

from testkit.accounts import Front
from testkit.client import Client, incident_is
from testkit.geo import near


async def on_duty(hl: Front, n: int, skill: str = "medical", step: float = 0.002) -> list[Client]:
    """n responders on duty, the i-th about i*220 m north of HOME (so the nearest is offered first)."""
    out = []
    for i in range(n):
        r = await hl.user("responder", name=f"R{i}", skills=[skill])
        await r.ok("duty.start", **near(step * (i + 1)))
        out.append(r)
    return out


async def test_decline_moves_to_next_nearest_then_escalates_after_max_offers(hl):
    r0, r1, r2, r3 = await on_duty(hl, 4)
    resident = await hl.resident()
    inc = (await resident.ok("help.request", request_id="d", category="medical", **near(0)))["incident"]
    for attempt, r in enumerate((r0, r1, r2), start=1):
        offer = await r.push("offer", lambda m: m["incident"]["id"] == inc["id"])
        assert offer["incident"]["offer_attempts"] == attempt
        await r.ok("offer.decline", offer_id=offer["offer_id"])
        await r.error("offer.decline", "conflict", offer_id=offer["offer_id"])
    await resident.push("incident.updated", incident_is(inc["id"], "escalated"))
    await r3.no_push("offer")  # max_offers (3) reached: the fourth is never asked


async def test_timeout_moves_on(hl):
    r0, r1 = await on_duty(hl, 2)
    resident = await hl.resident()
    inc = (await resident.ok("help.request", request_id="t", category="medical", **near(0)))["incident"]
    first = await r0.push("offer")
    withdrawn = await r0.push("offer.withdrawn", timeout=6)   # offer_timeout_s is 2 in tests
    assert withdrawn == {"type": "offer.withdrawn", "offer_id": first["offer_id"], "reason": "expired"}
    second = await r1.push("offer", timeout=5)
    assert second["incident"]["id"] == inc["id"] and second["incident"]["offer_attempts"] == 2
    await r0.error("offer.accept", "conflict", offer_id=first["offer_id"])
    got = (await r1.ok("offer.accept", offer_id=second["offer_id"]))["incident"]
    assert got["status"] == "assigned" and got["responder"]["id"] == r1.account_id


async def test_disconnect_moves_on_and_excludes_offline_responders(hl):
    r0, r1 = await on_duty(hl, 2)
    resident = await hl.resident()
    inc = (await resident.ok("help.request", request_id="x", category="medical", **near(0)))["incident"]
    await r0.push("offer")
    await r0.close()
    offer = await r1.push("offer", timeout=5)
    assert offer["incident"]["id"] == inc["id"]
    # the disconnected responder is still on duty but not offered anything while offline
    resident2 = await hl.resident()
    await r1.ok("offer.accept", offer_id=offer["offer_id"])
    inc2 = (await resident2.ok("help.request", request_id="y", category="medical", **near(0)))["incident"]
    assert inc2["status"] == "escalated"


async def test_skill_and_radius_decide_who_is_offered(hl):
    police = await hl.user("responder", skills=["police"])
    await police.ok("duty.start", **near(0.001))
    far_medic = await hl.user("responder", skills=["medical"])
    await far_medic.ok("duty.start", **near(0.2))   # about 22 km: outside the 10 km radius
    medic = await hl.user("responder", skills=["general", "medical"])
    await medic.ok("duty.start", **near(0.05))
    resident = await hl.resident()
    inc = (await resident.ok("help.request", request_id="s", category="medical", **near(0)))["incident"]
    offer = await medic.push("offer")
    assert offer["incident"]["id"] == inc["id"]
    await police.no_push("offer", wait=0.1)
    await far_medic.no_push("offer", wait=0.1)


async def test_a_responder_holds_one_offer_at_a_time(hl):
    (r0,) = await on_duty(hl, 1)
    a, b = await hl.resident(), await hl.resident()
    i1 = (await a.ok("help.request", request_id="1", category="medical", **near(0)))["incident"]
    i2 = (await b.ok("help.request", request_id="2", category="medical", **near(0)))["incident"]
    assert i1["status"] == "offered" and i2["status"] == "escalated"
    offers = [p for p in r0.pushes if p["type"] == "offer"]
    await asyncio.sleep(0.2)
    assert len([p for p in r0.pushes if p["type"] == "offer"]) == len(offers) == 1


async def test_duty_rules(hl):
    r = await hl.user("responder", skills=["medical"])
    await r.error("duty.end", "conflict")
    await r.error("location.update", "conflict", **near(0))
    await r.ok("duty.start", **near(0.001))
    await r.ok("location.update", **near(0.002))
    resident = await hl.resident()
    inc = (await resident.ok("help.request", request_id="q", category="medical", **near(0)))["incident"]
    offer = await r.push("offer")
    await r.ok("offer.accept", offer_id=offer["offer_id"])
    await r.error("duty.end", "conflict")  # busy: finish the incident first
    for step in ("en_route", "on_scene", "resolved"):
        await r.ok("incident.progress", incident_id=inc["id"], status=step)
    ended = (await r.ok("duty.end"))["responder"]
    assert ended["status"] == "off_duty"


async def test_going_off_duty_with_a_pending_offer_passes_it_on(hl):
    r0, r1 = await on_duty(hl, 2)
    resident = await hl.resident()
    await resident.ok("help.request", request_id="o", category="medical", **near(0))
    await r0.push("offer")
    await r0.ok("duty.end")
    await r1.push("offer", timeout=5)


@pytest.mark.config(dispatch_max_offers=1)
async def test_max_offers_is_configurable(hl):
    r0, r1 = await on_duty(hl, 2)
    resident = await hl.resident()
    inc = (await resident.ok("help.request", request_id="m", category="medical", **near(0)))["incident"]
    offer = await r0.push("offer")
    await r0.ok("offer.decline", offer_id=offer["offer_id"])
    await resident.push("incident.updated", incident_is(inc["id"], "escalated"))
    await r1.no_push("offer")


async def test_locating_a_roughly_placed_incident_makes_it_matchable(hl):
    """A resident page without a position sends the city centre with a huge accuracy: escalated until located."""
    medic = await hl.user("responder", skills=["medical"])
    await medic.ok("duty.start", **near(0.001))
    disp = await hl.user("dispatcher")
    resident = await hl.resident()
    inc = (await resident.ok("help.request", request_id="rough", category="medical", accuracy_m=50000,
                             **near(0)))["incident"]
    assert inc["status"] == "escalated"
    ev = await disp.ok("incident.events", incident_id=inc["id"])
    assert ev["events"][-1]["data"]["reason"] == "no_position"
    located = (await disp.ok("incident.locate", incident_id=inc["id"], **near(0.0005)))["incident"]
    assert located["status"] == "offered" and located["accuracy_m"] is None
    await medic.push("offer", lambda m: m["incident"]["id"] == inc["id"])
