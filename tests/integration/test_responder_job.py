"""Issue 19, through the WebSocket and HTTP: who sees the reporter's phone and when, a responder who leaves
with a job hands it back to dispatch, and an escalation says truly why."""
from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from testkit.client import Client, http, incident_is
from testkit.geo import near
from tests.integration.test_races import invariants
from tests.integration.test_sms_otp import request_code, verify

PHONE = "+8613800138000"


def record(c: Client) -> list[dict[str, Any]]:
    """Every push `c` receives from now on (push() consumes them; this keeps a copy)."""
    seen: list[dict[str, Any]] = []
    pushed = c._pushed

    def keep(msg: dict[str, Any], t: float) -> None:
        seen.append(msg)
        pushed(msg, t)
    c._pushed = keep  # type: ignore[method-assign]
    return seen


def phone_of(inc: dict[str, Any]) -> str | None:
    phone: str | None = inc["reporter"].get("phone")
    return phone


async def verified_resident(app: Any, fake: Any) -> Client:
    """A resident who proved their phone by one-time code, as the resident page's OTP does."""
    st, got = await verify(app, await request_code(app, fake))
    assert st == 200 and got["account"]["verified"] is True
    client: Client = await app.connect(got["token"])
    return client


async def report(resident: Client, category: str = "medical") -> dict[str, Any]:
    inc: dict[str, Any] = (await resident.ok("help.request", request_id=uuid.uuid4().hex, category=category,
                                             **near(0)))["incident"]
    return inc


async def test_the_phone_reaches_the_assigned_responder_while_the_job_is_open_and_no_one_else(shl, fake):
    medic = await shl.user("responder", skills=["medical"])
    await medic.ok("duty.start", **near(0.001))
    disp = await shl.user("dispatcher")
    await disp.ok("queue.watch")
    other = await shl.user("responder", skills=["fire"])
    await other.ok("duty.start", **near(0.002))
    resident = await verified_resident(shl, fake)
    frames = {"resident": record(resident), "dispatcher": record(disp), "other responder": record(other)}
    medic_frames = record(medic)

    inc = await report(resident)
    assert phone_of(inc) is None                                   # not even back to the reporter
    offer = await medic.push("offer", lambda m: m["incident"]["id"] == inc["id"])
    assert phone_of(offer["incident"]) is None                     # only asked: no phone
    asked = await medic.ok("incident.events", incident_id=inc["id"])
    assert phone_of(asked["incident"]) is None

    accepted = (await medic.ok("offer.accept", offer_id=offer["offer_id"]))["incident"]
    assert phone_of(accepted) == PHONE                             # assigned: the phone, to call
    read = await medic.ok("incident.events", incident_id=inc["id"])
    assert phone_of(read["incident"]) == PHONE
    st, body = await http("GET", f"{shl.base}/api/incidents/{inc['id']}", token=await shl.login(
        medic.welcome["account"]["username"]))
    assert st == 200 and phone_of(body["incident"]) == PHONE
    # a reconnecting responder app picks the job up with the phone
    again = await shl.connect(await shl.login(medic.welcome["account"]["username"]))
    (job,) = again.welcome["open_incidents"]
    assert job["id"] == inc["id"] and phone_of(job) == PHONE
    # the resident adds a line: the responder's live copy carries the phone, nobody else's does
    await resident.ok("incident.note", incident_id=inc["id"], text="Third floor")
    live = await medic.push("incident.updated", lambda m: "Third floor" in (m["incident"]["note"] or ""))
    assert phone_of(live["incident"]) == PHONE
    await disp.push("incident.updated", lambda m: "Third floor" in (m["incident"]["note"] or ""))
    for step in ("en_route", "on_scene"):
        got = (await medic.ok("incident.progress", incident_id=inc["id"], status=step))["incident"]
        assert phone_of(got) == PHONE

    # the dispatcher's reads and the other responder's attempt carry no phone
    assert phone_of((await disp.ok("incident.events", incident_id=inc["id"]))["incident"]) is None
    await other.error("incident.events", "forbidden", incident_id=inc["id"])

    done = (await medic.ok("incident.progress", incident_id=inc["id"], status="resolved"))["incident"]
    assert done["status"] == "resolved" and phone_of(done) is None  # never after the job ends
    after = await medic.ok("incident.events", incident_id=inc["id"])
    assert phone_of(after["incident"]) is None
    resolved = await medic.push("incident.updated", incident_is(inc["id"], "resolved"))
    assert phone_of(resolved["incident"]) is None

    assert frames["resident"] and frames["dispatcher"]
    for who, seen in frames.items():
        assert PHONE not in json.dumps(seen), who
    # the responder got it only in copies of the incident while they worked it
    with_phone = [m for m in medic_frames if PHONE in json.dumps(m)]
    assert with_phone and all(m["type"] == "incident.updated" and m["incident"]["status"] in
                              ("assigned", "en_route", "on_scene") for m in with_phone)


async def test_a_resident_without_a_known_phone_shows_none(hl):
    medic = await hl.user("responder", skills=["medical"])
    await medic.ok("duty.start", **near(0.001))
    inc = await report(await hl.resident())
    offer = await medic.push("offer", lambda m: m["incident"]["id"] == inc["id"])
    got = (await medic.ok("offer.accept", offer_id=offer["offer_id"]))["incident"]
    assert "phone" not in got["reporter"]


