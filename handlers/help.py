"""WebSocket commands of help and dispatch (contract §3): residents, responders, dispatchers."""
from __future__ import annotations

from typing import Any

from handlers import messages as m
from handlers.connection import Connection
from handlers.context import DISPATCH


async def welcome_state(ctx: Connection) -> dict[str, Any]:
    return await ctx.app[DISPATCH].reads.welcome_state(ctx.who)


async def resync(ctx: Connection) -> None:
    """Re-send current state after pushes may have been lost (a Redis outage).

    `state` carries what `welcome` carries (an incident missing from it has ended);
    a dispatcher watching the queue gets a whole `queue.snapshot` to replace theirs.
    """
    state = await welcome_state(ctx)
    ctx.send({"type": "state", **state})
    for inc in state["open_incidents"]:
        ctx.send({"type": "incident.updated", "incident": inc})
    if ctx.state.get("watching_queue"):
        ctx.send({"type": "queue.snapshot", **await ctx.app[DISPATCH].reads.snapshot()})


async def ping(ctx: Connection, msg: m.Empty) -> None:
    """Extension: a client's liveness check; answers ok."""


async def help_request(ctx: Connection, msg: m.HelpRequest) -> dict[str, Any]:
    inc, _ = await ctx.app[DISPATCH].request_help(
        ctx.who, request_id=msg.request_id, category=msg.category, lat=msg.lat, lon=msg.lon,
        accuracy_m=msg.accuracy_m, note=msg.note, channel="ws", remote=ctx.remote)
    return {"incident": inc}


async def help_cancel(ctx: Connection, msg: m.IncidentRef) -> dict[str, Any]:
    return {"incident": await ctx.app[DISPATCH].cancel(ctx.who, msg.incident_id)}


async def incident_note(ctx: Connection, msg: m.AddNote) -> dict[str, Any]:
    """Extension (contract §12): the reporter adds to their open report; its responder and dispatchers see it."""
    return {"incident": await ctx.app[DISPATCH].add_note(ctx.who.id, msg.incident_id, msg.text, via="ws",
                                                          reporter_only=True)}


async def duty_start(ctx: Connection, msg: m.DutyStart) -> dict[str, Any]:
    return {"responder": await ctx.app[DISPATCH].duty.start(ctx.who, msg.lat, msg.lon, msg.skills)}


async def duty_end(ctx: Connection, msg: m.Empty) -> dict[str, Any]:
    return {"responder": await ctx.app[DISPATCH].duty.end(ctx.who)}


async def location_update(ctx: Connection, msg: m.LocationUpdate) -> None:
    await ctx.app[DISPATCH].duty.move(ctx.who, msg.lat, msg.lon)


async def offer_accept(ctx: Connection, msg: m.OfferRef) -> dict[str, Any]:
    return {"incident": await ctx.app[DISPATCH].accept(ctx.who, msg.offer_id)}


async def offer_decline(ctx: Connection, msg: m.OfferRef) -> None:
    await ctx.app[DISPATCH].decline(ctx.who, msg.offer_id)


async def incident_progress(ctx: Connection, msg: m.Progress) -> dict[str, Any]:
    return {"incident": await ctx.app[DISPATCH].progress(ctx.who, msg.incident_id, msg.status, msg.note)}


async def queue_watch(ctx: Connection, msg: m.Empty) -> dict[str, Any]:
    # subscribe first, then read: a change between the two arrives as a push (clients keep the higher version)
    await ctx.listen(ctx.hub.keys.dispatch_channel)
    ctx.state["watching_queue"] = True
    return await ctx.app[DISPATCH].reads.snapshot(ctx.who)


async def incident_assign(ctx: Connection, msg: m.Assign) -> dict[str, Any]:
    return {"incident": await ctx.app[DISPATCH].assign(ctx.who, msg.incident_id, msg.responder_id)}


async def incident_close(ctx: Connection, msg: m.Close) -> dict[str, Any]:
    return {"incident": await ctx.app[DISPATCH].close(ctx.who, msg.incident_id, msg.disposition)}


async def incident_events(ctx: Connection, msg: m.IncidentRef) -> dict[str, Any]:
    return await ctx.app[DISPATCH].reads.incident_with_events(ctx.who, msg.incident_id)


async def incident_locate(ctx: Connection, msg: m.Locate) -> dict[str, Any]:
    """Extension: set the position of an incident reported without one (SMS), then match again."""
    return {"incident": await ctx.app[DISPATCH].locate(ctx.who, msg.incident_id, msg.lat, msg.lon)}


async def incident_ack(ctx: Connection, msg: m.IncidentRef) -> dict[str, Any]:
    """Extension (issue 12): "I'm on it": the console alarm goes quiet for this incident on every console."""
    return {"incident": await ctx.app[DISPATCH].alarms.acknowledge(ctx.who, msg.incident_id)}
