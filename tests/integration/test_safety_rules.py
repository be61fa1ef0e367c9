"""Safety under stress (contract §12), through the WebSocket: no skipped steps, the reporter's notes,
preemption of a pending offer for a more urgent incident."""
from __future__ import annotations

import uuid

from testkit.client import incident_is
from testkit.geo import near


async def _assigned(hl, category: str = "medical"):
    medic = await hl.user("responder", skills=["medical", "fire", "general"])
    await medic.ok("duty.start", **near(0.001))
    resident = await hl.resident()
    inc = (await resident.ok("help.request", request_id=uuid.uuid4().hex, category=category,
                             **near(0)))["incident"]
    offer = await medic.push("offer", lambda m: m["incident"]["id"] == inc["id"])
    await medic.ok("offer.accept", offer_id=offer["offer_id"])
    return medic, resident, inc


async def test_a_responder_cannot_skip_to_resolved_but_a_dispatcher_may_close(hl):
    medic, resident, inc = await _assigned(hl)
    err = await medic.error("incident.progress", "conflict", incident_id=inc["id"], status="resolved")
    assert "next step is en_route" in err["message"]
    await medic.error("incident.progress", "conflict", incident_id=inc["id"], status="on_scene")
    await medic.ok("incident.progress", incident_id=inc["id"], status="en_route")
    err = await medic.error("incident.progress", "conflict", incident_id=inc["id"], status="resolved")
    assert "next step is on_scene" in err["message"]
    disp = await hl.user("dispatcher")
    st = await disp.ok("incident.events", incident_id=inc["id"])
    assert st["incident"]["status"] == "en_route"      # nothing of the refused taps landed
    await resident.no_push("incident.updated", incident_is(inc["id"], "resolved"), wait=0.2)
    # a dispatcher still ends it at any point, and the responder is free again
    closed = (await disp.ok("incident.close", incident_id=inc["id"], disposition="handled_by_phone"))["incident"]
    assert closed["status"] == "resolved"
    assert (await medic.ok("duty.end"))["responder"]["status"] == "off_duty"   # refused while busy
