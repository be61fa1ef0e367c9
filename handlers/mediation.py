"""WebSocket commands of mediation (contract §3), plus the extensions of docs/mediation.md.

Edges only: decode (the Structs in handlers/mediation_messages.py), pick the service,
call it. Who may do what to which case is decided in mediation/rules.py; the role sets
in handlers/commands.py only turn away accounts that can never take part (responders,
dispatchers, admins).
"""
from __future__ import annotations

from typing import Any

from handlers import mediation_messages as m
from handlers.connection import Connection
from handlers.context import FEEDS, MEDIATION
from handlers.messages import Empty
from infra.errors import BadRequest, Forbidden
from mediation.rules import OPEN, OtherParty, parse_room

PARTICIPANTS = frozenset({"resident", "mediator", "agency"})
WITH_CASES = PARTICIPANTS | {"clerk"}     # who has cases of their own (a clerk: those opened, until taken)


async def welcome_state(ctx: Connection) -> dict[str, Any]:
    """welcome carries the caller's open cases, so a reconnecting client picks up where it was."""
    if ctx.role not in WITH_CASES:
        return {}
    return {"open_cases": [c for c in await ctx.app[MEDIATION].my_cases(ctx.who) if c["status"] in OPEN]}


async def case_open(ctx: Connection, msg: m.CaseOpen) -> dict[str, Any]:
    """A resident files their own case (`other_parties`); staff open one for visitors (`parties`, issue 13)."""
    if msg.parties is not None or ctx.role != "resident":      # a resident is refused by the rules
        if ctx.role != "resident" and msg.other_parties is not None:
            raise Forbidden("only residents file their own cases with `other_parties`;"
                            " open a case for visitors with `parties`")
        if msg.name is not None:
            raise BadRequest("a case for visitors names every party in `parties`, not `name`")
        parties = [OtherParty(p.name, p.phone) for p in msg.parties or []]
        return await ctx.app[MEDIATION].open_for_visitors(ctx.who, msg.category, msg.summary, parties,
                                                          msg.request_id)
    others = [OtherParty(o.name, o.phone) for o in msg.other_parties or []]
    return {"case": await ctx.app[MEDIATION].open_case(ctx.who, msg.category, msg.summary, others, msg.name,
                                                       msg.request_id, remote=ctx.remote)}


async def case_join(ctx: Connection, msg: m.CaseJoin) -> dict[str, Any]:
    return {"case": await ctx.app[MEDIATION].join(ctx.who, msg.join_code, remote=ctx.remote)}


async def case_add_party(ctx: Connection, msg: m.CaseAddParty) -> dict[str, Any]:
    """Extension: one more party after filing, with a join code of its own (shown to the one who added it)."""
    return await ctx.app[MEDIATION].add_party(ctx.who, msg.case_id.lower(), msg.name, msg.phone, remote=ctx.remote)


async def cases_claim(ctx: Connection, msg: Empty) -> dict[str, Any]:
    """Extension: a verified resident takes the parties named with their phone that nobody has joined."""
    return await ctx.app[MEDIATION].claim_by_phone(ctx.who)


async def cases_watch(ctx: Connection, msg: Empty) -> dict[str, Any]:
    # listen first, then read: a change in between arrives as a push (keep the higher `version`)
    await ctx.app[FEEDS].watch(ctx)
    return {"cases": await ctx.app[MEDIATION].watch_list(ctx.who)}


async def cases_mine(ctx: Connection, msg: Empty) -> dict[str, Any]:
    """Extension: the cases I take part in, newest first (open and closed)."""
    return {"cases": await ctx.app[MEDIATION].my_cases(ctx.who)}


async def case_take(ctx: Connection, msg: m.CaseRef) -> dict[str, Any]:
    return {"case": await ctx.app[MEDIATION].take(ctx.who, msg.case_id.lower())}


async def case_invite(ctx: Connection, msg: m.CaseInvite) -> dict[str, Any]:
    return {"case": await ctx.app[MEDIATION].invite(ctx.who, msg.case_id.lower(), msg.account_id.lower())}


async def chat_subscribe(ctx: Connection, msg: m.ChatSubscribe) -> dict[str, Any]:
    case_id = msg.case_id.lower()
    room = await ctx.app[MEDIATION].authorize_room(ctx.who, case_id, msg.room)
    return await ctx.app[FEEDS].subscribe(ctx, case_id, room.name, msg.after_seq)


async def chat_unsubscribe(ctx: Connection, msg: m.ChatUnsubscribe) -> dict[str, Any]:
    """Extension: stop the live messages of a room."""
    room = parse_room(msg.room).name
    return {"unsubscribed": await ctx.app[FEEDS].unsubscribe(ctx, msg.case_id.lower(), room)}


async def chat_send(ctx: Connection, msg: m.ChatSend) -> dict[str, Any]:
    return {"message": await ctx.app[MEDIATION].send(ctx.who, msg.case_id.lower(), msg.room, msg.client_msg_id,
                                               msg.body)}


async def agreement_propose(ctx: Connection, msg: m.Propose) -> dict[str, Any]:
    return {"case": await ctx.app[MEDIATION].propose(ctx.who, msg.case_id.lower(), msg.text)}


async def agreement_sign(ctx: Connection, msg: m.Sign) -> dict[str, Any]:
    agreement_id = msg.agreement_id.lower() if msg.agreement_id else None
    return {"case": await ctx.app[MEDIATION].sign(ctx.who, msg.case_id.lower(), agreement_id)}


async def case_close(ctx: Connection, msg: m.CaseClose) -> dict[str, Any]:
    return {"case": await ctx.app[MEDIATION].close_case(ctx.who, msg.case_id.lower(), msg.outcome, msg.note)}


async def case_withdraw(ctx: Connection, msg: m.CaseRef) -> dict[str, Any]:
    """Extension: the filer withdraws the case before it is settled."""
    return {"case": await ctx.app[MEDIATION].withdraw(ctx.who, msg.case_id.lower())}


async def case_events(ctx: Connection, msg: m.CaseRef) -> dict[str, Any]:
    """Issue 15: the case's event log (its mediator and admins)."""
    case_id = msg.case_id.lower()
    return {"case_id": case_id, "events": await ctx.app[MEDIATION].case_events(ctx.who, case_id)}


async def case_extend(ctx: Connection, msg: m.CaseExtend) -> dict[str, Any]:
    """Issue 15: the case's mediator extends its deadline, once, with a reason."""
    return {"case": await ctx.app[MEDIATION].extend(ctx.who, msg.case_id.lower(), msg.days, msg.reason)}


async def case_feedback(ctx: Connection, msg: m.CaseFeedback) -> dict[str, Any]:
    """Issue 15: a party's one satisfaction answer after the case closed (the party's own view of the case)."""
    return {"case": await ctx.app[MEDIATION].feedback(ctx.who, msg.case_id.lower(), msg.score, msg.comment)}
