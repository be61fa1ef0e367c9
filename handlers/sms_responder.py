"""A responder's words by SMS (contract §7, issue 12; the words: sms.grammar, rows marked r).

An edge like handlers/sms_routing.py, which hands a text here when the sender's number belongs to a
responder account and the text is one of their words. Each answer goes through exactly the service calls
the app's commands use (offer.accept, offer.decline, incident.progress, duty.start, duty.end) with
`via="sms"`, so the same rules settle races with the app, the deadline and a dispatcher's assign: one
responder ends up assigned, and a late `1` is told "this offer has ended" and changes nothing.

The MessageSid is recorded in the transaction of the effect where the service takes one (`also`), else
(no effect, a refused change, duty) on its own before the reply, so a replayed webhook, even one arriving
at the same moment, is answered with the first answer and not acted on twice.
"""
from __future__ import annotations

from typing import Protocol

from dispatch import lifecycle as lc
from dispatch.roster import ResponderStatus
from dispatch.service import DispatchService
from infra.db import Conn
from infra.errors import Conflict, Forbidden, NotFound
from infra.identity import Account
from sms.grammar import Kind
from sms.texts import STEP_WORDS, render

Answer = tuple[str, str]     # (what the text did, the reply)


class Recorder(Protocol):
    """What sms_routing.Inbound offers: `record(conn)`, run inside the effect, and `recorded`."""

    recorded: bool

    async def record(self, conn: Conn) -> None: ...


async def answer(dispatch: DispatchService, who: Account, kind: str, lang: str, ib: Recorder) -> Answer:
    if kind in (Kind.ACCEPT, Kind.DECLINE):
        return await _offer(dispatch, who, kind, lang, ib)
    if kind in (Kind.EN_ROUTE, Kind.ON_SCENE, Kind.RESOLVED):
        return await _progress(dispatch, who, kind, lang, ib)
    await _record(dispatch, ib)     # before the effect: duty's changes take no `also` (and are idempotent)
    return await _duty(dispatch, who, kind, lang)


async def _offer(dispatch: DispatchService, who: Account, kind: str, lang: str, ib: Recorder) -> Answer:
    pending, latest, ref = await dispatch.reads.offer_for_phone(who.id)
    if latest is None or pending is None:
        await _record(dispatch, ib)
        return ("no_offer", render(lang, "no_offer")) if latest is None else \
            ("offer_ended", render(lang, "offer_ended", ref=ref))
    try:
        if kind == Kind.ACCEPT:
            inc = await dispatch.accept(who, pending.id, via="sms", also=ib.record)
            return "accepted", render(lang, "offer_accepted", ref=inc["ref_no"])
        await dispatch.decline(who, pending.id, via="sms", also=ib.record)
        return "declined", render(lang, "offer_declined", ref=ref)
    except (Conflict, Forbidden, NotFound):
        await _record(dispatch, ib)
        return "offer_ended", render(lang, "offer_ended", ref=ref)


async def _progress(dispatch: DispatchService, who: Account, kind: str, lang: str, ib: Recorder) -> Answer:
    working = await dispatch.reads.working(who.id)
    if not working:
        await _record(dispatch, ib)
        return "progress_none", render(lang, "progress_none")
    inc = working[0]         # a responder holds one incident at a time
    try:
        done = await dispatch.progress(who, inc["id"], str(kind), None, via="sms", also=ib.record)
    except Conflict:
        await _record(dispatch, ib)
        nxt = lc.NEXT_STEP.get(lc.Status(inc["status"]))
        if nxt is None:
            return "progress_none", render(lang, "progress_none")
        word = STEP_WORDS.get(lang, STEP_WORDS["en"])[str(nxt)]
        return "progress_skip", render(lang, "progress_skip", ref=inc["ref_no"], word=word)
    return str(kind), render(lang, f"progress_{kind}", ref=done["ref_no"])


async def _record(dispatch: DispatchService, ib: Recorder) -> None:
    """The change was refused (and rolled back with its record of the MessageSid): record it now. A
    concurrent delivery of the same text that got there first makes this raise Duplicate, and the router
    answers with that one's reply, whichever finished first."""
    ib.recorded = False
    async with dispatch.pool.acquire() as conn, conn.transaction():
        await ib.record(conn)


async def _duty(dispatch: DispatchService, who: Account, kind: str, lang: str) -> Answer:
    if kind == Kind.DUTY_ON:
        resp = await dispatch.duty.resume(who)
        if resp is None:
            return "duty_on_nopos", render(lang, "duty_on_nopos")
        if resp["lat"] is None:      # a grid worker without a position: matched by membership (dispatch/tiers.py)
            return "duty_on_grid", render(lang, "duty_on_grid")
        return "duty_on", render(lang, "duty_on")
    state = await dispatch.reads.welcome_state(who)
    status = (state.get("responder") or {}).get("status", ResponderStatus.OFF_DUTY)
    if status == ResponderStatus.OFF_DUTY:
        return "duty_off_none", render(lang, "duty_off_none")
    try:
        await dispatch.duty.end(who)
    except Conflict:
        return "duty_off_busy", render(lang, "duty_off_busy")
    return "duty_off", render(lang, "duty_off")
