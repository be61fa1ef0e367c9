"""Mediation by SMS: what texts say, and what an inbound text from a party does.

The SMS channel (handlers/sms.py, another module) calls
`MediationService.handle_sms(phone, body)` for inbound texts that are not
incident keywords, and puts its gateway in `services.extras["sms"]`
(`async send(to_e164, body) -> None`, never raises). Inbound, in this order:

    JOIN code / 加入 code / just the code   join the case of that join code as an SMS party
    SIGN 123456 / 签字 123456                sign the proposal that code was sent with
    anything else                            a message into the joint room of the sender's
                                             most recently active open case joined by SMS
A phone that is no SMS party of an open case, and texts no join code: None.
"""
from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from mediation.rules import MAX_BODY
from infra.errors import HelplineError

if TYPE_CHECKING:
    from mediation.service import MediationService

JOIN = re.compile(r"^(?:JOIN|加入)?\s*[:：]?\s*([A-Za-z0-9][A-Za-z0-9 -]{6,14}[A-Za-z0-9])$", re.IGNORECASE)
SIGN = re.compile(r"^(?:SIGN|签字|签名|签署)\s*[:：]?\s*(\d{6})$", re.IGNORECASE)
MAX_AGREEMENT_SMS = 1200

STATUS_WORDS = {"settled": "settled 已和解", "failed": "closed without agreement 调解未成",
                "referred": "referred on 已转介", "withdrawn": "withdrawn 已撤回"}


def sms_msg_id() -> str:
    return "sms-" + uuid.uuid4().hex


def invitation(ref: str, category: str, filer_name: str, code: str, public_url: str) -> str:
    return (f"[{ref}] {filer_name} 申请了一宗{category}调解并列您为当事人。回复 {code} 加入。"
            f" {filer_name} asks you to take part in mediation ({category}). Reply {code} to join"
            + (f", or enter it at {public_url}/mediate" if public_url else "") + ".")


def joined(ref: str) -> str:
    return (f"[{ref}] 您已加入调解。直接回复即发言给所有参与方。 You have joined. "
            "Your replies go to everyone in the case; theirs come to you here.")


def taken(ref: str, mediator_name: str) -> str:
    return f"[{ref}] 调解员 {mediator_name} 已受理。 Mediator {mediator_name} has taken the case."


def proposal(ref: str, text: str, code: str, public_url: str) -> str:
    shown = text if len(text) <= MAX_AGREEMENT_SMS else text[:MAX_AGREEMENT_SMS] + "…" + (
        f" (全文 full text: {public_url}/mediate)" if public_url else "")
    return (f"[{ref}] 调解协议 Proposed agreement:\n{shown}\n"
            f"同意请回复 签字 {code} / Reply SIGN {code} to sign.")


def settled(ref: str, sha256: str) -> str:
    return f"[{ref}] 各方均已签字，调解成功。 All parties signed: settled. SHA-256 {sha256[:16]}…"


def closed(ref: str, status: str) -> str:
    return f"[{ref}] 案件{STATUS_WORDS.get(status, status)}. The case is {status}."


def chat(ref: str, msg: dict[str, Any]) -> str:
    return f"[{ref}] {msg['sender']['name']}: {msg['body']}"


async def handle(svc: MediationService, phone: str, body: str) -> str | None:
    text = body.strip()
    m = JOIN.match(text)
    if m:
        try:
            got = await svc.join_by_sms(phone, m.group(1))
        except HelplineError as e:
            return f"未能加入 Could not join: {e.message}"
        if got is not None:
            view, _ = got
            return joined(view["ref_no"])
    cases = await svc.sms_cases(phone)
    if not cases:
        return None
    s = SIGN.match(text)
    if s:
        hit = await svc.agreement_for_code([c for c, _ in cases], s.group(1))
        if hit is None:
            return ("签字码不对 That sign code matches no agreement of yours."
                    " Reply SIGN and the 6 digits we sent.")
        case_id, agreement_id, _current = hit
        actor = next(a for c, a in cases if c == case_id)
        try:
            view = await svc.sign(actor, case_id, agreement_id, via="sms")
        except HelplineError as e:
            return f"未能签字 Not signed: {e.message}"
        done = "已和解 Settled." if view["status"] == "settled" else "等待其他当事人 Waiting for the others."
        return f"[{view['ref_no']}] 已签字 Signed. {done}"
    case_id, actor = cases[0]
    try:
        msg = await svc.send(actor, case_id, "joint", sms_msg_id(), text[:MAX_BODY], via="sms")
    except HelplineError as e:
        return f"未能发送 Not delivered: {e.message}"
    return f"已送达 Delivered (#{msg['seq']})."

