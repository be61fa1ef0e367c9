"""WebSocket commands of help and dispatch (contract §3): residents, responders, dispatchers."""
from __future__ import annotations

from typing import Any

from infra.identity import Account
from handlers import messages as m
from handlers.registry import command

RESIDENT, RESPONDER, DISPATCHER, ADMIN = "resident", "responder", "dispatcher", "admin"
STAFF_DISPATCH = {DISPATCHER, ADMIN}


def who(ctx: Any) -> Account:
    return Account(ctx.id, ctx.role, ctx.account["name"])


async def welcome_state(ctx: Any) -> dict[str, Any]:
    return await ctx.services.dispatch.welcome_state(who(ctx))


async def resync(ctx: Any) -> None:
    """Re-send current state after pushes may have been lost (a Redis outage).

    `state` carries what `welcome` carries (an incident missing from it has ended);
    a dispatcher watching the queue gets a whole `queue.snapshot` to replace theirs.
    """
    state = await welcome_state(ctx)
    ctx.send({"type": "state", **state})
    for inc in state["open_incidents"]:
        ctx.send({"type": "incident.updated", "incident": inc})
    if ctx.state.get("watching_queue"):
        ctx.send({"type": "queue.snapshot", **await ctx.services.dispatch.snapshot()})


@command("ping", m.Empty, {RESIDENT, RESPONDER, DISPATCHER, ADMIN, "mediator", "agency"})
async def ping(ctx: Any, msg: m.Empty) -> None:
    """Extension: a client's liveness check; answers ok."""


@command("help.request", m.HelpRequest, {RESIDENT})
async def help_request(ctx: Any, msg: m.HelpRequest) -> dict[str, Any]:
    inc, _ = await ctx.services.dispatch.request_help(
        who(ctx), request_id=msg.request_id, category=msg.category, lat=msg.lat, lon=msg.lon,
        accuracy_m=msg.accuracy_m, note=msg.note, channel="ws")
    return {"incident": inc}


@command("help.cancel", m.IncidentRef, {RESIDENT})
async def help_cancel(ctx: Any, msg: m.IncidentRef) -> dict[str, Any]:
    return {"incident": await ctx.services.dispatch.cancel(who(ctx), msg.incident_id)}


@command("duty.start", m.DutyStart, {RESPONDER})
async def duty_start(ctx: Any, msg: m.DutyStart) -> dict[str, Any]:
    return {"responder": await ctx.services.dispatch.duty.start(who(ctx), msg.lat, msg.lon, msg.skills)}


@command("duty.end", m.Empty, {RESPONDER})
async def duty_end(ctx: Any, msg: m.Empty) -> dict[str, Any]:
    return {"responder": await ctx.services.dispatch.duty.end(who(ctx))}


@command("location.update", m.LocationUpdate, {RESPONDER})
async def location_update(ctx: Any, msg: m.LocationUpdate) -> None:
    await ctx.services.dispatch.duty.move(who(ctx), msg.lat, msg.lon)


@command("offer.accept", m.OfferRef, {RESPONDER})
async def offer_accept(ctx: Any, msg: m.OfferRef) -> dict[str, Any]:
    return {"incident": await ctx.services.dispatch.accept(who(ctx), msg.offer_id)}


@command("offer.decline", m.OfferRef, {RESPONDER})
async def offer_decline(ctx: Any, msg: m.OfferRef) -> None:
    await ctx.services.dispatch.decline(who(ctx), msg.offer_id)


@command("incident.progress", m.Progress, {RESPONDER})
async def incident_progress(ctx: Any, msg: m.Progress) -> dict[str, Any]:
    return {"incident": await ctx.services.dispatch.progress(who(ctx), msg.incident_id, msg.status, msg.note)}


@command("queue.watch", m.Empty, STAFF_DISPATCH)
async def queue_watch(ctx: Any, msg: m.Empty) -> dict[str, Any]:
    # subscribe first, then read: a change between the two arrives as a push (clients keep the higher version)
    await ctx.listen(ctx.services.keys.dispatch_channel)
    ctx.state["watching_queue"] = True
    return await ctx.services.dispatch.snapshot(who(ctx))


@command("incident.assign", m.Assign, STAFF_DISPATCH)
async def incident_assign(ctx: Any, msg: m.Assign) -> dict[str, Any]:
    return {"incident": await ctx.services.dispatch.assign(who(ctx), msg.incident_id, msg.responder_id)}


@command("incident.close", m.Close, STAFF_DISPATCH)
async def incident_close(ctx: Any, msg: m.Close) -> dict[str, Any]:
    return {"incident": await ctx.services.dispatch.close(who(ctx), msg.incident_id, msg.disposition)}


@command("incident.events", m.IncidentRef, {RESIDENT, RESPONDER, DISPATCHER, ADMIN})
async def incident_events(ctx: Any, msg: m.IncidentRef) -> dict[str, Any]:
    return await ctx.services.dispatch.incident_with_events(who(ctx), msg.incident_id)


@command("incident.locate", m.Locate, STAFF_DISPATCH)
async def incident_locate(ctx: Any, msg: m.Locate) -> dict[str, Any]:
    """Extension: set the position of an incident reported without one (SMS), then match again."""
    return {"incident": await ctx.services.dispatch.locate(who(ctx), msg.incident_id, msg.lat, msg.lon)}
