"""Where an inbound text goes: to dispatch (HELP, SAFE, a note), to mediation (JOIN, SIGN, a party's
chat), or to the phone's own state (STOP, START). An edge: it calls both domains and the sms package.

Which word a text is, and which wins, is decided by sms.grammar alone; this module only carries
it out, in this order: opt-outs and opt-ins; a responder's words (handlers/sms_responder.py: a
responder's `1`/`2` answer their offer, never a satisfaction question); HELP (a second one adds to the
open request); SAFE; a bare 1-5 as the answer to the sender's pending satisfaction question (issue 15:
asked by SMS when a case of theirs closed, within mediation.feedback_sms_days, unanswered); any other
text to the sender's open incident as a note; else to mediation; a bare 1-5 again after the answer is
told the first stands; else the usage text.
Each MessageSid is recorded in the transaction of its effect (the `also` of a dispatch call), so a
replay is answered with the first answer and never acted on twice.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from dispatch.service import DispatchService
from handlers import sms_responder
from infra.db import Conn
from infra.errors import Conflict, HelplineError, RateLimited
from infra.formats import mask_phone
from infra.identity import Account
from mediation.rules import MAX_BODY as MAX_CHAT_BODY
from mediation.service import MediationService
from sms import inbound as store
from sms.contacts import contact, remember_lang, set_opted_out
from sms.grammar import RESPONDER_KINDS, Kind, Parsed, guess_category, parse
from sms.texts import MAX_BODY, case_reply, detect_lang, render

log = logging.getLogger(__name__)

REPLAY_WAIT_S = 10.0     # a concurrent delivery of one MessageSid waits this long for the first's reply


@dataclass
class Inbound:
    sid: str
    phone: str
    body: str
    recorded: bool = False

    async def record(self, conn: Conn) -> None:
        """InTxn: the MessageSid, in the transaction of its effect (store.Duplicate rolls it back)."""
        await store.record(conn, self.sid, self.phone, self.body)
        self.recorded = True


# (phone, body, parsed) → the reply if the text was for mediation, else None
MediationReply = Callable[[str, str, Parsed], Awaitable["str | None"]]


class FeedbackAnswers(Protocol):
    """Mediation's satisfaction questions asked by SMS (mediation/tracking.py)."""

    async def feedback_by_sms(self, phone: str, score: int,
                              also: Callable[[Conn], Awaitable[None]] | None = None) -> str | None: ...
    async def answered_by_sms(self, phone: str) -> tuple[str, int] | None: ...


