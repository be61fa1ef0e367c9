"""Mediation over real WebSockets on real PostgreSQL and Redis: cases, privacy, agreements, bad input."""
from __future__ import annotations

import hashlib
import uuid
from typing import Any

import asyncpg
import pytest

from testkit.client import Client


def case_is(cid: str, *statuses: str) -> Any:
    return lambda m: m["case"]["id"] == cid and (not statuses or m["case"]["status"] in statuses)


async def open_case(hl: Any, others: list[dict[str, Any]] | None = None, phone: str = "+8613800000001",
                    **kw: Any) -> tuple[Client, dict[str, Any]]:
    filer = await hl.user("resident", name="Ann Filer", phone=phone)
    r = await filer.ok("case.open", category="neighbour", summary="Water leaks through my ceiling",
                       other_parties=others or [{"name": "Bo Upstairs", "phone": "+8613812341234"}], **kw)
    return filer, r["case"]


async def mediated_case(hl: Any) -> dict[str, Any]:
    """A case with two parties, a mediator and an agency; every client connected."""
    filer, case = await open_case(hl)
    other = await hl.user("resident", name="Bo", phone="+8613812341234")
    await other.ok("case.join", join_code=case["join_code"])
    med = await hl.user("mediator", name="Mediator Ma")
    await med.ok("case.take", case_id=case["id"])
    agency = await hl.user("agency", name="District Court")
    await med.ok("case.invite", case_id=case["id"], account_id=agency.account_id)
    return {"case": case, "filer": filer, "other": other, "med": med, "agency": agency}


