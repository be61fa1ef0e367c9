"""Issue 19, mediation: a party added after filing (`case.add_party`), a way back into a case by the
phone code (`cases.claim`, `otp/verify` with `keep`), and a filer without a name stored without one.
Real WebSockets, PostgreSQL and Redis; texts read from the outbox or from the Twilio stand-in.
"""
from __future__ import annotations

import re
from typing import Any

from infra import ratelimit as rl
from testkit.client import Client, http
from testkit.runtime import until
from testkit.stack import query as q

BO = "+8613912345678"
CY = "+8613812345670"
DEE = "+8613700000004"


def case_is(cid: str) -> Any:
    return lambda m: m["case"]["id"] == cid


async def texts_to(app: Any, phone: str) -> list[str]:
    return [r["body"] for r in await q(app, "SELECT body FROM sms_outbox WHERE to_phone = $1 ORDER BY id", phone)]


async def mediated(hl: Any) -> dict[str, Any]:
    """A verified filer Ann, Bo joined, a mediator who took it, an agency invited."""
    filer = await hl.user("resident", name="Ann", phone="+8613800000001")
    case = (await filer.ok("case.open", category="neighbour", summary="Noise at night",
                           other_parties=[{"name": "Bo"}]))["case"]
    bo = await hl.resident()
    await bo.ok("case.join", join_code=case["join_code"])
    med = await hl.user("mediator", name="Mediator Ma")
    await med.ok("case.take", case_id=case["id"])
    agency = await hl.user("agency", name="District Court")
    await med.ok("case.invite", case_id=case["id"], account_id=agency.account_id)
    return {"id": case["id"], "filer": filer, "bo": bo, "med": med, "agency": agency}


# ---------------------------------------------------------------- case.add_party

async def test_the_filer_and_the_mediator_add_parties_each_with_a_new_code(hl):
    w = await mediated(hl)
    cid, filer, bo, med = w["id"], w["filer"], w["bo"], w["med"]
    r = await filer.ok("case.add_party", case_id=cid, name="Cy Downstairs")
    added, case = r["added"], r["case"]
    assert added["name"] == "Cy Downstairs" and added["texted"] is False
    assert re.fullmatch(r"[2-9A-HJKMNP-Z]{10}", added["join_code"]) and any(c.isdigit() for c in added["join_code"])
    assert [i["name"] for i in case["invited"]] == ["Bo", "Cy Downstairs"]
    assert case["invited"][1] == {"name": "Cy Downstairs", "joined": False, "join_code": added["join_code"]}
    assert added["join_code"] != case["invited"][0]["join_code"]

    # everyone in the case sees the new party at once; a party sees no code
    seen = (await bo.push("case.updated", lambda m: len(m["case"]["invited"]) == 2))["case"]
    assert seen["invited"][1] == {"name": "Cy Downstairs", "joined": False}
    await med.push("case.updated", lambda m: len(m["case"]["invited"]) == 2)
    await w["agency"].push("case.updated", lambda m: len(m["case"]["invited"]) == 2)

    # the mediator adds one too, with a phone: texted with its own code
    r = await med.ok("case.add_party", case_id=cid, name="Dee", phone="137 0000 0004")
    assert r["added"]["texted"] is True and r["case"]["invited"][2]["phone"] == DEE
    (text,) = await texts_to(hl, DEE)
    assert r["added"]["join_code"] in text and text.startswith("Helpline mediation M-")
    assert 'A resident, "Ann"' in text          # the filer's phone is verified: their name, in the template

    # the new party joins with the code; the filer sees them join
    cy = await hl.resident()
    joined = (await cy.ok("case.join", join_code=added["join_code"]))["case"]
    assert [p["name"] for p in joined["parties"]] == ["Ann", "Bo", "Cy Downstairs"]
    await filer.push("case.updated", lambda m: len(m["case"]["parties"]) == 3)
    kinds = [r["kind"] for r in await q(hl, "SELECT kind FROM case_events ORDER BY id")]
    assert kinds.count("party_added") == 2


async def test_only_the_filer_and_the_case_mediator_add_parties_and_only_while_open(hl):
    w = await mediated(hl)
    cid = w["id"]
    stranger, med2 = await hl.resident(), await hl.user("mediator", name="Other")
    for who in (w["bo"], stranger, med2, w["agency"]):
        await who.error("case.add_party", "forbidden", case_id=cid, name="Eve")
    disp = await hl.user("dispatcher")
    await disp.error("case.add_party", "forbidden", case_id=cid, name="Eve")
    await w["filer"].error("case.add_party", "not_found", case_id="00000000-0000-4000-8000-000000000000",
                           name="Eve")
    await w["med"].ok("case.close", case_id=cid, outcome="failed")
    await w["filer"].error("case.add_party", "conflict", case_id=cid, name="Eve")
    await w["med"].error("case.add_party", "conflict", case_id=cid, name="Eve", phone=BO)
    assert len(await q(hl, "SELECT 1 FROM case_parties")) == 2
    assert await q(hl, "SELECT 1 FROM sms_outbox") == []


