"""Issue 20, SMS and mediation: each attack of the review, performed through the public interfaces
(the WebSocket, the signed Twilio webhook with the stand-in, the OTP routes), and shown to hold.

Floods are bounded (tens of attempts, seconds) and stay on loopback.
"""
from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

import asyncpg
import pytest

from infra import ratelimit as rl
from testkit.client import Client, http
from testkit.runtime import until
from testkit.stack import query as q
from testkit.twilio import FakeTwilio, sms_app, sms_in

BO = "+8613912345678"
CY = "+8613812345670"


async def texts_to(app: Any, phone: str) -> list[str]:
    return [r["body"] for r in await q(app, "SELECT body FROM sms_outbox WHERE to_phone = $1 ORDER BY id", phone)]


async def otp_login(app: Any, fake: FakeTwilio, phone: str, device_token: str | None = None) -> dict[str, Any]:
    before = len(fake.to(phone))
    st, _ = await http("POST", app.base + "/api/auth/otp/request", json={"phone": phone})
    assert st == 202
    msgs = await until(lambda: fake.to(phone)[before:], what="code SMS")
    m = re.search(r"\b(\d{6})\b", msgs[-1]["Body"])
    assert m
    st, got = await http("POST", app.base + "/api/auth/otp/verify", token=device_token,
                         json={"phone": phone, "code": m.group(1)})
    assert st == 200, got
    return dict(got)


def case_open(**kw: Any) -> dict[str, Any]:
    return {"category": "neighbour", "summary": "noise", "other_parties": [{"name": "Bo", "phone": BO}], **kw}


# ---------------------------------------------------------------- #1 SMS pumping and phishing

async def test_one_account_opens_a_bounded_number_of_cases(hl):
    filer = await hl.resident()
    limit = rl.CASES_PER_ACCOUNT[0]
    answers = await asyncio.gather(*[filer.call("case.open", **case_open(request_id=f"r{i}"))
                                     for i in range(limit + 3)])
    assert sorted(a["type"] for a in answers) == ["error"] * 3 + ["ok"] * limit
    assert {a["code"] for a in answers if a["type"] == "error"} == {"rate_limited"}
    assert len(await q(hl, "SELECT 1 FROM cases")) == limit


async def test_fresh_device_accounts_from_one_address_cannot_pump_texts(hl):
    """The review's 945 cases / 9,450 texts: every filer a fresh device account, every case naming
    numbers. Cases are bounded per address, invitation texts per address and per destination number."""
    per_phone = rl.INVITES_PER_PHONE[0]
    for i in range(per_phone + 2):             # one destination number: a few invitations a day, whoever files
        case = (await (await hl.resident()).ok("case.open", **case_open()))["case"]
        assert case.get("invitations_not_texted", []) == ([] if i < per_phone else ["Bo"])
    assert len(await texts_to(hl, BO)) == per_phone

    n = rl.CASES_PER_ADDRESS[0] + 4
    filers = [await hl.resident() for _ in range(n)]
    phones = [f"+86139{i:08d}" for i in range(n)]
    answers = await asyncio.gather(*[f.call("case.open", category="other", summary="x",
                                            other_parties=[{"name": "P", "phone": phones[i]},
                                                           {"name": "Q", "phone": BO}])
                                     for i, f in enumerate(filers)])
    ok = [a for a in answers if a["type"] == "ok"]
    assert len(ok) == rl.CASES_PER_ADDRESS[0] - (per_phone + 2)            # the address's cases, all told
    assert {a["code"] for a in answers if a["type"] == "error"} == {"rate_limited"}
    sent = await q(hl, "SELECT to_phone FROM sms_outbox")
    assert len(sent) <= rl.INVITES_PER_ADDRESS[0]                           # the address's texts, all told
    assert sum(1 for r in sent if r["to_phone"] == BO) == per_phone
    assert [a for a in ok if a["case"].get("invitations_not_texted")], "the filer is told who was not texted"


@pytest.mark.parametrize("phone", ["+442079460958", "+88216000000", "+5372345678", "+14155550100"])
async def test_numbers_outside_the_allowed_countries_are_refused(hl, phone):
    filer = await hl.resident()
    err = await filer.error("case.open", "bad_request", **{**case_open(), "other_parties": [
        {"name": "A", "phone": "13912345678"}, {"name": "B", "phone": phone}]})
    assert "other_parties[1].phone" in err["message"]
    assert await q(hl, "SELECT 1 FROM cases") == [] and await q(hl, "SELECT 1 FROM sms_outbox") == []
    await filer.ok("case.open", **case_open())                                 # +86: the city's own country