class InboundRouter:
    def __init__(self, pool: asyncpg.Pool, dispatch: DispatchService, mediation: MediationReply | None,
                 emergency: str, feedback: FeedbackAnswers | None = None) -> None:
        self.pool, self.dispatch, self.emergency = pool, dispatch, emergency
        self.mediation = mediation      # None without the mediation feature
        self.feedback = feedback        # satisfaction answers by SMS (None without them)

    async def handle(self, phone: str, body: str, sid: str) -> str | None:
        """Act on one inbound text; the reply text (None: reply nothing)."""
        async with self.pool.acquire() as conn:
            seen, done, reply = await store.previous_reply(conn, sid)
            if seen:
                return reply if done else await self._first_reply(sid)
            stored_lang, opted_out = await contact(conn, phone)
            sender = await store.account_for_phone(conn, phone, create=False)
        # the sender's account decides which words are theirs: a responder's number reads `1`, `ON`... as
        # responder words (docs/sms.md, "Whose words"); any other number reads the resident grammar
        p = parse(body, str(sender["role"]) if sender is not None and not sender["disabled"] else None)
        lang = detect_lang(body, stored_lang)
        ib = Inbound(sid, phone, body[:MAX_BODY])
        try:
            action, reply = await self._act(ib, p, lang, opted_out)
        except store.Duplicate:
            return await self._first_reply(sid)
        except Exception:
            log.exception("inbound SMS %s from %s", sid, mask_phone(phone))
            ib.recorded = False
            action, reply = "error", render(lang, "error", emergency=self.emergency)
        if action == "stop" or (opted_out and action != "start"):
            reply = None      # Twilio would refuse a reply to an opted-out number
        async with self.pool.acquire() as conn, conn.transaction():
            await store.finish(conn, sid, ib.phone, ib.body, action, reply, ib.recorded)
            if p.kind not in (Kind.STOP, Kind.START, Kind.YES):
                await remember_lang(conn, phone, lang)
        return reply

    async def _first_reply(self, sid: str) -> str | None:
        """The reply of a concurrent delivery of this MessageSid, once it has finished (any node)."""
        deadline = time.monotonic() + REPLAY_WAIT_S
        while True:
            async with self.pool.acquire() as conn:
                _, done, reply = await store.previous_reply(conn, sid)
            if done or time.monotonic() > deadline:
                return reply
            await asyncio.sleep(0.05)

    async def _claim(self, ib: Inbound, opt_out: bool | None = None, lang: str | None = None) -> None:
        """Record the MessageSid now (with an opt-out or opt-in in the same transaction)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await ib.record(conn)
            if opt_out is not None:
                await set_opted_out(conn, ib.phone, opt_out, lang)

    async def _act(self, ib: Inbound, p: Parsed, lang: str, opted_out: bool) -> tuple[str, str | None]:
        if p.kind == Kind.STOP:
            await self._claim(ib, True, lang)
            return "stop", None
        if p.kind == Kind.START or (p.kind == Kind.YES and opted_out):
            await self._claim(ib, False, lang)
            return "start", render(lang, "start_ok")
        async with self.pool.acquire() as conn:
            acct = await store.account_for_phone(conn, ib.phone, create=p.kind == Kind.HELP)
            if acct is not None and acct["disabled"]:
                return "ignored", None
            who = Account(str(acct["id"]), str(acct["role"]), str(acct["name"])) if acct is not None else None
        if who is not None and who.role != "resident" and p.kind in (Kind.HELP, Kind.SAFE):
            # a staff phone (responder, dispatcher...) never reports as itself: its account would be the
            # reporter, and a spoofed sender could use it; staff use their app or call dispatch
            await self._claim(ib)
            return "staff", render(lang, "staff_help", emergency=self.emergency)
        if who is not None and p.kind in RESPONDER_KINDS:
            return await sms_responder.answer(self.dispatch, who, p.kind, lang, ib)
        open_inc = await self.dispatch.reads.latest_open(who.id) if who else None

        if p.kind == Kind.HELP and who is not None:
            if open_inc is not None:   # a second HELP adds to the open request instead of opening another
                if p.text:
                    await self.dispatch.add_note(who.id, open_inc[0], p.text, via="sms", also=ib.record)
                return "help_open", render(lang, "help_open", ref=open_inc[1])
            try:   # request_help counts the account's help limit, shared with the app's help.request
                inc, _ = await self.dispatch.request_help(
                    who, request_id=ib.sid[:64], category=guess_category(p.text), lat=None, lon=None,
                    accuracy_m=None, note=p.text[:1000], channel="sms", also=ib.record)
            except RateLimited:
                return "limited", render(lang, "limited", emergency=self.emergency)
            return "help", render(lang, "help_ok", ref=inc["ref_no"])
        if p.kind == Kind.SAFE:
            if who is None or open_inc is None:
                return "safe_none", render(lang, "safe_none")
            async with self.pool.acquire() as conn:
                by_sms = await store.reported_by_sms(conn, open_inc[0])
            if not by_sms:
                # a sender can be spoofed: a text cancels only what a text opened; the app's own request
                # is only noted for the dispatcher, who confirms with the resident
                try:
                    await self.dispatch.add_note(None, open_inc[0], "SAFE received by SMS from the reporter's"
                                                 " phone (not confirmed: the request was made in the app)",
                                                 via="sms", also=ib.record)
                except Conflict:
                    return "safe_none", render(lang, "safe_none")
                return "safe_noted", render(lang, "safe_app", ref=open_inc[1])
            try:
                inc = await self.dispatch.cancel(who, open_inc[0], via="sms", also=ib.record)
            except Conflict:
                return "safe_none", render(lang, "safe_none")
            return "safe", render(lang, "safe_ok", ref=inc["ref_no"])
        if p.kind == Kind.SCORE and who is not None and self.feedback is not None:
            try:       # the MessageSid is recorded in the answer's transaction
                ref = await self.feedback.feedback_by_sms(ib.phone, int(p.code), also=ib.record)
            except Conflict:
                ref = None      # answered meanwhile (another delivery): told below that the first stands
            if ref is not None:
                return "feedback", case_reply("feedback_thanks", ref=ref, score=p.code)
        if who is not None and open_inc is not None and ib.body.strip():
            try:
                await self.dispatch.add_note(who.id, open_inc[0], ib.body.strip()[:1000], via="sms", also=ib.record)
                return "note", render(lang, "note_ok", ref=open_inc[1])
            except Conflict:
                pass      # it closed meanwhile
        if self.mediation is not None:
            await self._claim(ib)      # before the effect: mediation's writes are not in our transaction
            answer = await self.mediation(ib.phone, ib.body, p)
            if answer is not None:
                return "mediation", answer
            if p.kind == Kind.SCORE and self.feedback is not None:
                again = await self.feedback.answered_by_sms(ib.phone)
                if again is not None:
                    return "feedback_again", case_reply("feedback_already", ref=again[0], score=again[1])
        return "usage", render(lang, "usage")


def for_mediation(svc: MediationService) -> MediationReply:
    async def reply(phone: str, body: str, p: Parsed) -> str | None:
        return await mediation_reply(svc, phone, body, p)
    return reply


async def mediation_reply(svc: MediationService, phone: str, body: str, p: Parsed | None = None) -> str | None:
    """A text for mediation: JOIN a case, SIGN its agreement, or a message into the joint room of the
    sender's most recently active open case joined by SMS. None: the phone has nothing in mediation."""
    p = p or parse(body)
    text = body.strip()
    if p.kind == Kind.JOIN:
        try:
            got = await svc.join_by_sms(phone, p.code)
        except HelplineError as e:
            return case_reply("join_failed", why=e.message)
        if got is not None:
            return case_reply("joined", ref=got[0]["ref_no"])
    cases = await svc.sms_cases(phone)
    if not cases:
        return None
    if p.kind == Kind.SIGN:
        try:
            hit = await svc.agreement_for_code(phone, cases, p.code)
        except HelplineError as e:
            return case_reply("sign_failed", why=e.message)
        if hit is None:
            return case_reply("sign_unknown")
        case_id, agreement_id, _current = hit
        actor = next(a for c, a in cases if c == case_id)
        try:
            view = await svc.sign(actor, case_id, agreement_id, via="sms")
        except HelplineError as e:
            return case_reply("sign_failed", why=e.message)
        return case_reply("signed_settled" if view["status"] == "settled" else "signed_waiting", ref=view["ref_no"])
    case_id, actor = cases[0]
    try:
        msg = await svc.send(actor, case_id, "joint", "sms-" + uuid.uuid4().hex, text[:MAX_CHAT_BODY], via="sms")
    except HelplineError as e:
        return case_reply("send_failed", why=e.message)
    return case_reply("delivered", seq=msg["seq"])
