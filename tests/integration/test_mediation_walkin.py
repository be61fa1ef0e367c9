"""Cases opened for visitors at the counter (issue 13): a mediator or a clerk opens `case.open` with `parties`.

The texts go out through the real twilio client to the local stand-in and come back through the signed
webhook (/sms/inbound); PostgreSQL and Redis are real.
"""
from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from testkit.runtime import until
from testkit.stack import query as q
from testkit.twilio import FakeTwilio, sms_in

WANG = "+8613911110001"
ZHAO = "+8613911110002"


def case_is(cid: str, status: str) -> Any:
    return lambda m: m["case"]["id"] == cid and m["case"]["status"] == status


def texts_to(fake: FakeTwilio, phone: str, where: str) -> list[str]:
    return [m["Body"] for m in fake.to(phone) if where in m["Body"]]


def waiting_for(fake: FakeTwilio, phone: str, where: str) -> Callable[[], list[str]]:
    return lambda: texts_to(fake, phone, where)


async def reply_to(shl: Any, phone: str, body: str) -> str:
    st, xml = await sms_in(shl.base, phone, body)
    assert st == 200, xml
    return xml


def sign_code(text: str) -> str:
    m = re.search(r"SIGN (\d{6})", text)
    assert m is not None, f"no sign code in {text!r}"
    return m.group(1)


async def test_a_walk_in_case_with_two_sms_parties_reaches_a_signed_agreement(shl, fake):
    med = await shl.user("mediator", name="Mediator Sun")
    opened = await med.ok("case.open", request_id="walkin-1", category="neighbour",
                          summary="Noise from the flat above after midnight",
                          parties=[{"name": "Wang Fang", "phone": "139 1111 0001"},
                                   {"name": "Zhao Lei", "phone": "+86 139-1111-0002"}])
    case = opened["case"]
    assert case["status"] == "filed" and case["parties"] == [] and case["join_code"]
    assert case["opened_by"] == {"id": med.account_id, "name": "Mediator Sun", "role": "mediator"}
    inv = opened["invitations"]
    assert [(i["name"], i["phone"], i["texted"]) for i in inv] == [
        ("Wang Fang", WANG, True), ("Zhao Lei", ZHAO, True)]
    codes = {i["phone"]: i["join_code"] for i in inv}
    assert [p["join_code"] for p in case["invited"]] == [codes[WANG], codes[ZHAO]]

    # both are texted their own code, with no one's own words (the centre registered it)
    for phone in (WANG, ZHAO):
        body = (await until(waiting_for(fake, phone, codes[phone]), what=f"invitation to {phone}"))[0]
        assert case["ref_no"] in body and "mediation centre" in body and "Noise" not in body

    # both join by text; the mediator takes the case; both read the proposal and sign by text
    for phone in (WANG, ZHAO):
        assert case["ref_no"] in await reply_to(shl, phone, codes[phone].lower())
    await med.ok("case.take", case_id=case["id"])
    taken = (await med.ok("cases.watch"))["cases"]
    mine = next(c for c in taken if c["id"] == case["id"])
    assert [(p["name"], p["via"], p["phone"]) for p in mine["parties"]] == [
        ("Wang Fang", "sms", WANG), ("Zhao Lei", "sms", ZHAO)]
    await med.ok("agreement.propose", case_id=case["id"], text="Quiet after 22:00; rugs in the living room.")
    said = []
    for phone in (WANG, ZHAO):
        proposal = (await until(waiting_for(fake, phone, "SIGN"), what=f"proposal to {phone}"))[0]
        assert "Quiet after 22:00" in proposal
        said.append(await reply_to(shl, phone, f"SIGN {sign_code(proposal)}"))
    assert "Waiting for the others" in said[0] and "Settled" in said[1]
    settled = await med.push("case.updated", case_is(case["id"], "settled"))
    sigs = settled["case"]["agreement"]["signatures"]
    assert [(s["name"], s["via"]) for s in sigs] == [("Wang Fang", "sms"), ("Zhao Lei", "sms")]
    for phone in (WANG, ZHAO):
        await until(waiting_for(fake, phone, "Agreement reference"), what=f"settled text to {phone}")

    # the case's log and the audit log name the mediator who opened it and for whom
    events = await q(shl, "SELECT actor_id, data FROM case_events WHERE case_id = $1 AND kind = 'opened'",
                     case["id"])
    assert len(events) == 1 and str(events[0]["actor_id"]) == med.account_id
    data = json.loads(events[0]["data"])
    assert data["opened_by"] == {"id": med.account_id, "name": "Mediator Sun", "role": "mediator"}
    assert data["on_behalf_of"] == [1, 2] and data["texted"] == [1, 2]      # slots: no name is copied into a log
    assert "Wang Fang" not in events[0]["data"]
    audit = await q(shl, "SELECT actor_id, actor_role, detail FROM audit_log WHERE action = 'open_for_visitors'"
                         " AND subject_id = $1", case["id"])
    assert len(audit) == 1 and (str(audit[0]["actor_id"]), audit[0]["actor_role"]) == (med.account_id, "mediator")
    detail = json.loads(audit[0]["detail"])
    assert detail["on_behalf_of"] == [1, 2] and detail["ref_no"] == case["ref_no"] and "Wang" not in audit[0]["detail"]