async def test_an_unverified_filers_words_never_reach_a_phone(hl):
    filer = await hl.resident()                                   # a free device account: not verified
    bait = "Bank notice: account frozen, verify at http://bank-verify.example/x or call 95555"
    await filer.ok("case.open", category="property", summary=bait + " 0000 1111", name=bait,
                   other_parties=[{"name": bait, "phone": BO}])
    (text,) = await texts_to(hl, BO)
    assert text.startswith("Helpline mediation M-") and "A resident asks you" in text
    assert "Bank" not in text and "bank-verify" not in text and "95555" not in text


async def test_a_verified_filers_name_goes_only_inside_the_template(hl):
    bait = "Bank notice: verify at http://bank-verify.example/x now " + "x" * 40
    filer = await hl.user("resident", name="Ann")                                 # a verified account
    await filer.ok("case.open", **case_open(name=bait))
    (text,) = await texts_to(hl, BO)
    assert text.startswith("Helpline mediation M-") and 'A resident, "Bank notice' in text
    assert "http://bank" not in text and "bank-verify" not in text and "x" * 40 not in text


async def test_chat_from_an_unverified_party_is_not_copied_into_texts(hl):
    filer = await hl.resident()
    case = (await filer.ok("case.open", **case_open()))["case"]
    await sms_bo_joins(hl, case)
    await filer.ok("chat.send", case_id=case["id"], room="joint", client_msg_id="1",
                   body="Your bank account is frozen, log in at http://evil.example")
    async def chat_text() -> list[str]:
        return [t for t in await texts_to(hl, BO) if "message" in t]
    text = (await until(chat_text, what="the chat text"))[-1]
    assert "evil" not in text and "bank" not in text and "read it at" in text


async def sms_bo_joins(hl: Any, case: dict[str, Any]) -> None:
    from handlers.context import MEDIATION
    from handlers.sms_routing import mediation_reply
    reply = await mediation_reply(hl.app[MEDIATION], BO, case["join_code"])
    assert reply and "joined" in reply.lower()


async def test_the_hourly_budget_holds_back_mediation_texts_but_not_codes(stack, clean_db):
    fake = await FakeTwilio().start()
    app = await sms_app(stack, fake, sms_hourly_budget=2)
    try:
        filer = await app.user("resident", name="Ann")
        for i in range(2):
            await filer.ok("case.open", **case_open(other_parties=[
                {"name": "P", "phone": f"+86139000000{i}{j}"} for j in range(2)]))
        await until(lambda: len(fake.sent) >= 2, what="two invitations")
        await asyncio.sleep(1.5)
        assert len(fake.sent) == 2                                           # the budget: 2 an hour
        waiting = await q(app, "SELECT error FROM sms_outbox WHERE status = 'pending'")
        assert len(waiting) == 2 and all("budget" in r["error"] for r in waiting)
        await otp_login(app, fake, CY)                                      # a login code still goes
        st, metrics = await http("GET", app.base + "/metrics")
        assert "helpline_sms_over_budget 1.0" in metrics
        assert 'helpline_sms_held_over_budget_total{kind="case"}' in metrics
    finally:
        await app.stop()
        await fake.stop()


# ---------------------------------------------------------------- #5 no name is a phone number

async def test_no_name_anyone_sees_is_a_phone_number(shl, fake):
    dev_token = await shl.device_token()
    got = await otp_login(shl, fake, CY, dev_token)
    assert got["account"]["name"] == ""                                   # OTP never names an account
    filer = await shl.connect(got["token"])
    case = (await filer.ok("case.open", **case_open()))["case"]            # no name given
    assert case["parties"][0]["name"] == ""          # no name: the pages say "Applicant" in their language
    other = await shl.resident()
    joined = (await other.ok("case.join", join_code=case["join_code"]))["case"]
    med = await shl.user("mediator", name="Med")
    await med.ok("case.take", case_id=case["id"])
    await other.ok("chat.subscribe", case_id=case["id"], room="joint")
    await filer.ok("chat.send", case_id=case["id"], room="joint", client_msg_id="1", body="hello")
    msg = (await other.push("chat.message"))["message"]
    await med.ok("agreement.propose", case_id=case["id"], text="Terms")
    await filer.ok("agreement.sign", case_id=case["id"])
    signed = (await other.ok("agreement.sign", case_id=case["id"]))["case"]
    shown = [p["name"] for p in joined["parties"]] + [msg["sender"]["name"]] + [
        s["name"] for s in signed["agreement"]["signatures"]]
    assert shown[0] == "" and all("138" not in n and "1234" not in n for n in shown), shown

    # a phone-like name is refused at every entry point
    for fields in ({"name": "+86 138-1234-5670"}, {"other_parties": [{"name": "13812345670"}]}):
        err = await filer.error("case.open", "bad_request", **{**case_open(request_id="x"), **fields})
        assert "phone number" in err["message"]
    with pytest.raises(Exception, match="phone number"):
        await shl.add_user(role="dispatcher", name="138 1234 5670")

    # a resident who texts HELP is not named by their number, for the dispatcher or responders
    disp = await shl.user("dispatcher")
    await disp.ok("queue.watch")
    await sms_in(shl.base, BO, "HELP fell down")
    inc = (await disp.push("incident.updated", lambda m: m["incident"]["channel"] == "sms"))["incident"]
    assert "13912345678" not in str(inc.get("reporter"))
    assert [r["name"] for r in await q(shl, "SELECT name FROM accounts WHERE phone IN ($1, $2)", BO, CY)] == ["", ""]