async def _on_the_way(hl: Any) -> tuple[Client, Client, Client, dict[str, Any]]:
    """A medic on their way to a resident's report, a dispatcher watching: (medic, resident, dispatcher, inc)."""
    disp = await hl.user("dispatcher")
    await disp.ok("queue.watch")
    medic = await hl.user("responder", skills=["medical"])
    await medic.ok("duty.start", **near(0.001))
    resident = await hl.resident()
    inc = await report(resident)
    offer = await medic.push("offer", lambda m: m["incident"]["id"] == inc["id"])
    await medic.ok("offer.accept", offer_id=offer["offer_id"])
    await medic.ok("incident.progress", incident_id=inc["id"], status="en_route")
    return medic, resident, disp, inc


async def test_signing_out_mid_job_hands_it_back_and_the_next_responder_is_asked(hl):
    medic, resident, disp, inc = await _on_the_way(hl)
    medic2 = await hl.user("responder", skills=["medical"])
    await medic2.ok("duty.start", **near(0.003))
    # a plain duty.end still refuses: a stray tap drops no job
    err = await medic.error("duty.end", "conflict")
    assert "hand it back" in err["message"]
    await medic.error("duty.end", "bad_request", hand_back="gone fishing")

    left = (await medic.ok("duty.end", hand_back="signed_out"))["responder"]
    assert left["status"] == "off_duty"
    offer = await medic2.push("offer", lambda m: m["incident"]["id"] == inc["id"])
    assert offer["incident"]["offer_attempts"] == 1                 # a fresh round of offers
    # the resident is told the truth: no longer on the way, someone else is being asked, and why
    handed = lambda m: incident_is(inc["id"], "offered")(m) and "handed_back" in m["incident"]["flags"]  # noqa: E731
    told = await resident.push("incident.updated", handed)
    assert told["incident"]["responder"] is None
    await disp.push("incident.updated", handed)
    await disp.push("responder.updated", lambda m: m["responder"]["id"] == medic.account_id
                    and m["responder"]["status"] == "off_duty")
    log = (await disp.ok("incident.events", incident_id=inc["id"]))["events"]
    back = [e for e in log if e["kind"] == "handed_back"]
    assert len(back) == 1 and back[0]["data"]["reason"] == "responder_signed_out"
    assert back[0]["data"]["from"] == "en_route" and back[0]["actor"]["id"] == medic.account_id
    assert [e["kind"] for e in log][-2:] == ["handed_back", "offered"]
    # the one who left can no longer act on it, nor is asked again
    await medic.error("incident.progress", "forbidden", incident_id=inc["id"], status="on_scene")
    got = (await medic2.ok("offer.accept", offer_id=offer["offer_id"]))["incident"]
    assert got["status"] == "assigned" and got["responder"]["id"] == medic2.account_id
    await invariants(hl.database_url)


async def test_going_off_duty_mid_job_with_no_one_else_escalates_saying_so(hl):
    medic, resident, disp, inc = await _on_the_way(hl)
    await medic.ok("duty.end", hand_back="off_duty")
    told = await resident.push("incident.updated", incident_is(inc["id"], "escalated"))
    assert told["incident"]["escalation_reason"] == "handed_back"
    assert told["incident"]["responder"] is None
    await disp.push("incident.updated", incident_is(inc["id"], "escalated"))
    log = (await disp.ok("incident.events", incident_id=inc["id"]))["events"]
    assert [(e["kind"], e["data"].get("reason")) for e in log][-2:] == [
        ("handed_back", "responder_off_duty"), ("escalated", "handed_back")]
    # the dispatcher sends someone; the incident is an ordinary assignment again
    medic2 = await hl.user("responder", skills=["medical"])
    await medic2.ok("duty.start", **near(0.002))
    got = (await disp.ok("incident.assign", incident_id=inc["id"], responder_id=medic2.account_id))["incident"]
    assert got["status"] == "assigned" and got["escalation_reason"] is None
    # hand_back with nothing in hand is just going off duty
    assert (await medic.ok("duty.start", **near(0.001)))["responder"]["status"] == "available"
    assert (await medic.ok("duty.end", hand_back="off_duty"))["responder"]["status"] == "off_duty"
    await invariants(hl.database_url)


async def test_an_escalation_after_a_decline_says_declined_not_no_one_nearby(hl):
    medic = await hl.user("responder", skills=["medical"])
    await medic.ok("duty.start", **near(0.001))
    resident = await hl.resident()
    nobody = await report(resident, "fire")                     # nobody with the skill at all
    assert nobody["status"] == "escalated" and nobody["escalation_reason"] == "no_candidate"
    inc = await report(resident)
    assert inc["escalation_reason"] is None
    offer = await medic.push("offer", lambda m: m["incident"]["id"] == inc["id"])
    await medic.ok("offer.decline", offer_id=offer["offer_id"])
    told = await resident.push("incident.updated", incident_is(inc["id"], "escalated"))
    assert told["incident"]["escalation_reason"] == "declined"
    log = (await resident.ok("incident.events", incident_id=inc["id"]))["events"]
    assert log[-1]["kind"] == "escalated" and log[-1]["data"]["reason"] == "declined"


@pytest.mark.config(dispatch_offer_timeout_s=1)
async def test_an_escalation_after_an_unanswered_offer_says_no_answer(hl):
    medic = await hl.user("responder", skills=["medical"])
    await medic.ok("duty.start", **near(0.001))
    resident = await hl.resident()
    inc = await report(resident)
    await medic.push("offer", lambda m: m["incident"]["id"] == inc["id"])
    told = await resident.push("incident.updated", incident_is(inc["id"], "escalated"))
    assert told["incident"]["escalation_reason"] == "no_answer"
    # what a reconnecting page reads says the same
    again = (await resident.ok("incident.events", incident_id=inc["id"]))["incident"]
    assert again["escalation_reason"] == "no_answer"