async def test_the_same_request_id_returns_the_same_case_and_texts_nobody_twice(shl, fake):
    med = await shl.user("mediator")
    fields: dict[str, Any] = dict(category="family", summary="Care of an elderly father",
                                  parties=[{"name": "Li Ming", "phone": WANG}, {"name": "Li Hua"}])
    first = await med.ok("case.open", request_id="r-7", **fields)
    await med.ok("case.add_party", case_id=first["case"]["id"], name="Li Qiang")    # not part of the answer
    again = await med.ok("case.open", request_id="r-7", **fields)
    assert again["case"]["id"] == first["case"]["id"]
    assert again["invitations"] == first["invitations"]
    assert [i["texted"] for i in first["invitations"]] == [True, False]     # Li Hua has no phone: on paper
    await until(lambda: fake.to(WANG), what="one invitation")
    other = await med.ok("case.open", request_id="r-8", **fields)
    assert other["case"]["id"] != first["case"]["id"]
    rows = await q(shl, "SELECT count(*) AS n FROM cases WHERE filer_id = $1", med.account_id)
    assert rows[0]["n"] == 2
    outbox = await q(shl, "SELECT case_id FROM sms_outbox WHERE to_phone = $1", WANG)
    assert sorted(str(r["case_id"]) for r in outbox) == sorted([first["case"]["id"], other["case"]["id"]])


