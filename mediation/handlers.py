"""WebSocket commands of mediation (contract §3), plus the extensions of docs/mediation.md.

Edges only: decode (the Structs in mediation/messages.py), pick the service,
call it. Who may do what to which case is decided in mediation/rules.py; the
role sets here only turn away accounts that can never take part (responders,
dispatchers, admins).
"""
from __future__ import annotations

from typing import Any

from handlers.messages import Empty
from handlers.registry import command
from mediation import messages as m
from mediation.live import Feeds
from infra.identity import Account
from mediation.rules import OtherParty, parse_room
from mediation.service import MediationService
from infra.errors import Unavailable

RESIDENT, MEDIATOR, AGENCY = "resident", "mediator", "agency"
PARTICIPANTS = {RESIDENT, MEDIATOR, AGENCY}


def actor(ctx: Any) -> Account:
    return Account(ctx.id, ctx.role, ctx.account.get("name") or "")


def service(ctx: Any) -> MediationService:
    svc = ctx.services.extras.get("mediation")
    if svc is None:
        raise Unavailable("mediation is not running on this node")
    return svc


def feeds(ctx: Any) -> Feeds:
    return service(ctx).feeds


@command("case.open", m.CaseOpen, {RESIDENT})
async def case_open(ctx: Any, msg: m.CaseOpen) -> dict[str, Any]:
    others = [OtherParty(o.name, o.phone) for o in msg.other_parties]
    return {"case": await service(ctx).open_case(actor(ctx), msg.category, msg.summary, others, msg.name,
                                                 msg.request_id)}


@command("case.join", m.CaseJoin, {RESIDENT})
async def case_join(ctx: Any, msg: m.CaseJoin) -> dict[str, Any]:
    return {"case": await service(ctx).join(actor(ctx), msg.join_code)}


@command("cases.watch", Empty, {MEDIATOR})
async def cases_watch(ctx: Any, msg: Empty) -> dict[str, Any]:
    # listen first, then read: a change in between arrives as a push (keep the higher `version`)
    await feeds(ctx).watch(ctx)
    return {"cases": await service(ctx).watch_list(actor(ctx))}


@command("cases.mine", Empty, PARTICIPANTS)
async def cases_mine(ctx: Any, msg: Empty) -> dict[str, Any]:
    """Extension: the cases I take part in, newest first (open and closed)."""
    return {"cases": await service(ctx).my_cases(actor(ctx))}


@command("case.take", m.CaseRef, {MEDIATOR})
async def case_take(ctx: Any, msg: m.CaseRef) -> dict[str, Any]:
    return {"case": await service(ctx).take(actor(ctx), msg.case_id.lower())}


@command("case.invite", m.CaseInvite, {MEDIATOR})
async def case_invite(ctx: Any, msg: m.CaseInvite) -> dict[str, Any]:
    return {"case": await service(ctx).invite(actor(ctx), msg.case_id.lower(), msg.account_id.lower())}


@command("chat.subscribe", m.ChatSubscribe, PARTICIPANTS)
async def chat_subscribe(ctx: Any, msg: m.ChatSubscribe) -> dict[str, Any]:
    case_id = msg.case_id.lower()
    room = await service(ctx).authorize_room(actor(ctx), case_id, msg.room)
    return await feeds(ctx).subscribe(ctx, case_id, room.name, msg.after_seq)


@command("chat.unsubscribe", m.ChatUnsubscribe, PARTICIPANTS)
async def chat_unsubscribe(ctx: Any, msg: m.ChatUnsubscribe) -> dict[str, Any]:
    """Extension: stop the live messages of a room."""
    room = parse_room(msg.room).name
    return {"unsubscribed": await feeds(ctx).unsubscribe(ctx, msg.case_id.lower(), room)}


@command("chat.send", m.ChatSend, PARTICIPANTS)
async def chat_send(ctx: Any, msg: m.ChatSend) -> dict[str, Any]:
    return {"message": await service(ctx).send(actor(ctx), msg.case_id.lower(), msg.room, msg.client_msg_id,
                                               msg.body)}


@command("agreement.propose", m.Propose, {MEDIATOR})
async def agreement_propose(ctx: Any, msg: m.Propose) -> dict[str, Any]:
    return {"case": await service(ctx).propose(actor(ctx), msg.case_id.lower(), msg.text)}


@command("agreement.sign", m.Sign, {RESIDENT})
async def agreement_sign(ctx: Any, msg: m.Sign) -> dict[str, Any]:
    agreement_id = msg.agreement_id.lower() if msg.agreement_id else None
    return {"case": await service(ctx).sign(actor(ctx), msg.case_id.lower(), agreement_id)}


@command("case.close", m.CaseClose, {MEDIATOR})
async def case_close(ctx: Any, msg: m.CaseClose) -> dict[str, Any]:
    return {"case": await service(ctx).close_case(actor(ctx), msg.case_id.lower(), msg.outcome, msg.note)}


@command("case.withdraw", m.CaseRef, {RESIDENT})
async def case_withdraw(ctx: Any, msg: m.CaseRef) -> dict[str, Any]:
    """Extension: the filer withdraws the case before it is settled."""
    return {"case": await service(ctx).withdraw(actor(ctx), msg.case_id.lower())}