async def test_bad_parties_are_refused_with_the_field_named_and_nothing_written(hl):
    filer = await hl.resident()
    case = (await filer.ok("case.open", category="family", summary="Flat",
                           other_parties=[{"name": "Sister"}]))["case"]
    cid = case["id"]
    for fields, words in (({"name": ""}, ""), ({"name": "   "}, "name"),
                          ({"name": "+86 138-1234-5670"}, "phone number"),
                          ({"name": "Bo", "phone": "12"}, "phone:"),
                          ({"name": "Bo", "phone": "+442079460958"}, "phone: only numbers in CN")):
        err = await filer.error("case.add_party", "bad_request", case_id=cid, **fields)
        assert words in err["message"], err
    await filer.error("case.add_party", "bad_request", case_id="not-a-uuid", name="Bo")
    assert len(await q(hl, "SELECT 1 FROM case_parties")) == 2 and await q(hl, "SELECT 1 FROM sms_outbox") == []
    # at most ten named parties
    for i in range(9):
        await filer.ok("case.add_party", case_id=cid, name=f"P{i}")
    err = await filer.error("case.add_party", "conflict", case_id=cid, name="One too many")
    assert "at most 10" in err["message"]


async def test_added_parties_count_against_the_invitation_limits_of_filing(hl):
    filer = await hl.resident()                                   # an unverified device account
    cid = (await filer.ok("case.open", category="other", summary="x", name="Bank: call 95555",
                          other_parties=[{"name": "Q"}]))["case"]["id"]
    per_phone = rl.INVITES_PER_PHONE[0]
    results = [(await filer.ok("case.add_party", case_id=cid, name=f"Bo {i}", phone=BO))["added"]
               for i in range(per_phone + 1)]
    assert [a["texted"] for a in results] == [True] * per_phone + [False]     # kept, not texted
    sent = await texts_to(hl, BO)
    assert len(sent) == per_phone
    assert all("A resident asks you" in t and "95555" not in t and "Bank" not in t for t in sent)
    # the party past the limit is there with its code, for the filer to pass on
    case = (await filer.ok("cases.mine"))["cases"][0]
    assert case["invited"][-1]["join_code"] == results[-1]["join_code"]


# ---------------------------------------------------------------- a filer without a name

async def test_a_filer_without_a_name_is_stored_without_one(hl):
    filer = await hl.resident()
    for name in (None, "  "):
        fields = {"name": name} if name is not None else {}
        case = (await filer.ok("case.open", category="other", summary="x", other_parties=[{"name": "Bo"}],
                               **fields))["case"]
        assert case["parties"][0]["name"] == ""
    assert [r["name"] for r in await q(hl, "SELECT name FROM case_parties WHERE slot = 0")] == ["", ""]
    await filer.ok("chat.send", case_id=case["id"], room="joint", client_msg_id="1", body="hello")
    (msg,) = (await filer.ok("chat.subscribe", case_id=case["id"], room="joint"))["messages"]
    assert msg["sender"]["name"] == ""


# ---------------------------------------------------------------- back into a case by the phone code

async def send_code(app: Any, fake: Any, phone: str) -> str:
    before = len(fake.to(phone))
    st, body = await http("POST", app.base + "/api/auth/otp/request", json={"phone": phone})
    assert st == 202, body
    def codes() -> list[str]:           # the phone may also be getting its invitation meanwhile
        return [m.group(1) for t in fake.to(phone)[before:] if (m := re.search(r"验证码：(\d{6})", t["Body"]))]
    got: list[str] = await until(codes, what="code SMS")
    return got[-1]


async def verify(app: Any, phone: str, code: str, token: str | None = None, **kw: Any) -> tuple[int, Any]:
    return await http("POST", app.base + "/api/auth/otp/verify", token=token,
                      json={"phone": phone, "code": code, **kw})


async def allow_next_code(app: Any, phone: str) -> None:
    await q(app, "UPDATE sms_otp SET last_sent_at = now() - interval '31 seconds' WHERE phone = $1", phone)