async def test_a_clerk_opens_a_case_and_sees_it_until_a_mediator_takes_it(shl, fake):
    clerk = await shl.user("clerk", name="Front desk Qian")
    opened = await clerk.ok("case.open", category="consumer", summary="A refund refused for a broken kettle",
                            parties=[{"name": "Customer Hu", "phone": WANG}, {"name": "Shop owner Ma"}])
    case = opened["case"]
    assert case["opened_by"] == {"id": clerk.account_id, "name": "Front desk Qian", "role": "clerk"}
    assert case["invited"][0]["phone"] == WANG and case["invited"][0]["join_code"]     # the clerk typed it in
    added = await clerk.ok("case.add_party", case_id=case["id"], name="Shop assistant Lu", phone=ZHAO)
    assert added["added"]["join_code"] and added["added"]["texted"] is True
    lu = (await until(waiting_for(fake, ZHAO, added["added"]["join_code"]), what="the added party's text"))[0]
    assert "mediation centre" in lu and "A resident" not in lu         # the counter's invitation, as at opening
    mine = (await clerk.ok("cases.mine"))["cases"]
    assert [c["id"] for c in mine] == [case["id"]] and len(mine[0]["invited"]) == 3

    # the clerk follows the case live while it is theirs: a visitor joining by text shows at once
    await reply_to(shl, WANG, case["invited"][0]["join_code"])
    joined = await clerk.push("case.updated", lambda m: len(m["case"]["parties"]) == 1)
    assert joined["case"]["parties"][0]["name"] == "Customer Hu" and joined["case"]["parties"][0]["via"] == "sms"

    # a mediator watching sees it (phones masked), with who opened it
    med = await shl.user("mediator", name="Med Zhou")
    watched = next(c for c in (await med.ok("cases.watch"))["cases"] if c["id"] == case["id"])
    assert watched["opened_by"]["role"] == "clerk" and watched["invited"][0]["phone"] != WANG
    assert "join_code" not in watched["invited"][0]

    # the clerk reads no room and takes no case; once a mediator takes it, it is no longer the clerk's
    await clerk.error("chat.subscribe", "forbidden", case_id=case["id"], room="joint")
    await clerk.error("case.take", "forbidden", case_id=case["id"])
    await clerk.error("cases.watch", "forbidden")
    await med.ok("case.take", case_id=case["id"])
    # the clerk's page hears who took it, at once; and nothing after that
    taken = await clerk.push("case.updated", lambda m: m["case"]["mediator"] is not None)
    assert taken["case"]["mediator"]["name"] == "Med Zhou" and taken["case"]["status"] == "in_mediation"
    assert (await clerk.ok("cases.mine"))["cases"] == []
    await reply_to(shl, ZHAO, added["added"]["join_code"])
    await med.push("case.updated", lambda m: len(m["case"]["parties"]) == 2)
    await clerk.no_push("case.updated", lambda m: len(m["case"]["parties"]) == 2, wait=0.2)
    await clerk.error("case.add_party", "forbidden", case_id=case["id"], name="Too late")
    audit = await q(shl, "SELECT actor_role FROM audit_log WHERE action = 'open_for_visitors' AND subject_id = $1",
                    case["id"])
    assert [r["actor_role"] for r in audit] == ["clerk"]

    # the clerk does not see another clerk's case
    other = await shl.user("clerk")
    assert (await other.ok("cases.mine"))["cases"] == []
    await other.error("case.add_party", "forbidden", case_id=(await clerk.ok(
        "case.open", category="other", summary="x", parties=[{"name": "A"}, {"name": "B"}]))["case"]["id"], name="C")


async def test_a_watching_mediator_who_opened_a_case_keeps_the_codes_in_every_push(shl):
    """The opener's copy (phones, codes) comes on their own channel; the masked copy every other watcher
    gets is not passed on to them, so it never replaces theirs."""
    med = await shl.user("mediator", name="Opener")
    other = await shl.user("mediator", name="Watcher")
    await med.ok("cases.watch")
    await other.ok("cases.watch")
    case = (await med.ok("case.open", category="property", summary="A shared wall",
                         parties=[{"name": "East", "phone": WANG}, {"name": "West"}]))["case"]
    await med.ok("case.add_party", case_id=case["id"], name="North")
    seen = await other.push("case.updated", lambda m: m["case"]["id"] == case["id"] and len(m["case"]["invited"]) == 3)
    assert "join_code" not in seen["case"]["invited"][0]                   # others: masked, no codes
    mine = await med.push("case.updated", lambda m: m["case"]["id"] == case["id"] and len(m["case"]["invited"]) == 3)
    assert mine["case"]["invited"][0]["phone"] == WANG and mine["case"]["invited"][2]["join_code"]
    pushed = [m["case"] for m in med.pushes if m.get("type") == "case.updated" and m["case"]["id"] == case["id"]]
    assert all(c["invited"][0].get("join_code") for c in pushed), pushed
    # once another mediator takes it, the opener is other staff: the masked copy
    await other.ok("case.take", case_id=case["id"])
    taken = await med.push("case.updated", lambda m: m["case"]["id"] == case["id"] and m["case"]["mediator"])
    assert "join_code" not in taken["case"]["invited"][0]


async def test_who_may_open_a_case_for_visitors(shl):
    fields: dict[str, Any] = dict(category="labour", summary="Unpaid wages",
                                  parties=[{"name": "Worker"}, {"name": "Boss"}])
    for role in ("responder", "dispatcher", "agency", "admin"):
        c = await shl.user(role)
        await c.error("case.open", "forbidden", **fields)
    resident = await shl.resident()
    await resident.error("case.open", "forbidden", **fields)
    # a resident's own filing is unchanged
    own = await resident.ok("case.open", category="labour", summary="Unpaid wages", other_parties=[{"name": "Boss"}])
    assert own["case"]["opened_by"] is None and own["case"]["parties"][0]["filer"] is True


