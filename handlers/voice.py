"""An offer's phone call answered (contract §7, issue 12): `POST /voice/offer?offer=<id>`, the action of the
call's `<Gather numDigits="1">` (the TwiML: sms/texts.offer_twiml, the call: sms/offers.py).

Signed by Twilio exactly like /sms/inbound (handlers/sms.signed_form: over server.public_url + path and
query, and the form): unsigned or wrongly signed is 403 and changes nothing. `Digits` 1 accepts and 2
declines, through the same service calls as the app (`via: "voice"`), so races end with one responder; any
other key, or none, leaves the offer to its deadline. Each CallSid is handled once (sms/calls.py): a replay
gets the first answer.
"""
from __future__ import annotations

import asyncio
import time
import uuid

from aiohttp import web

from dispatch.service import DispatchService
from handlers.apidoc import TWILIO, Param, route_doc
from handlers.context import DISPATCH
from handlers.sms import signed_form
from infra.db import Conn
from infra.errors import BadRequest, Conflict, Forbidden, NotFound
from infra.identity import Account
from sms import calls
from sms.contacts import contact
from sms.texts import voice_reply

REPLAY_WAIT_S = 10.0


def _twiml(xml: str) -> web.Response:
    return web.Response(text=xml, content_type="text/xml", charset="utf-8")


class Call:
    """One answer being handled: its CallSid recorded in the transaction of its effect."""

    def __init__(self, sid: str, offer_id: str, digits: str) -> None:
        self.sid, self.offer_id, self.digits = sid, offer_id, digits

    async def record(self, conn: Conn) -> None:
        await calls.record(conn, self.sid, self.offer_id, self.digits)


@route_doc(auth=TWILIO, form=True, answers="text/xml", query=(Param("offer", "the offer the call is about", True),))
async def offer_answer(request: web.Request) -> web.Response:
    form = await signed_form(request)
    offer_id = request.query.get("offer", "")
    sid, digits = form.get("CallSid"), form.get("Digits", "")
    try:
        uuid.UUID(offer_id)
    except ValueError:
        raise BadRequest("offer must be an offer id") from None
    if not isinstance(sid, str) or not sid or not isinstance(digits, str):
        raise BadRequest("CallSid is required")
    return _twiml(await answer(request.app[DISPATCH], sid[:64], offer_id, digits.strip()[:8]))


async def answer(dispatch: DispatchService, sid: str, offer_id: str, digits: str) -> str:
    async with dispatch.pool.acquire() as conn:
        seen, done, reply = await calls.previous_reply(conn, sid)
        if seen:
            return reply if done and reply else await _first_reply(dispatch, sid)
    offer = await dispatch.reads.offer(offer_id)
    lang = "en"
    who = None
    if offer is not None:
        async with dispatch.pool.acquire() as conn:
            acct = await conn.fetchrow("SELECT id, role, name, phone, disabled FROM accounts WHERE id = $1",
                                       offer.responder_id)
            if acct is not None and acct["phone"]:
                lang, _ = await contact(conn, acct["phone"])
        if acct is not None and not acct["disabled"] and acct["role"] == "responder":
            who = Account(str(acct["id"]), "responder", str(acct["name"] or ""))
    call = Call(sid, offer_id, digits)
    try:
        action, key = await _act(dispatch, who, call)
    except calls.Duplicate:
        return await _first_reply(dispatch, sid)
    reply = voice_reply(lang, key)
    async with dispatch.pool.acquire() as conn:
        await calls.finish(conn, sid, action, reply)
    return reply


async def _act(dispatch: DispatchService, who: Account | None, call: Call) -> tuple[str, str]:
    if who is None:
        await _record(dispatch, call)
        return "ended", "voice_ended"
    try:
        if call.digits == "1":
            await dispatch.accept(who, call.offer_id, via="voice", also=call.record)
            return "accepted", "voice_accepted"
        if call.digits == "2":
            await dispatch.decline(who, call.offer_id, via="voice", also=call.record)
            return "declined", "voice_declined"
    except (Conflict, Forbidden, NotFound):
        await _record(dispatch, call)
        return "ended", "voice_ended"
    await _record(dispatch, call)      # no key, or another one: the offer waits for its deadline
    return "no_answer", "voice_unknown" if call.digits else "voice_none"


async def _record(dispatch: DispatchService, call: Call) -> None:
    async with dispatch.pool.acquire() as conn, conn.transaction():
        await call.record(conn)


async def _first_reply(dispatch: DispatchService, sid: str) -> str:
    """The answer of a concurrent delivery of this CallSid, once it has finished (any node)."""
    deadline = time.monotonic() + REPLAY_WAIT_S
    while True:
        async with dispatch.pool.acquire() as conn:
            _, done, reply = await calls.previous_reply(conn, sid)
        if (done and reply) or time.monotonic() > deadline:
            return reply or voice_reply("en", "voice_unknown")
        await asyncio.sleep(0.05)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/voice/offer", offer_answer)
