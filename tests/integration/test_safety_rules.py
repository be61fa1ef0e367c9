"""Safety under stress (contract §12), through the WebSocket: no skipped steps, the reporter's notes,
preemption of a pending offer for a more urgent incident."""
from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from testkit.client import Client, incident_is
from testkit.geo import near
from tests.integration.test_races import invariants


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


async def _held_offer(hl: Any, medic: Client) -> tuple[Client, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A P1-like incident nobody can be offered (escalated: `other` needs `general`) and a medical one whose
    offer `medic` holds: (dispatcher, escalated incident, offered incident, the offer)."""
    disp = await hl.user("dispatcher")
    await disp.ok("queue.watch")
    urgent = (await (await hl.resident()).ok("help.request", request_id=uuid.uuid4().hex, category="other",
                                             **near(0)))["incident"]
    assert urgent["status"] == "escalated"
    minor = (await (await hl.resident()).ok("help.request", request_id=uuid.uuid4().hex, category="medical",
                                            **near(0)))["incident"]
    offer = await medic.push("offer", lambda m: m["incident"]["id"] == minor["id"])
    return disp, urgent, minor, offer


async def test_a_dispatchers_assign_preempts_the_offer_and_the_other_incident_moves_on(hl):
    medic = await hl.user("responder", skills=["medical"])
    await medic.ok("duty.start", **near(0.001))
    disp, urgent, minor, offer = await _held_offer(hl, medic)
    medic2 = await hl.user("responder", skills=["medical"])       # on duty only now: minor's next candidate
    await medic2.ok("duty.start", **near(0.002))
    got = (await disp.ok("incident.assign", incident_id=urgent["id"], responder_id=medic.account_id))["incident"]
    assert got["status"] == "assigned" and got["responder"]["id"] == medic.account_id
    gone = await medic.push("offer.withdrawn", lambda m: m["offer_id"] == offer["offer_id"])
    assert gone["reason"] == "preempted"
    await medic.error("offer.accept", "conflict", offer_id=offer["offer_id"])
    nxt = await medic2.push("offer", lambda m: m["incident"]["id"] == minor["id"])
    st = await disp.ok("incident.events", incident_id=minor["id"])
    assert st["incident"]["status"] == "offered" and st["incident"]["offer_attempts"] == 2
    withdrawn = [e for e in st["events"] if e["kind"] == "offer_withdrawn"]
    assert withdrawn and withdrawn[0]["data"]["reason"] == "preempted", st["events"]
    await medic2.ok("offer.accept", offer_id=nxt["offer_id"])
    await invariants(hl.database_url)


async def test_preempted_with_no_one_else_the_other_incident_escalates(hl):
    medic = await hl.user("responder", skills=["medical"])
    await medic.ok("duty.start", **near(0.001))
    disp, urgent, minor, offer = await _held_offer(hl, medic)
    await disp.ok("incident.assign", incident_id=urgent["id"], responder_id=medic.account_id)
    assert (await medic.push("offer.withdrawn"))["reason"] == "preempted"
    await disp.push("incident.updated", incident_is(minor["id"], "escalated"))
    await invariants(hl.database_url)


async def _later(after: float, c: Client, type_: str, **fields: Any) -> dict[str, Any]:
    await asyncio.sleep(after)
    return await c.call(type_, **fields)


async def test_assign_racing_the_accept_of_the_other_offer_ends_with_one_outcome_each(hl):
    winners: set[str] = set()
    for i in range(8):
        medic = await hl.user("responder", skills=["medical"])
        await medic.ok("duty.start", **near(0.001))
        disp, urgent, minor, offer = await _held_offer(hl, medic)
        # the accept sent with the assign, or a little after it: both ways of winning are tried
        answers = list(await asyncio.gather(
            _later((0.0, 0.002, 0.01, 0.3)[i % 4], medic, "offer.accept", offer_id=offer["offer_id"]),
            disp.call("incident.assign", incident_id=urgent["id"], responder_id=medic.account_id)))
        winners.add("accept" if answers[0]["type"] == "ok" else "assign")
        assert sorted(a["type"] for a in answers) == ["error", "ok"], answers
        assert all(a["code"] == "conflict" for a in answers if a["type"] == "error"), answers
        a = (await disp.ok("incident.events", incident_id=urgent["id"]))["incident"]
        b = (await disp.ok("incident.events", incident_id=minor["id"]))["incident"]
        if answers[0]["type"] == "ok":      # the accept won: the responder is on the minor one
            assert b["status"] == "assigned" and b["responder"]["id"] == medic.account_id
            assert a["status"] == "escalated" and a["responder"] is None
        else:                               # the assign won: the minor one went back to matching
            assert a["status"] == "assigned" and a["responder"]["id"] == medic.account_id
            assert b["status"] == "escalated" and b["responder"] is None
        await invariants(hl.database_url)
        # leave nothing open for the next round
        for inc in (a, b):
            await disp.ok("incident.close", incident_id=inc["id"], disposition="resolved")
        await medic.ok("duty.end")
    assert winners == {"accept", "assign"}    # the accept alone first, the assign well first: both were seen


async def _p3_offered(hl: Any) -> tuple[Client, Client, dict[str, Any], dict[str, Any]]:
    """A responder (medical and general) holding the offer of a priority-3 `other` incident; a dispatcher."""
    disp = await hl.user("dispatcher")
    await disp.ok("queue.watch")
    medic = await hl.user("responder", skills=["medical", "general"])
    await medic.ok("duty.start", **near(0.001))
    minor = (await (await hl.resident()).ok("help.request", request_id=uuid.uuid4().hex, category="other",
                                            **near(0)))["incident"]
    assert minor["priority"] == 3 and minor["status"] == "offered"
    offer = await medic.push("offer", lambda m: m["incident"]["id"] == minor["id"])
    return disp, medic, minor, offer


async def test_a_priority_1_report_preempts_a_lower_priority_offer(hl):
    disp, medic, minor, offer = await _p3_offered(hl)
    urgent = (await (await hl.resident()).ok("help.request", request_id=uuid.uuid4().hex, category="medical",
                                             **near(0.0005)))["incident"]
    assert urgent["priority"] == 1
    gone = await medic.push("offer.withdrawn", lambda m: m["offer_id"] == offer["offer_id"])
    assert gone["reason"] == "preempted"
    await medic.error("offer.accept", "conflict", offer_id=offer["offer_id"])
    new = await medic.push("offer", lambda m: m["incident"]["id"] == urgent["id"])
    assert urgent["status"] == "offered"                    # the reporter's answer already says so
    # the lesser incident went back to matching: no one else is free, so a dispatcher has it
    await disp.push("incident.updated", incident_is(minor["id"], "escalated"))
    await medic.ok("offer.accept", offer_id=new["offer_id"])
    await invariants(hl.database_url)


async def test_a_priority_1_report_never_preempts_an_offer_of_equal_priority(hl):
    disp = await hl.user("dispatcher")
    medic = await hl.user("responder", skills=["medical", "fire"])
    await medic.ok("duty.start", **near(0.001))
    first = (await (await hl.resident()).ok("help.request", request_id=uuid.uuid4().hex, category="medical",
                                            **near(0)))["incident"]
    offer = await medic.push("offer", lambda m: m["incident"]["id"] == first["id"])
    second = (await (await hl.resident()).ok("help.request", request_id=uuid.uuid4().hex, category="fire",
                                             **near(0)))["incident"]
    assert second["status"] == "escalated"
    await medic.no_push("offer.withdrawn", wait=0.3)
    await medic.ok("offer.accept", offer_id=offer["offer_id"])
    assert (await disp.ok("incident.events", incident_id=second["id"]))["incident"]["status"] == "escalated"


@pytest.mark.config(dispatch_preempt="false")
async def test_automatic_preemption_can_be_turned_off(hl):
    disp, medic, minor, offer = await _p3_offered(hl)
    urgent = (await (await hl.resident()).ok("help.request", request_id=uuid.uuid4().hex, category="medical",
                                             **near(0)))["incident"]
    assert urgent["status"] == "escalated"
    await medic.no_push("offer.withdrawn", wait=0.3)
    await medic.ok("offer.accept", offer_id=offer["offer_id"])