async def test_bad_input_is_refused_saying_what_is_wrong(shl, fake):
    clerk = await shl.user("clerk")

    async def refused(code: str, **fields: Any) -> str:
        base: dict[str, Any] = dict(category="property", summary="A shared wall",
                                    parties=[{"name": "A"}, {"name": "B"}])
        return str((await clerk.error("case.open", code, **{**base, **fields}))["message"])

    assert "phone" in (msg := await refused("bad_request", parties=[{"name": "A", "phone": "12345"},
                                                                    {"name": "B"}]))
    assert "parties[0].phone" in msg and "number" in msg
    assert "parties[1].phone" in await refused("bad_request", parties=[{"name": "A"},
                                                                        {"name": "B", "phone": "call me"}])
    assert "at least two" in await refused("bad_request", parties=[{"name": "Alone"}])
    assert "at least two" in await refused("bad_request", parties=[])
    assert "at least two" in await refused("bad_request", parties=None)
    assert "same number" in await refused("bad_request", parties=[{"name": "A", "phone": WANG},
                                                                  {"name": "B", "phone": "139 1111 0001"}])
    assert "parties[1].phone" in await refused("bad_request", parties=[{"name": "A"},
                                                                        {"name": "B", "phone": "+14155550100"}])
    assert "parties[0].name" in await refused("bad_request", parties=[{"name": "13911110001"}, {"name": "B"}])
    assert "category" in await refused("bad_request", category="noise")
    assert "name" in await refused("bad_request", name="Clerk Qian")
    assert "other_parties" in await refused("forbidden", other_parties=[{"name": "C"}])   # no filing of their own
    await refused("bad_request", summary="   ")
    rows = await q(shl, "SELECT count(*) AS n FROM cases")
    assert rows[0]["n"] == 0 and fake.to(WANG) == []


async def test_a_staff_member_has_limits_of_their_own_and_texts_stop_per_number(shl, fake):
    """Each number receives at most INVITES_PER_PHONE invitations a day, whoever asks; past it the party
    is kept and the answer says it was not texted."""
    from infra.ratelimit import INVITES_PER_PHONE

    med = await shl.user("mediator")
    got = []
    for _ in range(INVITES_PER_PHONE[0] + 1):
        r = await med.ok("case.open", request_id=uuid.uuid4().hex, category="other", summary="Parking",
                         parties=[{"name": "Driver", "phone": ZHAO}, {"name": "Neighbour"}])
        got.append(r["invitations"][0]["texted"])
    assert got == [True] * INVITES_PER_PHONE[0] + [False]
    await until(lambda: len(fake.to(ZHAO)) == INVITES_PER_PHONE[0], what="the texts that may go")


async def test_a_clerk_account_from_the_cli_opens_cases_and_nothing_else(cluster):
    node = await cluster.start_node()
    r = cluster.cli("user", "add", "desk1", "--role", "clerk", "--password", "Pw-123456!", "--name", "Front desk")
    assert r.returncode == 0, r.stderr
    tok = cluster.cli("token", "desk1")
    assert tok.returncode == 0, tok.stderr
    clerk = await node.connect(tok.stdout.strip())
    assert clerk.welcome["account"]["role"] == "clerk" and clerk.welcome["open_cases"] == []
    await clerk.ok("case.open", category="neighbour", summary="A tree over the fence",
                   parties=[{"name": "East"}, {"name": "West"}])
    await clerk.error("queue.watch", "forbidden")
    await clerk.error("help.request", "forbidden", request_id="x", category="other", lat=31.2, lon=121.4)
    again = await node.connect(tok.stdout.strip())       # a new connection: the case is in its welcome
    assert [c["summary"] for c in again.welcome["open_cases"]] == ["A tree over the fence"]
    moved = cluster.cli("user", "set", "desk1", "--role", "mediator")
    assert moved.returncode == 0, moved.stderr
