"""Disputes referred from dispatch into mediation (`incident.refer`) and where a case is referred to
(`case.close` with `referred_to`): issue 15, contract §10.

Texts go out through the real twilio client to the local stand-in and come back through the signed webhook;
PostgreSQL and Redis are real.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from testkit.runtime import until
from testkit.stack import query as q
from testkit.twilio import FakeTwilio, sms_in

REPORTER = "+8613911112222"
NEIGHBOUR = "+8613911113333"
NEAR = {"lat": 31.2304, "lon": 121.4737}


def texts_to(fake: FakeTwilio, phone: str, where: str) -> list[str]:
    return [m["Body"] for m in fake.to(phone) if where in m["Body"]]


async def reply_to(shl: Any, phone: str, body: str) -> str:
    st, xml = await sms_in(shl.base, phone, body)
    assert st == 200, xml
    return xml


def proposal_to(fake: FakeTwilio, phone: str) -> Callable[[], list[str]]:
    return lambda: texts_to(fake, phone, "SIGN")


def sign_code(text: str) -> str:
    m = re.search(r"SIGN (\d{6})", text)
    assert m is not None, f"no sign code in {text!r}"
    return m.group(1)


async def sms_dispute(shl: Any, phone: str, words: str) -> dict[str, Any]:
    await reply_to(shl, phone, f"HELP {words}")
    rows = await q(shl, "SELECT i.id, i.category, i.status FROM incidents i JOIN accounts a ON a.id = i.reporter_id"
                        " WHERE a.phone = $1 ORDER BY i.created_at DESC LIMIT 1", phone)
    assert rows and rows[0]["category"] == "dispute", rows
    return {"id": str(rows[0]["id"]), "status": rows[0]["status"]}


async def test_a_dispute_reported_by_sms_is_referred_into_a_case_that_is_settled_by_sms(shl, fake):
    inc = await sms_dispute(shl, REPORTER, "my neighbour and I quarrel about the wall")
    disp = await shl.user("dispatcher", name="Ops Zhang")
    await disp.ok("queue.watch")
    referred = await disp.ok("incident.refer", incident_id=inc["id"], summary="Wall between the two yards",
                             category="neighbour",
                             other_parties=[{"name": "Liu Wei", "phone": "139 1111 3333"}, {"name": "Chen"}])
    case, incident = referred["case"], referred["incident"]
    # the incident is closed `referred` and names its case; the case names its incident
    assert incident["status"] == "resolved" and incident["disposition"] == "referred"
    assert incident["case_id"] == case["id"] and incident["case_ref"] == case["ref_no"]
    assert case["incident_id"] == inc["id"] and case["incident_ref"] == incident["ref_no"]
    assert case["status"] == "filed" and case["category"] == "neighbour"
    assert case["opened_by"] == {"id": disp.account_id, "name": "Ops Zhang", "role": "dispatcher"}
    # the reporter is the first party, joined by SMS with the phone kept; the others are invited with codes
    [reporter] = case["parties"]
    assert reporter["via"] == "sms" and reporter["phone"] == REPORTER
    invited = case["invited"]
    assert [(i["name"], i["joined"]) for i in invited] == [("", True), ("Liu Wei", False), ("Chen", False)]
    codes = [i["join_code"] for i in invited]
    assert all(codes) and len(set(codes)) == 3
    pushed = await disp.push("incident.updated", lambda m: m["incident"]["id"] == inc["id"]
                             and m["incident"]["status"] == "resolved")
    assert pushed["incident"]["case_ref"] == case["ref_no"]
    rows = await q(shl, "SELECT case_id, case_ref, disposition FROM incidents WHERE id = $1", inc["id"])
    assert str(rows[0]["case_id"]) == case["id"] and rows[0]["disposition"] == "referred"
    events = await q(shl, "SELECT kind, data FROM incident_events WHERE incident_id = $1 ORDER BY id", inc["id"])
    closed = events[-1]
    assert closed["kind"] == "closed" and '"disposition": "referred"' in closed["data"]

    # the reporter is texted the case and their join code (not the plain "closed" status text); Liu is invited
    told = (await until(lambda: texts_to(fake, REPORTER, codes[0]), what="referral text"))[0]
    assert case["ref_no"] in told and incident["ref_no"] in told and "mediation" in told
    assert not texts_to(fake, REPORTER, "closed. Stay safe")
    assert (await until(lambda: texts_to(fake, NEIGHBOUR, codes[1]), what="invitation"))[0]

    # a re-sent refer answers the same case; nothing new is opened or texted
    again = await disp.ok("incident.refer", incident_id=inc["id"], summary="Wall between the two yards",
                          other_parties=[{"name": "Liu Wei", "phone": "139 1111 3333"}])
    assert again["case"]["id"] == case["id"] and again["incident"]["case_id"] == case["id"]
    assert (await q(shl, "SELECT count(*) AS n FROM cases"))[0]["n"] == 1

    # the reporter texting their code is no second join; Liu joins by text; Chen in the app
    assert case["ref_no"] in await reply_to(shl, REPORTER, codes[0])
    assert case["ref_no"] in await reply_to(shl, NEIGHBOUR, codes[1])
    chen = await shl.resident()
    await chen.ok("case.join", join_code=codes[2])
    med = await shl.user("mediator", name="Mediator Sun")
    taken = (await med.ok("case.take", case_id=case["id"]))["case"]
    assert [p["via"] for p in taken["parties"]] == ["sms", "sms", "ws"]
    assert taken["incident_ref"] == incident["ref_no"]

    # the reporter speaks in the joint room by SMS, then everyone signs: settled
    await med.ok("chat.subscribe", case_id=case["id"], room="joint")
    await reply_to(shl, REPORTER, "I only want the wall repaired")
    said = (await med.push("chat.message", lambda m: m["message"]["via"] == "sms"))["message"]
    assert said["body"] == "I only want the wall repaired" and said["sender"]["id"] == reporter["id"]
    await med.ok("agreement.propose", case_id=case["id"], text="Liu repairs the wall by 1 May; costs shared.")
    for phone in (REPORTER, NEIGHBOUR):
        proposal = (await until(proposal_to(fake, phone), what=f"proposal to {phone}"))[0]
        await reply_to(shl, phone, f"SIGN {sign_code(proposal)}")
    await chen.ok("agreement.sign", case_id=case["id"])
    done = (await med.push("case.updated", lambda m: m["case"]["status"] == "settled"))["case"]
    assert [s["via"] for s in done["agreement"]["signatures"]] == ["sms", "sms", "ws"]
    assert await until(lambda: texts_to(fake, REPORTER, "Agreement reference"), what="settled text")


async def test_refer_of_a_non_dispute_or_a_closed_incident_is_a_conflict(hl):
    resident = await hl.resident()
    medical = (await resident.ok("help.request", request_id="m1", category="medical", **NEAR))["incident"]
    dispute = (await resident.ok("help.request", request_id="d1", category="dispute", **NEAR))["incident"]
    disp = await hl.user("dispatcher")
    parties = [{"name": "Liu"}]

    got = await disp.call("incident.refer", incident_id=medical["id"], summary="s", other_parties=parties)
    assert got["code"] == "conflict" and "dispute" in got["message"]
    await disp.ok("incident.close", incident_id=dispute["id"], disposition="handled_by_phone")
    got = await disp.call("incident.refer", incident_id=dispute["id"], summary="s", other_parties=parties)
    assert got["code"] == "conflict" and "resolved" in got["message"]
    assert (await q(hl, "SELECT count(*) AS n FROM cases"))[0]["n"] == 0

    # bad input names the field and writes nothing
    open_one = (await resident.ok("help.request", request_id="d2", category="dispute", **NEAR))["incident"]
    got = await disp.call("incident.refer", incident_id=open_one["id"], summary="s",
                          other_parties=[{"name": "Liu", "phone": "12"}])
    assert got["code"] == "bad_request" and "other_parties[0].phone" in got["message"]
    got = await disp.call("incident.refer", incident_id=open_one["id"], summary="   ", other_parties=parties)
    assert got["code"] == "bad_request" and "summary" in got["message"]
    got = await disp.call("incident.refer", incident_id=open_one["id"], summary="s", other_parties=[])
    assert got["code"] == "bad_request" and "other_parties" in got["message"]
    got = await disp.call("incident.refer", incident_id=open_one["id"], summary="s", other_parties=parties,
                          category="divorce")
    assert got["code"] == "bad_request" and "category" in got["message"]
    got = await disp.call("incident.refer", incident_id="00000000-0000-0000-0000-000000000000", summary="s",
                          other_parties=parties)
    assert got["code"] == "not_found"
    assert (await q(hl, "SELECT count(*) AS n FROM cases"))[0]["n"] == 0
    row = (await q(hl, "SELECT status, case_id FROM incidents WHERE id = $1", open_one["id"]))[0]
    assert row["status"] != "resolved" and row["case_id"] is None

    # a responder who is not on the incident may not; a resident may not at all
    other = await hl.user("responder", skills=["general"])
    got = await other.call("incident.refer", incident_id=open_one["id"], summary="s", other_parties=parties)
    assert got["code"] == "forbidden"
    got = await resident.call("incident.refer", incident_id=open_one["id"], summary="s", other_parties=parties)
    assert got["code"] == "forbidden"


async def test_the_responder_on_a_dispute_refers_it_and_the_app_reporter_is_told(hl):
    responder = await hl.user("responder", name="Grid worker Li", skills=["general"])
    await responder.ok("duty.start", **NEAR)
    resident = await hl.resident()
    inc = (await resident.ok("help.request", request_id="d-ws", category="dispute", note="noise", **NEAR))["incident"]
    offer = await responder.push("offer", lambda m: m["incident"]["id"] == inc["id"])
    await responder.ok("offer.accept", offer_id=offer["offer_id"])
    await responder.ok("incident.progress", incident_id=inc["id"], status="en_route")

    referred = await responder.ok("incident.refer", incident_id=inc["id"], summary="Noise from the bar downstairs",
                                  other_parties=[{"name": "Bar owner"}])
    case = referred["case"]
    assert referred["incident"]["disposition"] == "referred"
    assert case["opened_by"]["role"] == "responder" and case["parties"][0]["via"] == "ws"

    told = await resident.push("incident.referred", lambda m: m["incident_id"] == inc["id"])
    assert told["case_id"] == case["id"] and told["case_ref"] == case["ref_no"]
    upd = await resident.push("incident.updated", lambda m: m["incident"].get("case_id") == case["id"])
    assert upd["incident"]["status"] == "resolved" and upd["incident"]["disposition"] == "referred"
    # the reporter is a party already: their cases, the joint room
    mine = (await resident.ok("cases.mine"))["cases"]
    assert [c["id"] for c in mine] == [case["id"]] and mine[0]["incident_id"] == inc["id"]
    await resident.ok("chat.send", case_id=case["id"], room="joint", client_msg_id="r1", body="It is every night")
    # the responder is free again
    rows = await q(hl, "SELECT status FROM responders WHERE account_id = $1", responder.account_id)
    assert rows[0]["status"] == "available"


async def mediated(hl: Any) -> dict[str, Any]:
    filer = await hl.user("resident", name="Ann")
    case = (await filer.ok("case.open", category="neighbour", summary="Noise", other_parties=[{"name": "Bo"}]))["case"]
    bo = await hl.resident()
    await bo.ok("case.join", join_code=case["join_code"])
    med = await hl.user("mediator", name="Med")
    await med.ok("case.take", case_id=case["id"])
    await filer.ok("chat.send", case_id=case["id"], room="joint", client_msg_id="j1", body="joint words")
    await med.ok("chat.send", case_id=case["id"], room=f"caucus:{filer.account_id}", client_msg_id="c1",
                 body="caucus words")
    await med.ok("agreement.propose", case_id=case["id"], text="Quiet after ten.")
    return {"id": case["id"], "filer": filer, "med": med}


async def test_a_case_referred_to_an_agency_is_read_by_it_joint_and_agreement_but_no_caucus(hl):
    c = await mediated(hl)
    court = await hl.user("agency", name="District Court")
    await q(hl, "UPDATE accounts SET agency_type = 'court' WHERE id = $1", court.account_id)
    # before the referral the agency sees nothing of the case
    got = await court.call("chat.subscribe", case_id=c["id"], room="joint")
    assert got["code"] == "forbidden"

    med = c["med"]
    not_agency = await hl.user("mediator")
    got = await med.call("case.close", case_id=c["id"], outcome="referred",
                         referred_to={"agency_id": not_agency.account_id})
    assert got["code"] == "bad_request" and "referred_to.agency_id" in got["message"]
    got = await med.call("case.close", case_id=c["id"], outcome="failed", referred_to={"agency_id": court.account_id})
    assert got["code"] == "bad_request" and "referred_to" in got["message"]
    got = await med.call("case.close", case_id=c["id"], outcome="referred",
                         referred_to={"agency_id": court.account_id, "name": "x"})
    assert got["code"] == "bad_request"
    assert (await q(hl, "SELECT status FROM cases WHERE id = $1", c["id"]))[0]["status"] == "agreement_proposed"

    closed = (await med.ok("case.close", case_id=c["id"], outcome="referred",
                           referred_to={"agency_id": court.account_id}))["case"]
    assert closed["status"] == "referred"
    assert closed["referred_to"] == {"agency_id": court.account_id, "agency_type": "court", "name": "District Court"}
    ev = await q(hl, "SELECT data FROM case_events WHERE case_id = $1 AND kind = 'referred'", c["id"])
    assert court.account_id in ev[0]["data"] and '"agency_type": "court"' in ev[0]["data"]
    pushed = (await court.push("case.updated", lambda m: m["case"]["id"] == c["id"]))["case"]
    assert pushed["status"] == "referred"

    # the agency reads the joint room and the agreement; not a caucus; it cannot write
    joint = await court.ok("chat.subscribe", case_id=c["id"], room="joint")
    assert [m["body"] for m in joint["messages"]] == ["joint words"]
    got = await court.call("chat.subscribe", case_id=c["id"], room=f"caucus:{c['filer'].account_id}")
    assert got["code"] == "forbidden"
    got = await court.call("chat.send", case_id=c["id"], room="joint", client_msg_id="a1", body="hello")
    assert got["code"] == "forbidden"
    mine = (await court.ok("cases.mine"))["cases"]
    assert [x["id"] for x in mine] == [c["id"]] and mine[0]["agreement"]["text"] == "Quiet after ten."
    # another agency still sees nothing
    other = await hl.user("agency")
    assert (await other.call("chat.subscribe", case_id=c["id"], room="joint"))["code"] == "forbidden"


async def test_a_case_referred_to_a_body_outside_the_system(hl):
    c = await mediated(hl)
    got = await c["med"].call("case.close", case_id=c["id"], outcome="referred",
                              referred_to={"agency_type": "tribunal", "name": "X"})
    assert got["code"] == "bad_request" and "referred_to.agency_type" in got["message"]
    got = await c["med"].call("case.close", case_id=c["id"], outcome="referred", referred_to={"agency_type": "court"})
    assert got["code"] == "bad_request"
    closed = (await c["med"].ok("case.close", case_id=c["id"], outcome="referred",
                                referred_to={"agency_type": "court", "name": "Riverside Court, filing 2026-118"}))
    assert closed["case"]["referred_to"] == {"agency_id": None, "agency_type": "court",
                                             "name": "Riverside Court, filing 2026-118"}
    # the close without referred_to keeps working as before
    c2 = await mediated(hl)
    plain = (await c2["med"].ok("case.close", case_id=c2["id"], outcome="failed"))["case"]
    assert plain["status"] == "failed" and plain["referred_to"] is None


async def test_a_caller_without_a_phone_gets_a_code_to_hand_over_one_with_a_phone_takes_part_by_sms(hl):
    disp = await hl.user("dispatcher", name="Ops")
    walk_in = (await disp.ok("incident.create", request_id="w1", category="dispute", channel="walk_in",
                             caller={"name": "Mrs Zhou"}, **NEAR))["incident"]
    case = (await disp.ok("incident.refer", incident_id=walk_in["id"], summary="Rent deposit",
                          other_parties=[{"name": "Landlord"}]))["case"]
    assert case["parties"] == []                              # nobody holds the call's own account
    assert [(i["name"], i["joined"]) for i in case["invited"]] == [("Mrs Zhou", False), ("Landlord", False)]
    assert all(i["join_code"] for i in case["invited"])       # the referrer hands the codes over
    caller = await hl.resident()
    joined = (await caller.ok("case.join", join_code=case["invited"][0]["join_code"]))["case"]
    assert [p["name"] for p in joined["parties"]] == ["Mrs Zhou"]

    phoned = (await disp.ok("incident.create", request_id="p1", category="dispute", channel="phone",
                            caller={"name": "Mr Wu", "phone": "+8613911114444"}, **NEAR))["incident"]
    case = (await disp.ok("incident.refer", incident_id=phoned["id"], summary="Parking",
                          other_parties=[{"name": "Neighbour"}]))["case"]
    assert [(p["name"], p["via"], p["phone"]) for p in case["parties"]] == [("Mr Wu", "sms", "+8613911114444")]
    texts = await q(hl, "SELECT body FROM sms_outbox WHERE to_phone = '+8613911114444' ORDER BY id")
    assert any(case["invited"][0]["join_code"] in t["body"] for t in texts)
