"""3+N mediation's edges (issue 15, contract §10): the agency directory, and a dispute incident referred
into mediation.

`incident.refer` is orchestrated here because it changes both domains, which never import each other: ONE
transaction on one connection, in which dispatch locks and checks the incident (dispatch/referral.py),
mediation opens the case (mediation/referral.py) and dispatch closes the incident `referred` with the case
recorded; both domains' events are published only after the commit. A re-sent refer of an incident already
referred answers the same case (the incident row lock serialises two at once).
"""
from __future__ import annotations

from typing import Annotated, Any

import msgspec

from dispatch.notices import Tx
from dispatch.referral import Referral as DispatchReferral
from handlers import mediation_messages as mm
from handlers.connection import Connection
from handlers.context import DISPATCH, MEDIATION, POOL
from handlers.messages import Id, Msg
from infra import agency_types
from infra.accounts import shown_name
from infra.errors import NotFound
from infra.events import Outbox
from infra.identity import Role
from mediation import agency_store, views
from mediation.referral import Referred
from mediation.rules import MAX_OTHER_PARTIES, OtherParty

DIRECTORY_READERS = frozenset({Role.MEDIATOR, Role.DISPATCHER, Role.ADMIN})
REFERRERS = frozenset({Role.DISPATCHER, Role.ADMIN, Role.RESPONDER})   # a responder: their own incident only


class AgenciesList(Msg, kw_only=True):
    """The contract's `type` filter cannot share a frame with the frame's own `type` (the command's name):
    it is `agency_type` (docs/protocol.md)."""
    agency_type: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    q: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    case_id: Id | None = None


class IncidentRefer(Msg, kw_only=True):
    incident_id: Id
    summary: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
    other_parties: Annotated[list[mm.OtherParty], msgspec.Meta(min_length=1, max_length=MAX_OTHER_PARTIES - 1)]
    category: Annotated[str, msgspec.Meta(max_length=32)] = "other"    # extension: the case's category


async def agencies_list(ctx: Connection, msg: AgenciesList) -> dict[str, Any]:
    kind = agency_types.parse(msg.agency_type) if msg.agency_type is not None and msg.agency_type.strip() else None
    q = msg.q.strip() if msg.q and msg.q.strip() else None
    case_id = msg.case_id.lower() if msg.case_id else None
    async with ctx.app[POOL].acquire() as conn:
        if case_id is not None and not await agency_store.case_exists(conn, case_id):
            raise NotFound("case_id: no such case")
        return {"agencies": await agency_store.agencies(conn, kind, q, case_id)}


async def incident_refer(ctx: Connection, msg: IncidentRefer) -> dict[str, Any]:
    med, dispatch = ctx.app[MEDIATION], ctx.app[DISPATCH]
    referral = DispatchReferral(dispatch)
    incident_id = msg.incident_id.lower()
    await dispatch.reads.check_area(ctx.who, incident_id)     # a dispatcher limited to an area: only there
    async with ctx.app[POOL].acquire() as conn:       # a re-sent refer: the same case, nothing counted again
        row = await referral.peek(conn, ctx.who, incident_id)
        if row["case_id"] is not None:
            case = await med.referred_case(conn, str(row["case_id"]))
            return {"case": views.view_for(case, ctx.who.id, ctx.who.role), "incident": referral.view(row)}
    plan = await med.plan_referral(ctx.who, msg.category, msg.summary,
                                   [OtherParty(o.name, o.phone) for o in msg.other_parties])
    out = Outbox()
    async with ctx.app[POOL].acquire() as conn, conn.transaction():
        row, again = await referral.lock(conn, ctx.who, incident_id)
        if again:       # referred by a concurrent request meanwhile
            case = await med.referred_case(conn, str(row["case_id"]))
            inc = referral.view(row)
        else:
            reporter = Referred(
                incident_id=incident_id, incident_ref=row["ref_no"], reporter_id=str(row["reporter_id"]),
                reporter_name=shown_name(row["caller_name"] or row["reporter_name"], ""),
                reporter_phone=row["reporter_phone"], by_sms=referral.by_sms(row), joins=referral.joins(row),
                grid_code=row["grid_code"])
            case = await med.open_referred(conn, out, ctx.who, reporter, plan)
            inc = await referral.close(Tx(conn, out, ctx.who.id, "ws"), row, case.id, case.ref_no)
    await dispatch.publish(out.items)
    return {"case": views.view_for(case, ctx.who.id, ctx.who.role), "incident": inc}