async def test_full_case_to_settlement_with_two_parties_and_an_agency(hl):
    watcher = await hl.user("mediator", name="Watcher Wu")
    assert (await watcher.ok("cases.watch"))["cases"] == []

    filer, case = await open_case(hl)
    assert case["status"] == "filed" and case["ref_no"].startswith("M-") and case["mediator"] is None
    assert [p["id"] for p in case["parties"]] == [filer.account_id] and case["parties"][0]["signed"] is False
    assert len(case["join_code"]) == 10 and case["invited"] == [   # 10 since issue 20 (docs/mediation.md)
        {"name": "Bo Upstairs", "joined": False, "join_code": case["join_code"]}]
    seen = await watcher.push("case.updated", case_is(case["id"], "filed"))
    assert seen["case"]["join_code"] is None and seen["case"]["invited"][0]["phone"] == "+86*******1234"

    other = await hl.user("resident", name="Bo", phone="+8613812341234")
    joined = (await other.ok("case.join", join_code=case["join_code"].lower()))["case"]
    assert [p["name"] for p in joined["parties"]] == ["Ann Filer", "Bo Upstairs"] and joined["join_code"] is None
    await filer.push("case.updated", lambda m: len(m["case"]["parties"]) == 2)

    med = await hl.user("mediator", name="Mediator Ma")
    taken = (await med.ok("case.take", case_id=case["id"]))["case"]
    assert taken["status"] == "in_mediation" and taken["mediator"] == {"id": med.account_id, "name": "Mediator Ma"}
    assert [p["phone"] for p in taken["parties"]] == ["+8613800000001", "+8613812341234"]
    await watcher.error("case.take", "conflict", case_id=case["id"])
    for c in (filer, other):
        await c.push("case.updated", case_is(case["id"], "in_mediation"))

    agency = await hl.user("agency", name="District Court")
    await med.ok("case.invite", case_id=case["id"], account_id=agency.account_id)
    got = (await agency.push("case.updated", case_is(case["id"])))["case"]
    assert got["agencies"] == [{"id": agency.account_id, "name": "District Court"}]
    assert [p["phone"] for p in got["parties"]] == ["+86*******0001", "+86*******1234"]
    await med.error("case.invite", "bad_request", case_id=case["id"], account_id=other.account_id)

    # the joint room: everyone sees the same messages
    for c in (filer, other, med, agency):
        assert (await c.ok("chat.subscribe", case_id=case["id"], room="joint"))["messages"] == []
    sent = (await other.ok("chat.send", case_id=case["id"], room="joint", client_msg_id="m1",
                           body="I will fix the pipe"))["message"]
    assert sent["seq"] == 1 and sent["sender"] == {"id": other.account_id, "name": "Bo Upstairs", "role": "resident"}
    assert sent["via"] == "ws" and sent["client_msg_id"] == "m1" and sent["case_id"] == case["id"]
    for c in (filer, other, med, agency):
        assert (await c.push("chat.message"))["message"] == sent

    text = "Bo repairs the pipe by Friday; Ann repaints the ceiling at Bo's cost."
    prop = (await med.ok("agreement.propose", case_id=case["id"], text=text))["case"]
    assert prop["status"] == "agreement_proposed" and prop["agreement"]["text"] == text
    assert prop["agreement"]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    await agency.error("agreement.sign", "forbidden", case_id=case["id"])
    await med.error("agreement.sign", "forbidden", case_id=case["id"])
    agreement_id = prop["agreement"]["id"]
    half = (await filer.ok("agreement.sign", case_id=case["id"], agreement_id=agreement_id))["case"]
    assert half["status"] == "agreement_proposed"
    assert [p["signed"] for p in half["parties"]] == [True, False]
    done = (await other.ok("agreement.sign", case_id=case["id"]))["case"]
    assert done["status"] == "settled" and all(p["signed"] for p in done["parties"]) and done["closed_at"]
    assert done["settled_sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert [s["party_id"] for s in done["agreement"]["signatures"]] == [filer.account_id, other.account_id]
    for c in (filer, med, agency, watcher):
        await c.push("case.updated", case_is(case["id"], "settled"))
    # a settled case: no more messages, no withdrawal, closing it as settled changes nothing
    await filer.error("chat.send", "conflict", case_id=case["id"], room="joint", client_msg_id="late", body="x")
    await filer.error("case.withdraw", "conflict", case_id=case["id"])
    assert (await med.ok("case.close", case_id=case["id"], outcome="settled"))["case"]["status"] == "settled"
    assert (await watcher.ok("cases.watch"))["cases"] == []
    mine = (await agency.ok("cases.mine"))["cases"]
    assert [c["id"] for c in mine] == [case["id"]]

    # the signed record cannot be rewritten, even by SQL
    conn = await asyncpg.connect(hl.database_url)
    try:
        row = await conn.fetchrow("SELECT * FROM settlements WHERE case_id = $1", uuid.UUID(case["id"]))
        assert row is not None and row["text"] == text and row["sha256"] == done["settled_sha256"]
        for sql in ("UPDATE agreements SET text = 'forged'", "DELETE FROM agreement_signatures",
                    "UPDATE settlements SET sha256 = 'x'", "UPDATE case_messages SET body = 'x'"):
            with pytest.raises(asyncpg.RaiseError):
                await conn.execute(sql)
        kinds = [r["kind"] for r in await conn.fetch("SELECT kind FROM case_events ORDER BY id")]
        assert kinds == ["opened", "joined", "taken", "invited", "proposed", "signed", "signed",
                         "settled"]
    finally:
        await conn.close()


async def test_caucus_isolation_for_every_role(hl):
    s = await mediated_case(hl)
    cid = s["case"]["id"]
    caucus = f"caucus:{s['other'].account_id}"
    intruders = [s["filer"], s["agency"], await hl.user("mediator"), await hl.user("resident"),
                 await hl.user("responder", skills=["general"]), await hl.user("dispatcher"), await hl.user("admin")]
    await s["other"].ok("chat.send", case_id=cid, room=caucus, client_msg_id="p1", body="between us: I can pay")
    for c in intruders:
        await c.error("chat.subscribe", "forbidden", case_id=cid, room=caucus)
        await c.error("chat.send", "forbidden", case_id=cid, room=caucus, client_msg_id="x", body="let me in")
    # the right party and the case's mediator
    for c in (s["other"], s["med"]):
        got = (await c.ok("chat.subscribe", case_id=cid, room=caucus))["messages"]
        assert [m["body"] for m in got] == ["between us: I can pay"]
    await s["med"].ok("chat.send", case_id=cid, room=caucus, client_msg_id="m1", body="noted")
    await s["other"].push("chat.message", lambda m: m["message"]["body"] == "noted")
    for c in intruders:
        await c.no_push("chat.message", wait=0.1)
    # outsiders get nothing of the joint room either; agencies and parties do
    for c in intruders[2:]:
        await c.error("chat.subscribe", "forbidden", case_id=cid, room="joint")
    for c in (s["filer"], s["agency"]):
        await c.ok("chat.subscribe", case_id=cid, room="joint")
    # the filer's own caucus is theirs, with the mediator
    mine = f"caucus:{s['filer'].account_id}"
    await s["filer"].ok("chat.subscribe", case_id=cid, room=mine)
    await s["other"].error("chat.subscribe", "forbidden", case_id=cid, room=mine)
    await s["med"].error("chat.subscribe", "not_found", case_id=cid, room=f"caucus:{uuid.uuid4()}")
    # staff reads of residents' words are on the audit record
    conn = await asyncpg.connect(hl.database_url)
    try:
        rows = await conn.fetch("SELECT actor_id::text, detail->>'room' AS room FROM audit_log"
                                " WHERE action = 'read' AND subject_type = 'case_room' AND subject_id = $1", cid)
        assert {(r["actor_id"], r["room"]) for r in rows} == {(s["med"].account_id, caucus),
                                                              (s["agency"].account_id, "joint")}
    finally:
        await conn.close()


async def test_a_signature_after_a_changed_proposal_is_refused(hl):
    s = await mediated_case(hl)
    cid = s["case"]["id"]
    first = (await s["med"].ok("agreement.propose", case_id=cid, text="Version one"))["case"]["agreement"]
    signed = (await s["filer"].ok("agreement.sign", case_id=cid, agreement_id=first["id"]))["case"]
    assert [p["signed"] for p in signed["parties"]] == [True, False]
    second = (await s["med"].ok("agreement.propose", case_id=cid, text="Version two"))["case"]
    assert [p["signed"] for p in second["parties"]] == [False, False]       # the new proposal cleared them
    await s["other"].error("agreement.sign", "conflict", case_id=cid, agreement_id=first["id"])
    after = (await s["other"].ok("agreement.sign", case_id=cid, agreement_id=second["agreement"]["id"]))["case"]
    assert after["status"] == "agreement_proposed" and [p["signed"] for p in after["parties"]] == [False, True]
    done = (await s["filer"].ok("agreement.sign", case_id=cid))["case"]
    assert done["status"] == "settled" and done["agreement"]["text"] == "Version two"
    assert done["settled_sha256"] == hashlib.sha256(b"Version two").hexdigest()


async def test_close_withdraw_and_who_may(hl):
    s = await mediated_case(hl)
    cid = s["case"]["id"]
    await s["other"].error("case.withdraw", "forbidden", case_id=cid)
    await s["agency"].error("case.close", "forbidden", case_id=cid, outcome="failed")   # not a mediator at all
    await (await hl.user("mediator")).error("case.close", "forbidden", case_id=cid, outcome="failed")
    await s["med"].error("case.close", "conflict", case_id=cid, outcome="settled")
    await s["med"].error("case.close", "bad_request", case_id=cid, outcome="won")
    closed = (await s["med"].ok("case.close", case_id=cid, outcome="referred", note="to the district court"))["case"]
    assert closed["status"] == "referred" and closed["outcome_note"] == "to the district court"
    await s["other"].push("case.updated", case_is(cid, "referred"))

    filer, case = await open_case(hl, phone="+8613800000002")
    w = (await filer.ok("case.withdraw", case_id=case["id"]))["case"]
    assert w["status"] == "withdrawn"
    other = await hl.resident()
    await other.error("case.join", "conflict", join_code=case["join_code"])


async def test_join_codes(hl):
    filer, case = await open_case(hl, others=[{"name": "Bo"}, {"name": "Cy", "phone": "13912345678"}])
    codes = [i["join_code"] for i in case["invited"]]
    assert case["join_code"] == codes[0] and len(set(codes)) == 2
    bo, cy, eve = await hl.resident(), await hl.resident(), await hl.resident()
    await bo.ok("case.join", join_code=codes[0])
    assert (await bo.ok("case.join", join_code=codes[0]))["case"]["id"] == case["id"]     # again: same case
    await eve.error("case.join", "conflict", join_code=codes[0])                          # used
    await bo.error("case.join", "conflict", join_code=codes[1])                           # one slot each
    await filer.error("case.join", "conflict", join_code=codes[1])
    got = (await cy.ok("case.join", join_code=f"{codes[1][:4]}-{codes[1][4:]}"))["case"]
    assert len(got["parties"]) == 3 and all("phone" not in p for p in got["parties"] + got["invited"])
    for _ in range(10):
        await eve.error("case.join", "not_found", join_code="ZZZZZZZZ")
    await eve.error("case.join", "rate_limited", join_code="ZZZZZZZZ")


async def test_bad_input_is_refused_without_a_write(hl):
    s = await mediated_case(hl)
    cid, filer = s["case"]["id"], s["filer"]
    bad: list[tuple[str, str, dict[str, Any]]] = [
        ("chat.send", "bad_request", {"case_id": cid, "room": "joint", "client_msg_id": "a", "body": ""}),
        ("chat.send", "bad_request", {"case_id": cid, "room": "joint", "client_msg_id": "b", "body": "x" * 4001}),
        ("chat.send", "bad_request", {"case_id": cid, "room": "joint", "client_msg_id": "c", "body": "   "}),
        ("chat.send", "bad_request", {"case_id": cid, "room": "lobby", "client_msg_id": "d", "body": "hi"}),
        ("chat.send", "bad_request", {"case_id": cid, "room": "caucus:me", "client_msg_id": "e", "body": "hi"}),
        ("chat.send", "bad_request", {"case_id": "not-a-uuid", "room": "joint", "client_msg_id": "f", "body": "hi"}),
        ("chat.send", "bad_request", {"case_id": cid, "room": "joint", "client_msg_id": "", "body": "hi"}),
        ("chat.send", "bad_request", {"case_id": cid, "room": "joint", "body": "hi"}),
        ("chat.send", "bad_request", {"case_id": cid, "room": "joint", "client_msg_id": "g", "body": 5}),
        ("chat.send", "not_found", {"case_id": str(uuid.uuid4()), "room": "joint", "client_msg_id": "h",
                                    "body": "hi"}),
        ("chat.subscribe", "bad_request", {"case_id": cid, "room": "joint", "after_seq": -1}),
        ("chat.subscribe", "bad_request", {"case_id": cid, "room": "everyone"}),
        ("chat.subscribe", "not_found", {"case_id": str(uuid.uuid4()), "room": "joint"}),
        ("chat.subscribe", "bad_request", {"case_id": "1; DROP TABLE cases", "room": "joint"}),
        ("case.open", "bad_request", {"category": "war", "summary": "x", "other_parties": [{"name": "B"}]}),
        ("case.open", "bad_request", {"category": "family", "summary": "x", "other_parties": []}),
        ("case.open", "bad_request", {"category": "family", "summary": "", "other_parties": [{"name": "B"}]}),
        ("case.open", "bad_request", {"category": "family", "summary": "x",
                                      "other_parties": [{"name": "B", "phone": "not a phone"}]}),
        ("case.join", "bad_request", {"join_code": 12345678}),
        ("case.withdraw", "not_found", {"case_id": str(uuid.uuid4())}),
        ("agreement.sign", "bad_request", {"case_id": cid, "agreement_id": "nope"}),
        ("agreement.sign", "conflict", {"case_id": cid}),
    ]
    for type_, code, fields in bad:
        await filer.error(type_, code, **fields)
    for type_, code, fields in [
            ("case.take", "not_found", {"case_id": str(uuid.uuid4())}),
            ("case.take", "bad_request", {"case_id": "x"}),
            ("case.invite", "not_found", {"case_id": cid, "account_id": str(uuid.uuid4())}),
            ("agreement.propose", "bad_request", {"case_id": cid, "text": ""}),
            ("agreement.propose", "bad_request", {"case_id": cid, "text": "   "}),
            ("agreement.propose", "not_found", {"case_id": str(uuid.uuid4()), "text": "t"})]:
        await s["med"].error(type_, code, **fields)
    await s["med"].error("case.open", "forbidden", category="family", summary="x", other_parties=[{"name": "B"}])
    await s["agency"].error("cases.watch", "forbidden")
    # exactly 4000 characters is fine; nothing else was written
    ok = (await filer.ok("chat.send", case_id=cid, room="joint", client_msg_id="max", body="字" * 4000))["message"]
    assert ok["seq"] == 1
    conn = await asyncpg.connect(hl.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM case_messages") == 1
        assert await conn.fetchval("SELECT count(*) FROM cases") == 1
        assert await conn.fetchval("SELECT count(*) FROM agreements") == 0
    finally:
        await conn.close()


async def test_purge_blanks_old_closed_cases_but_keeps_the_signed_record(hl):
    import mediation.purge  # noqa: F401  (registers the step, as `helpline purge` does)
    from infra import db
    from server import purge

    s = await mediated_case(hl)
    cid = s["case"]["id"]
    await s["other"].ok("chat.send", case_id=cid, room="joint", client_msg_id="1", body="my address is ...")
    await s["med"].ok("agreement.propose", case_id=cid, text="Terms")
    await s["filer"].ok("agreement.sign", case_id=cid)
    await s["other"].ok("agreement.sign", case_id=cid)
    still_open = (await (await hl.user("resident", phone="+8613700000009")).ok(
        "case.open", category="other", summary="keep me", other_parties=[{"name": "X"}]))["case"]
    conn = await db.connect(hl.database_url)
    try:
        await conn.execute("UPDATE cases SET closed_at = now() - interval '400 days' WHERE id = $1", uuid.UUID(cid))
        await conn.execute("UPDATE accounts SET created_at = now() - interval '500 days'")
        done = await purge.purge(conn, 180)
        assert done["cases"] == 1 and done["case_residents"] == 2
        c = await conn.fetchrow("SELECT summary, purged_at FROM cases WHERE id = $1", uuid.UUID(cid))
        assert c is not None and c["summary"] == "" and c["purged_at"] is not None
        assert {r["body"] for r in await conn.fetch("SELECT body FROM case_messages")} == {""}
        assert await conn.fetchval("SELECT count(*) FROM case_parties WHERE case_id = $1 AND (name <> ''"
                                   " OR phone IS NOT NULL)", uuid.UUID(cid)) == 0
        assert await conn.fetchval("SELECT text FROM settlements WHERE case_id = $1", uuid.UUID(cid)) == "Terms"
        assert await conn.fetchval("SELECT summary FROM cases WHERE id = $1", uuid.UUID(still_open["id"])) == "keep me"
        assert await conn.fetchval("SELECT phone FROM accounts WHERE phone = '+8613700000009'")   # open case: kept
        assert (await purge.purge(conn, 180))["cases"] == 0
    finally:
        await conn.close()


async def test_races_one_mediator_per_case_and_one_joiner_per_code(hl):
    import asyncio

    filer, case = await open_case(hl)
    meds = [await hl.user("mediator", name=f"M{i}") for i in range(5)]
    answers = await asyncio.gather(*[m.call("case.take", case_id=case["id"]) for m in meds])
    assert sorted(a["type"] for a in answers) == ["error"] * 4 + ["ok"]
    assert {a["code"] for a in answers if a["type"] == "error"} == {"conflict"}
    winner = next(a for a in answers if a["type"] == "ok")["case"]["mediator"]["id"]
    residents = [await hl.resident() for _ in range(5)]
    answers = await asyncio.gather(*[r.call("case.join", join_code=case["join_code"]) for r in residents])
    assert sorted(a["type"] for a in answers) == ["error"] * 4 + ["ok"]
    final = (await filer.ok("cases.mine"))["cases"][0]
    assert final["mediator"]["id"] == winner and len(final["parties"]) == 2


async def test_welcome_carries_open_cases_after_reconnect(hl):
    token = await hl.device_token("mediation-welcome-1")
    filer = await hl.connect(token)
    case = (await filer.ok("case.open", category="labour", summary="Unpaid wages for March",
                           other_parties=[{"name": "Boss Wu"}]))["case"]
    await filer.close()
    again = await hl.connect(token)
    assert [c["id"] for c in again.welcome["open_cases"]] == [case["id"]]
    await again.ok("case.withdraw", case_id=case["id"])
    third = await hl.connect(token)
    assert third.welcome["open_cases"] == []
    medic = await hl.user("responder", skills=["medical"])
    assert "open_cases" not in medic.welcome


async def test_case_open_with_a_request_id_opens_one_case_however_often_it_is_sent(hl):
    """A resident whose answer was lost sends case.open again with the same request_id: the same case comes
    back (also when the re-sends race), with the same join codes; another request_id is another case."""
    import asyncio

    filer = await hl.user("resident", name="Ann Filer")
    fields = dict(category="neighbour", summary="Noise at night", other_parties=[{"name": "Bo"}],
                  request_id="open-1")
    first = (await filer.ok("case.open", **fields))["case"]
    again = await asyncio.gather(*[filer.call("case.open", **fields) for _ in range(5)])
    assert all(a["type"] == "ok" and a["case"]["id"] == first["id"] for a in again)
    assert {a["case"]["join_code"] for a in again} == {first["join_code"]}
    other = (await filer.ok("case.open", **{**fields, "request_id": "open-2"}))["case"]
    assert other["id"] != first["id"]
    stranger = await hl.user("resident", name="Cy")                  # request ids are per filer
    theirs = (await stranger.ok("case.open", **fields))["case"]
    assert theirs["id"] not in (first["id"], other["id"])
    conn = await asyncpg.connect(hl.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM cases") == 3
        assert await conn.fetchval("SELECT count(*) FROM case_events WHERE kind = 'opened'") == 3
    finally:
        await conn.close()