async def test_a_filer_links_a_phone_and_gets_back_in_from_another_device(shl, fake):
    token = await shl.device_token("device-phone-1")
    filer = await shl.connect(token)
    case = (await filer.ok("case.open", category="neighbour", summary="Noise",
                           other_parties=[{"name": "Bo"}]))["case"]
    st, got = await verify(shl, CY, await send_code(shl, fake, CY), token, keep=True)
    assert st == 200 and got["account"]["id"] == filer.account_id and got["account"]["verified"]

    # another device: a fresh device account, then the code for the same phone
    other_device = await shl.device_token("device-laptop-1")
    await allow_next_code(shl, CY)
    st, back = await verify(shl, CY, await send_code(shl, fake, CY), other_device)
    assert st == 200 and back["account"]["id"] == filer.account_id
    again = await shl.connect(back["token"])
    assert [c["id"] for c in again.welcome["open_cases"]] == [case["id"]]
    assert [c["id"] for c in (await again.ok("cases.mine"))["cases"]] == [case["id"]]
    await again.ok("chat.send", case_id=case["id"], room="joint", client_msg_id="1", body="me again")
    r = await again.ok("cases.claim")                    # already the filer: nothing to take
    assert (r["cases"], r["held_by_others"]) == ([], 0)


async def test_an_invited_phone_takes_its_party_once_and_a_wrong_phone_gets_nothing(shl, fake):
    filer = await shl.resident()
    case = (await filer.ok("case.open", category="neighbour", summary="Noise",
                           other_parties=[{"name": "Bo", "phone": BO}]))["case"]
    # a wrong phone: verified, but named for nothing
    st, wrong = await verify(shl, CY, await send_code(shl, fake, CY))
    assert st == 200
    cy = await shl.connect(wrong["token"])
    assert (await cy.ok("cases.claim"))["cases"] == [] and (await cy.ok("cases.mine"))["cases"] == []
    await cy.error("chat.subscribe", "forbidden", case_id=case["id"], room="joint")

    # Bo, on a new phone, never typed the code: the number the filer gave is enough
    st, got = await verify(shl, BO, await send_code(shl, fake, BO))
    assert st == 200
    bo = await shl.connect(got["token"])
    r = await bo.ok("cases.claim")
    assert [c["id"] for c in r["cases"]] == [case["id"]] and r["held_by_others"] == 0
    mine = r["cases"][0]
    assert [p["id"] for p in mine["parties"]] == [filer.account_id, bo.account_id]
    await filer.push("case.updated", lambda m: len(m["case"]["parties"]) == 2)
    await bo.ok("chat.subscribe", case_id=case["id"], room=f"caucus:{bo.account_id}")
    # once: the code is used, claiming again takes nothing new
    assert (await bo.ok("cases.claim"))["cases"] == []
    stranger = await shl.resident()
    await stranger.error("case.join", "conflict", join_code=case["join_code"])
    events = await q(shl, "SELECT data->>'by' AS by FROM case_events WHERE kind = 'joined'")
    assert [e["by"] for e in events] == ["phone"]


async def test_a_joined_party_is_never_taken_over_by_the_phone_the_filer_typed(shl, fake):
    filer = await shl.resident()
    case = (await filer.ok("case.open", category="neighbour", summary="Noise",
                           other_parties=[{"name": "Bo", "phone": BO}]))["case"]
    holder = await shl.resident()          # whoever joined with the code (unverified)
    await holder.ok("case.join", join_code=case["join_code"])
    st, got = await verify(shl, BO, await send_code(shl, fake, BO))
    assert st == 200
    bo = await shl.connect(got["token"])
    r = await bo.ok("cases.claim")
    assert (r["cases"], r["held_by_others"]) == ([], 1)
    await bo.error("chat.subscribe", "forbidden", case_id=case["id"], room="joint")
    (row,) = await q(shl, "SELECT account_id FROM case_parties WHERE slot = 1")
    assert str(row["account_id"]) == holder.account_id
    await holder.ok("chat.subscribe", case_id=case["id"], room=f"caucus:{holder.account_id}")


async def test_keep_never_switches_to_another_account(shl, fake):
    st, owner = await verify(shl, CY, await send_code(shl, fake, CY))     # the number has its own account
    assert st == 200
    token = await shl.device_token("device-phone-2")
    filer = await shl.connect(token)
    await filer.ok("case.open", category="other", summary="x", other_parties=[{"name": "Bo"}])
    await allow_next_code(shl, CY)
    code = await send_code(shl, fake, CY)
    st, err = await verify(shl, CY, code, token, keep=True)
    assert st == 409 and err["error"]["code"] == "conflict"
    (acc,) = await q(shl, "SELECT verified, phone, device_id FROM accounts WHERE id = $1::uuid", filer.account_id)
    assert (acc["verified"], acc["phone"], acc["device_id"]) == (False, None, "device-phone-2")   # nothing changed
    st, _ = await verify(shl, CY, code, keep=True)
    assert st == 401                                                       # keep needs the account's token
    st, plain = await verify(shl, CY, code, token)                         # the same code, without keep
    assert st == 200 and plain["account"]["id"] == owner["account"]["id"]


async def test_claim_needs_a_verified_phone(hl):
    device: Client = await hl.resident()
    err = await device.error("cases.claim", "forbidden")
    assert "code" in err["message"]
    med = await hl.user("mediator")
    await med.error("cases.claim", "forbidden")
