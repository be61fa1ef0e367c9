"""WebSocket commands of help and dispatch (contract §3): residents, responders, dispatchers."""
from __future__ import annotations

from typing import Any

import msgspec

from dispatch import access
from dispatch import lifecycle as lc
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
        snap = await ctx.app[DISPATCH].reads.snapshot(None, ctx.state.get(QUEUE_FILTER, ()))
        feed = ctx.state.get(QUEUE_FEED)
        if feed is not None:
            feed.shown = {i["id"] for i in snap["incidents"]}
        ctx.send({"type": "queue.snapshot", **snap})


async def ping(ctx: Connection, msg: m.Empty) -> None:
    """Extension: a client's liveness check; answers ok."""


async def help_request(ctx: Connection, msg: m.HelpRequest) -> dict[str, Any]:
    inc, _ = await ctx.app[DISPATCH].request_help(
        ctx.who, request_id=msg.request_id, category=msg.category, lat=msg.lat, lon=msg.lon,
        accuracy_m=msg.accuracy_m, note=msg.note, channel="ws", remote=ctx.remote,
        session=(ctx.claims.token_id, ctx.claims.epoch, ctx.claims.role))   # re-checked by the report itself
    return {"incident": inc}


async def help_cancel(ctx: Connection, msg: m.IncidentRef) -> dict[str, Any]:
    return {"incident": await ctx.app[DISPATCH].cancel(ctx.who, msg.incident_id)}


async def incident_note(ctx: Connection, msg: m.AddNote) -> dict[str, Any]:
    """Extension (contract §12): the reporter adds to their open report; its responder and dispatchers see it."""
    return {"incident": await ctx.app[DISPATCH].add_note(ctx.who.id, msg.incident_id, msg.text, via="ws",
                                                          reporter_only=True)}


async def duty_start(ctx: Connection, msg: m.DutyStart) -> dict[str, Any]:
    return {"responder": await ctx.app[DISPATCH].duty.start(ctx.who, msg.lat, msg.lon, msg.skills)}


async def duty_end(ctx: Connection, msg: m.DutyEnd) -> dict[str, Any]:
    """With a job in hand only with `hand_back` (extension, issue 19): the job goes back to dispatch."""
    return {"responder": await ctx.app[DISPATCH].duty.end(ctx.who, msg.hand_back)}


async def location_update(ctx: Connection, msg: m.LocationUpdate) -> None:
    await ctx.app[DISPATCH].duty.move(ctx.who, msg.lat, msg.lon)


async def offer_accept(ctx: Connection, msg: m.OfferRef) -> dict[str, Any]:
    return {"incident": await ctx.app[DISPATCH].accept(ctx.who, msg.offer_id)}


async def offer_decline(ctx: Connection, msg: m.OfferRef) -> None:
    await ctx.app[DISPATCH].decline(ctx.who, msg.offer_id)


async def incident_progress(ctx: Connection, msg: m.Progress) -> dict[str, Any]:
    return {"incident": await ctx.app[DISPATCH].progress(ctx.who, msg.incident_id, msg.status, msg.note)}


QUEUE_FILTER = "dispatch.queue_filter"     # ctx.state: the access.Filter of the connection's queue.watch
QUEUE_FEED = "dispatch.queue_feed"         # ctx.state: its QueueFeed, when filtered


class _Grid(msgspec.Struct):
    path: list[str]


class _Incident(msgspec.Struct):
    id: str
    status: str = ""
    grid: _Grid | None = None


class _Pushed(msgspec.Struct):
    incident: _Incident | None = None


_pushed = msgspec.json.Decoder(_Pushed)


class QueueFeed:
    """The dispatchers' channel for one watcher with a filter (queue.watch `grids`, an area-limited
    dispatcher): an incident.updated passes when its grid is in the filter (access.visible), and once more
    when an incident shown leaves it (moved elsewhere: the client learns its new grid and drops it);
    everything else (responder.updated) passes. Reads only `incident.id/status/grid.path` of each push."""

    def __init__(self, ctx: Connection, sets: access.Filter, shown: set[str]) -> None:
        self.ctx, self.sets, self.shown = ctx, sets, shown

    def deliver(self, payload: str) -> None:
        if self.ctx.closed:
            return
        try:
            inc = _pushed.decode(payload).incident
        except msgspec.DecodeError:
            return
        if inc is None:
            self.ctx.deliver(payload)
        elif access.visible(inc.grid.path if inc.grid is not None else None, self.sets):
            if inc.status in lc.FINAL:
                self.shown.discard(inc.id)
            else:
                self.shown.add(inc.id)
            self.ctx.deliver(payload)
        elif inc.id in self.shown:
            self.shown.discard(inc.id)
            self.ctx.deliver(payload)


async def queue_watch(ctx: Connection, msg: m.QueueWatch) -> dict[str, Any]:
    """`grids` (extension, issue 14): only the incidents in these grids (descendants included); a dispatcher
    limited to an area gets only it whatever they ask (dispatch/access.py)."""
    reads = ctx.app[DISPATCH].reads
    sets = await reads.queue_filter(ctx.who, msg.grids)
    feed = QueueFeed(ctx, sets, set()) if sets else None
    # subscribe first, then read: a change between the two arrives as a push (clients keep the higher version)
    await ctx.listen(ctx.hub.keys.dispatch_channel, feed)
    ctx.state["watching_queue"] = True
    ctx.state[QUEUE_FILTER] = sets
    ctx.state[QUEUE_FEED] = feed
    snap = await reads.snapshot(ctx.who, sets)
    if feed is not None:
        feed.shown |= {i["id"] for i in snap["incidents"]}
    return snap


async def incident_assign(ctx: Connection, msg: m.Assign) -> dict[str, Any]:
    await ctx.app[DISPATCH].reads.check_area(ctx.who, msg.incident_id)
    return {"incident": await ctx.app[DISPATCH].assign(ctx.who, msg.incident_id, msg.responder_id)}


async def incident_close(ctx: Connection, msg: m.Close) -> dict[str, Any]:
    await ctx.app[DISPATCH].reads.check_area(ctx.who, msg.incident_id)
    return {"incident": await ctx.app[DISPATCH].close(ctx.who, msg.incident_id, msg.disposition)}


async def incident_events(ctx: Connection, msg: m.IncidentRef) -> dict[str, Any]:
    return await ctx.app[DISPATCH].reads.incident_with_events(ctx.who, msg.incident_id)


async def incident_locate(ctx: Connection, msg: m.Locate) -> dict[str, Any]:
    """Extension: set the position of an incident reported without one (SMS), then match again."""
    await ctx.app[DISPATCH].reads.check_area(ctx.who, msg.incident_id)
    return {"incident": await ctx.app[DISPATCH].locate(ctx.who, msg.incident_id, msg.lat, msg.lon)}


async def incident_ack(ctx: Connection, msg: m.IncidentRef) -> dict[str, Any]:
    """Extension (issue 12): "I'm on it": the console alarm goes quiet for this incident on every console."""
    await ctx.app[DISPATCH].reads.check_area(ctx.who, msg.incident_id)
    return {"incident": await ctx.app[DISPATCH].alarms.acknowledge(ctx.who, msg.incident_id)}