# ---------------------------------------------------------------- #8 purge leaves no phone behind

async def test_purge_drops_numbers_kept_for_nothing_and_names_in_the_signed_record(shl, fake):
    from infra import db
    from server import purge

    await sms_in(shl.base, "+8613700000001", "hello?")                    # texted once, long ago
    await sms_in(shl.base, "+8613700000002", "STOP")                      # opted out: must be kept
    await otp_login(shl, fake, "+8613700000003")                          # verified, nothing else
    filer = await shl.user("resident", name="Ann Filer")
    case = (await filer.ok("case.open", **case_open()))["case"]
    other = await shl.resident()
    await other.ok("case.join", join_code=case["join_code"])
    med = await shl.user("mediator", name="Med")
    await med.ok("case.take", case_id=case["id"])
    await med.ok("agreement.propose", case_id=case["id"], text="Terms")
    await filer.ok("agreement.sign", case_id=case["id"])
    await other.ok("agreement.sign", case_id=case["id"])
    conn = await db.connect(shl.database_url)
    try:
        for table, col in (("sms_inbound", "received_at"), ("sms_outbox", "created_at"),
                           ("accounts", "created_at"), ("sms_contacts", "changed_at")):
            await conn.execute(f"UPDATE {table} SET {col} = now() - interval '400 days'")
        await conn.execute("UPDATE sms_otp SET expires_at = NULL, last_sent_at = now() - interval '400 days'")
        await conn.execute("UPDATE cases SET closed_at = now() - interval '400 days'")
        sigs_before = await conn.fetch("SELECT party_id, via, signed_at FROM agreement_signatures ORDER BY party_id")
        done = await purge.purge(conn, 180)
        assert done["sms_contacts"] >= 1 and done["resident_phones"] >= 1
        assert [r["phone"] for r in await conn.fetch("SELECT phone FROM sms_contacts")] == ["+8613700000002"]
        assert await conn.fetchval("SELECT count(*) FROM accounts WHERE phone = '+8613700000003'") == 0
        s = await conn.fetchrow("SELECT * FROM settlements")
        assert s is not None and s["sha256"] and s["text"] == "Terms" and s["names_purged_at"] is not None
        sigs = json.loads(s["signatures"]) if isinstance(s["signatures"], str) else s["signatures"]
        assert len(sigs) == 2 and all(x["name"] == "" and x["signed_at"] and x["party_id"] for x in sigs)
        assert await conn.fetchval("SELECT count(*) FROM agreement_signatures WHERE party_name <> ''") == 0
        assert await conn.fetch("SELECT party_id, via, signed_at FROM agreement_signatures ORDER BY party_id"
                                ) == sigs_before
        with pytest.raises(asyncpg.RaiseError, match="append-only"):       # outside purge: untouchable
            await conn.execute("UPDATE agreement_signatures SET party_name = ''")
    finally:
        await conn.close()


# ---------------------------------------------------------------- join codes

async def test_parallel_sockets_of_one_account_get_ten_guesses_not_sixteen(hl):
    token = await hl.device_token()
    sockets = [await hl.connect(token) for _ in range(8)]
    answers = await asyncio.gather(*[c.call("case.join", join_code="ZZZZZZZZ2Z") for c in sockets for _ in range(2)])
    codes = [a.get("code") for a in answers]
    assert codes.count("not_found") == rl.JOIN_FAILURES_PER_ACCOUNT[0] and codes.count("rate_limited") == 6


