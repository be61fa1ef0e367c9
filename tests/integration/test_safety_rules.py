"""Safety under stress (contract §12), through the WebSocket: no skipped steps, the reporter's notes,
preemption of a pending offer for a more urgent incident."""
from __future__ import annotations

import uuid
from typing import Any

from testkit.client import Client, incident_is
from testkit.geo import near


async def _assigned(hl: Any, category: str = "medical") -> tuple[Client, Client, dict[str, Any]]:
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


async def test_the_reporter_adds_a_note_seen_live_by_responder_and_dispatcher(hl):
    disp = await hl.user("dispatcher")
    await disp.ok("queue.watch")
    medic, resident, inc = await _assigned(hl)
    got = (await resident.ok("incident.note", incident_id=inc["id"], text="Third floor, blue door"))["incident"]
    assert got["id"] == inc["id"] and got["note"].endswith("Third floor, blue door")
    seen = lambda m: m["incident"]["id"] == inc["id"] and "blue door" in (m["incident"]["note"] or "")  # noqa: E731
    await medic.push("incident.updated", seen)
    await disp.push("incident.updated", seen)
    # appended, like an SMS follow-up: the first note stays
    again = (await resident.ok("incident.note", incident_id=inc["id"], text="Ring twice"))["incident"]
    assert again["note"].endswith("Third floor, blue door\nRing twice")
    # someone else, even another resident, may not write into it; empty or too long is refused
    other = await hl.resident()
    await other.error("incident.note", "forbidden", incident_id=inc["id"], text="fake: all fine, go home")
    await medic.error("incident.note", "forbidden", incident_id=inc["id"], text="x")
    await resident.error("incident.note", "bad_request", incident_id=inc["id"], text="")
    await resident.error("incident.note", "bad_request", incident_id=inc["id"], text="   ")
    await resident.error("incident.note", "bad_request", incident_id=inc["id"], text="x" * 1001)
    await resident.ok("incident.note", incident_id=inc["id"], text="y" * 1000)
    st = await disp.ok("incident.events", incident_id=inc["id"])
    assert "fake" not in st["incident"]["note"]
    assert [e["kind"] for e in st["events"]].count("note_added") == 3
    # once closed, nothing more is added
    await disp.ok("incident.close", incident_id=inc["id"], disposition="resolved")
    await resident.error("incident.note", "conflict", incident_id=inc["id"], text="one more thing")
