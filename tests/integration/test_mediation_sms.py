"""Mediation's SMS side: join codes by SMS, SMS parties in the joint room, signing by sign code.

Mediation's texts are read from the SMS outbox (what committed with each change); inbound
texts are fed to the SMS edge's mediation routing (handlers.sms_routing.mediation_reply)
directly. PostgreSQL and Redis are real.
"""
from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

from handlers.context import MEDIATION, POOL
from handlers.sms_routing import mediation_reply
from mediation.service import MediationService

BO = "+8613912345678"


class RecordingSms:
    """The texts queued in sms_outbox (committed), each taken once by `wait`."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.taken: set[int] = set()

    async def sent(self) -> list[tuple[str, str]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT id, to_phone, body FROM sms_outbox ORDER BY id")
        return [(r["to_phone"], r["body"]) for r in rows if r["id"] not in self.taken]

    async def wait(self, to: str, where: Callable[[str], bool] = lambda b: True, timeout: float = 5) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            async with self.pool.acquire() as conn:
                rows = await conn.fetch("SELECT id, to_phone, body FROM sms_outbox ORDER BY id")
            for r in rows:
                if r["id"] not in self.taken and r["to_phone"] == to and where(r["body"]):
                    self.taken.add(r["id"])
                    return str(r["body"])
            await asyncio.sleep(0.02)
        raise AssertionError(f"no SMS to {to} matching; sent: {await self.sent()}")


async def answer(svc: MediationService, phone: str, body: str) -> str:
    """mediation_reply to a phone that is in mediation: there is an answer."""
    reply = await mediation_reply(svc, phone, body)
    assert reply is not None, f"no answer to {body!r}"
    return reply


def sign_code(text: str) -> str:
    m = re.search(r"SIGN (\d{6})", text)
    assert m is not None, f"no sign code in {text!r}"
    return m.group(1)


async def test_a_party_by_sms_from_join_to_signature(hl):
    rec = RecordingSms(hl.app[POOL])
    svc = hl.app[MEDIATION]

    filer = await hl.user("resident", name="Ann")
    case = (await filer.ok("case.open", category="property", summary="fence", name="Ann Li",
                           other_parties=[{"name": "Bo", "phone": "139 1234 5678"}]))["case"]
    code = case["join_code"]
    invite = await rec.wait(BO)
    assert code in invite and case["ref_no"] in invite and "Ann Li" in invite

    assert await mediation_reply(svc, "+8613700000000", "hello there") is None            # not in mediation
    assert await mediation_reply(svc, "+8613700000000", "ZZZZZZZZ") is None               # not a code
    reply = await mediation_reply(svc, BO, f"join {code.lower()}")
    assert reply and case["ref_no"] in reply
    joined = (await filer.push("case.updated", lambda m: len(m["case"]["parties"]) == 2))["case"]
    bo = joined["parties"][1]
    assert bo["name"] == "Bo" and bo["via"] == "sms" and "phone" not in bo
    assert "Could not join" in await answer(svc, "+8613600000000", code)           # the code is used

    med = await hl.user("mediator", name="Med")
    taken = (await med.ok("case.take", case_id=case["id"]))["case"]
    assert taken["parties"][1]["phone"] == BO                                       # the case's mediator only
    assert "Med" in await rec.wait(BO)

    # joint messages go out by SMS; caucus messages do not; the SMS party's own texts come back into joint
    await filer.ok("chat.subscribe", case_id=case["id"], room="joint")
    await filer.ok("chat.send", case_id=case["id"], room="joint", client_msg_id="1", body="Please move the fence")
    assert (await rec.wait(BO)).endswith("Ann Li: Please move the fence")
    await med.ok("chat.send", case_id=case["id"], room=f"caucus:{bo['id']}", client_msg_id="c", body="private")
    reply = await mediation_reply(svc, BO, "  I will move it next week  ")
    assert reply and "#2" in reply
    pushed = (await filer.push("chat.message", lambda m: m["message"]["via"] == "sms"))["message"]
    assert pushed["body"] == "I will move it next week" and pushed["sender"] == {
        "id": bo["id"], "name": "Bo", "role": "resident"} and pushed["seq"] == 2
    await asyncio.sleep(0.2)
    assert not [b for t, b in await rec.sent() if t == BO and ("private" in b or "next week" in b)]

    # sign by SMS: an outdated proposal's code is refused, the current one settles
    await med.ok("agreement.propose", case_id=case["id"], text="Bo moves the fence by 1 May.")
    first = await rec.wait(BO, lambda b: "SIGN" in b)
    old_code = sign_code(first)
    assert "Bo moves the fence by 1 May." in first
    await med.ok("agreement.propose", case_id=case["id"], text="Bo moves the fence by 1 June.")
    new_code = sign_code(await rec.wait(BO, lambda b: "SIGN" in b))
    refused = await answer(svc, BO, f"SIGN {old_code}")
    assert "Not signed" in refused and "replaced" in refused
    wrong = "SIGN 000000" if new_code != "000000" else "SIGN 000001"
    assert "matches no agreement" in await answer(svc, BO, wrong)
    await filer.ok("agreement.sign", case_id=case["id"])
    reply = await answer(svc, BO, f"签字 {new_code}")
    assert "Settled" in reply
    done = (await filer.push("case.updated", lambda m: m["case"]["status"] == "settled"))["case"]
    assert done["agreement"]["text"] == "Bo moves the fence by 1 June."
    assert [s["via"] for s in done["agreement"]["signatures"]] == ["ws", "sms"]
    assert "settled" in await rec.wait(BO, lambda b: "Agreement reference" in b)
    # the case is over: the phone has nothing more to do with mediation
    assert await mediation_reply(svc, BO, "thanks") is None


async def test_without_a_gateway_codes_go_to_the_filer_only(hl):
    filer = await hl.user("resident")
    case = (await filer.ok("case.open", category="family", summary="inheritance",
                           other_parties=[{"name": "Brother", "phone": "+8613512345678"}]))["case"]
    assert case["invited"][0]["join_code"] == case["join_code"]
    reply = await mediation_reply(hl.app[MEDIATION], "+8613512345678", case["join_code"])
    assert reply and case["ref_no"] in reply                   # joining by SMS still works; replies are TwiML