async def test_fresh_accounts_from_one_address_share_its_guesses(hl):
    filer = await hl.user("resident", name="Ann")
    case = (await filer.ok("case.open", **case_open()))["case"]
    n = rl.JOIN_GUESSES_PER_ADDRESS[0]
    guessers: list[Client] = [await hl.resident() for _ in range(n + 2)]
    answers = [await g.call("case.join", join_code=f"{i:04d}ABCDEF") for i, g in enumerate(guessers)]
    assert [a.get("code") for a in answers] == ["not_found"] * n + ["rate_limited"] * 2
    late = await hl.resident()                                  # even the right code waits out the window
    await late.error("case.join", "rate_limited", join_code=case["join_code"])


async def test_wrong_join_codes_by_sms_are_counted(shl, fake):
    filer = await shl.user("resident", name="Ann")
    case = (await filer.ok("case.open", **case_open()))["case"]
    for i in range(rl.JOIN_GUESSES_PER_PHONE[0]):
        await sms_in(shl.base, CY, f"JOIN {i:02d}ABCDEFGH")
    st, xml = await sms_in(shl.base, CY, f"JOIN {case['join_code']}")
    assert "joined" not in xml.lower()
    assert len(await q(shl, "SELECT 1 FROM case_parties WHERE account_id IS NOT NULL")) == 1     # the filer only


# ---------------------------------------------------------------- SMS weak points

async def test_safe_by_sms_does_not_cancel_an_app_request(shl, fake):
    got = await otp_login(shl, fake, CY, await shl.device_token())
    resident = await shl.connect(got["token"])
    inc = (await resident.ok("help.request", request_id="a", category="medical", lat=31.23, lon=121.47))["incident"]
    st, xml = await sms_in(shl.base, CY, "SAFE")                          # the sender may be spoofed
    assert "made in the app" in xml
    row = (await q(shl, "SELECT status, note FROM incidents WHERE id = $1", uuid.UUID(inc["id"])))[0]
    assert row["status"] != "cancelled" and "SAFE received by SMS" in row["note"]


async def test_each_sms_party_signs_with_a_code_of_its_own_and_guesses_are_limited(shl, fake):
    from handlers.context import MEDIATION
    from handlers.sms_routing import mediation_reply
    svc = shl.app[MEDIATION]
    filer = await shl.user("resident", name="Ann")
    case = (await filer.ok("case.open", **case_open(other_parties=[{"name": "Bo", "phone": BO},
                                                                  {"name": "Cy", "phone": CY}])))["case"]
    for phone, inv in zip((BO, CY), case["invited"]):
        assert "joined" in (await mediation_reply(svc, phone, inv["join_code"]) or "").lower()
    med = await shl.user("mediator", name="Med")
    await med.ok("case.take", case_id=case["id"])
    await med.ok("agreement.propose", case_id=case["id"], text="Terms")
    codes = {}
    for phone in (BO, CY):
        async def proposal(p: str = phone) -> list[dict[str, Any]]:
            return [t for t in fake.to(p) if "SIGN" in t["Body"]]
        m = re.search(r"SIGN (\d{6})", (await until(proposal, what="proposal"))[-1]["Body"])
        assert m is not None
        codes[phone] = m.group(1)
    assert codes[BO] != codes[CY]
    st, xml = await sms_in(shl.base, BO, f"SIGN {codes[CY]}")              # another party's code: no
    assert "matches no agreement" in xml
    wrong = [f"{(int(codes[BO]) + k) % 1_000_000:06d}" for k in range(1, 6)]
    for w in wrong[: rl.SIGN_GUESSES_PER_PHONE[0] - 1]:
        await sms_in(shl.base, BO, f"SIGN {w}")
    st, xml = await sms_in(shl.base, BO, f"SIGN {codes[BO]}")             # past its guesses: refused
    assert "too many" in xml
    assert await q(shl, "SELECT 1 FROM agreement_signatures") == []


async def test_concurrent_deliveries_of_one_message_sid_get_the_same_reply(shl, fake):
    sid = "SM" + uuid.uuid4().hex
    replies = await asyncio.gather(*[sms_in(shl.base, BO, "HELP smoke", sid=sid) for _ in range(6)])
    bodies = {xml for _, xml in replies}
    assert len(bodies) == 1 and "<Message>" in bodies.pop()
    assert len(await q(shl, "SELECT 1 FROM incidents")) == 1


async def test_a_staff_phone_texting_help_is_sent_to_its_app(shl, fake):
    await shl.add_user(role="responder", name="Medic", skills=["medical"], phone=CY)
    st, xml = await sms_in(shl.base, CY, "HELP chest pain")
    assert "staff account" in xml
    assert await q(shl, "SELECT 1 FROM incidents") == []
