"""Live delivery on this node: room feeds (chat.message) and case watchers (case.updated).

Redis pub/sub is only a doorbell; PostgreSQL has every message. A `RoomFeed`
stands between the bus and one connection for one room, and keeps `last`, the
highest seq this connection has been given in that room:

* chat.subscribe listens on the room channel FIRST, then reads the backlog from
  PostgreSQL. Pushes that arrive meanwhile wait in `pending`; the feed opens
  (`start`) on the next loop turn, i.e. after the `ok` answer is queued, so the
  client sees the backlog, then the live messages.
* A push with seq <= last is a duplicate and is dropped; seq == last + 1 goes
  out; a jump past last + 1 means committed messages whose doorbell has not rung
  here (yet, or at all): the feed fetches the missing range from PostgreSQL and
  delivers it in order before anything after it. Because a room's seq is taken
  under the counter row's lock, everything below a published seq is committed.
* If PostgreSQL cannot fill a hole, the client is told so explicitly with a
  `chat.gap` push (then re-subscribes with its after_seq); never silence.

ws.py unsubscribes only the connection itself when it closes, so feeds notice a
closed connection on their next delivery, and a sweeper drops idle ones.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import msgspec

from infra.bus import Peer
from infra.identity import Account
from mediation import area

if TYPE_CHECKING:
    from infra.bus import Bus
    from infra.keys import Keys
    from mediation.service import MediationService

log = logging.getLogger(__name__)
STATE = "mediation.feeds"        # ctx.state key: {(case_id, room): RoomFeed}
WATCH = "mediation.watch"        # ctx.state key: CaseWatch
BACKLOG_LIMIT = 1000
FILL_LIMIT = 500
MAX_FEEDS = 64                   # rooms one connection may follow at once
SWEEP_S = 10.0


class _Seq(msgspec.Struct):
    seq: int


class _Pushed(msgspec.Struct):
    message: _Seq


class _Who(msgspec.Struct):
    id: str


class _Grid(msgspec.Struct):
    path: list[str]


class _CaseMediator(msgspec.Struct):
    mediator: _Who | None = None
    opened_by: _Who | None = None
    grid: _Grid | None = None


class _CaseUpdated(msgspec.Struct):
    case: _CaseMediator
    area_first: float = 0.0


CASE_UPDATED = '{"type":"case.updated","case":{'     # how infra.events encodes a case.updated push


_pushed = msgspec.json.Decoder(_Pushed)
_updated = msgspec.json.Decoder(_CaseUpdated)


def gone(ctx: Peer) -> bool:
    return ctx.closed


HOLE_GRACE_S = 0.05


class RoomFeed:
    def __init__(self, feeds: Feeds, ctx: Peer, case_id: str, room: str) -> None:
        self.feeds, self.ctx, self.case_id, self.room = feeds, ctx, case_id, room
        self.channel = feeds.keys.room_channel(case_id, room)
        self.last = 0
        self.ready = False
        self.pending: list[tuple[int, str]] = []
        self.filling: asyncio.Task[None] | None = None

    def deliver(self, payload: str) -> None:
        if gone(self.ctx):
            self.feeds.drop_soon(self)
            return
        try:
            seq = _pushed.decode(payload).message.seq
        except msgspec.DecodeError:
            log.warning("bad chat payload on %s", self.channel)
            return
        self.pending.append((seq, payload))
        if self.ready and self.filling is None:
            self.drain()

    def start(self) -> None:
        if not gone(self.ctx):
            self.ready = True
            self.drain()

    def drain(self) -> None:
        self.pending.sort(key=lambda p: p[0])
        while self.pending:
            seq, payload = self.pending[0]
            if seq <= self.last:
                self.pending.pop(0)
            elif seq == self.last + 1:
                self.pending.pop(0)
                self.ctx.deliver(payload)
                self.last = seq
            else:
                self.fill(grace=HOLE_GRACE_S)
                return

    def fill(self, grace: float = 0.0) -> None:
        """Fetch what this connection has not been given from PostgreSQL (a hole, or after a Redis outage).

        With `grace`, first wait that long: pushes from two nodes often cross on the way, and the
        missing one usually arrives a moment later without a database read.
        """
        if self.filling is None and self.ready:
            self.filling = asyncio.get_running_loop().create_task(self._fill(grace))

    async def _fill(self, grace: float = 0.0) -> None:
        if grace:
            await asyncio.sleep(grace)
            if self.pending and min(s for s, _ in self.pending) <= self.last + 1:
                self.filling = None   # the hole closed by itself
                if not gone(self.ctx):
                    self.drain()
                return
        ok = False
        for attempt in range(4):
            try:
                while True:
                    rows = await self.feeds.service.messages_after(self.case_id, self.room, self.last,
                                                                   FILL_LIMIT)
                    for m in rows:
                        if m["seq"] == self.last + 1:
                            self.ctx.send({"type": "chat.message", "message": m})
                            self.last = m["seq"]
                    if len(rows) < FILL_LIMIT:
                        break
                ok = True
                break
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("filling %s after %d: %s", self.channel, self.last, e)
                await asyncio.sleep(0.2 * 2 ** attempt)
        self.filling = None
        if self.pending and min(s for s, _ in self.pending) > self.last + 1:
            # PostgreSQL could not give us the hole: say so, then carry on with what we have
            self.ctx.send({"type": "chat.gap", "case_id": self.case_id, "room": self.room,
                           "after_seq": self.last, "reason": "unavailable" if not ok else "missing"})
            self.last = min(s for s, _ in self.pending) - 1
        if not gone(self.ctx):
            self.drain()

    def stop(self) -> None:
        self.ready = False
        if self.filling is not None:
            self.filling.cancel()
            self.filling = None


def mark_in_area(payload: str, in_area: bool) -> str:
    """The case.updated push with `in_area` in its case (issue 14)."""
    if payload.startswith(CASE_UPDATED):
        return f'{CASE_UPDATED}"in_area":{"true" if in_area else "false"},{payload[len(CASE_UPDATED):]}'
    msg = msgspec.json.decode(payload)
    msg["case"]["in_area"] = in_area
    return msgspec.json.encode(msg).decode()


class CaseWatch:
    """cases_channel for one watching mediator; cases they mediate, and cases they opened for visitors that
    nobody has taken yet, come on their account channel instead (with phone numbers in full, and the join
    codes), so the masked copy is not passed on to them.

    Issue 14 (mediation/area.py): with a `grids` filter only cases in those grids pass; each case is marked
    `in_area` for this mediator; a new case offered to its area first reaches a mediator of another area
    when the head start ends (a push held here; the client keeps the higher `version`, so a held copy that
    arrives after a newer one changes nothing)."""

    def __init__(self, feeds: Feeds, ctx: Peer, roots: frozenset[str] = frozenset(),
                 grids: frozenset[str] | None = None) -> None:
        self.feeds, self.ctx = feeds, ctx
        self.channel = feeds.keys.cases_channel
        self.roots, self.grids = roots, grids

    def deliver(self, payload: str) -> None:
        if gone(self.ctx):
            self.feeds.drop_soon(self)
            return
        try:
            pushed = _updated.decode(payload)
        except msgspec.DecodeError:
            return
        case = pushed.case
        mine = case.opened_by if case.mediator is None else case.mediator
        if mine is not None and mine.id == self.ctx.id:
            return
        path = case.grid.path if case.grid else None
        if not area.within(path, self.grids):
            return
        ours = area.in_area(path, self.roots)
        out = mark_in_area(payload, ours)
        delay = area.push_delay(pushed.area_first, ours)
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._late, out)
        else:
            self.ctx.deliver(out)

    def _late(self, payload: str) -> None:
        if not gone(self.ctx) and self.ctx.state.get(WATCH) is self:
            self.ctx.deliver(payload)


Listener = RoomFeed | CaseWatch


class Feeds:
    def __init__(self, service: MediationService, bus: Bus, keys: Keys) -> None:
        self.service, self.bus, self.keys = service, bus, keys
        self.live: set[Listener] = set()
        self._dropping: set[Listener] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="mediation-sweeper")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sweeper
        for f in list(self.live):
            await self._drop(f)

    async def subscribe(self, ctx: Peer, case_id: str, room: str, after_seq: int) -> dict[str, Any]:
        """Listen, then read the backlog; live messages follow the ok answer without a hole or a repeat."""
        feeds: dict[tuple[str, str], RoomFeed] = ctx.state.setdefault(STATE, {})
        feed = feeds.get((case_id, room))
        if feed is None:
            if len(feeds) >= MAX_FEEDS:
                from infra.errors import Conflict

                raise Conflict(f"following {MAX_FEEDS} rooms already; chat.unsubscribe some first")
            feed = feeds[(case_id, room)] = RoomFeed(self, ctx, case_id, room)
            self.live.add(feed)
            await self.bus.listen(feed.channel, feed)
        else:
            feed.stop()
        try:
            msgs, more, last = await self.service.backlog(case_id, room, after_seq, BACKLOG_LIMIT)
        except BaseException:
            feeds.pop((case_id, room), None)
            await self._drop(feed)
            raise
        feed.last = msgs[-1]["seq"] if msgs else min(after_seq, last)
        asyncio.get_running_loop().call_soon(feed.start)   # after the ok answer is queued
        return {"messages": msgs, "has_more": more}

    async def unsubscribe(self, ctx: Peer, case_id: str, room: str) -> bool:
        feed = ctx.state.get(STATE, {}).pop((case_id, room), None)
        if feed is not None:
            await self._drop(feed)
        return feed is not None

    async def watch(self, ctx: Peer, roots: frozenset[str] = frozenset(), grids: frozenset[str] | None = None
                    ) -> None:
        """Follow the cases channel (again: with this area and filter from now on)."""
        w = ctx.state.get(WATCH)
        if w is not None:
            w.roots, w.grids = roots, grids
            return
        w = ctx.state[WATCH] = CaseWatch(self, ctx, roots, grids)
        self.live.add(w)
        await self.bus.listen(w.channel, w)

    async def resync(self, ctx: Peer) -> None:
        """After a Redis outage (pushes lost): current cases again, and every followed room caught up."""
        for feed in list(ctx.state.get(STATE, {}).values()):
            feed.fill()
        actor = Account(ctx.id, ctx.role, ctx.account.get("name") or "")
        seen = set()
        for case in await self.service.my_cases(actor):
            seen.add(case["id"])
            ctx.send({"type": "case.updated", "case": case})
        w = ctx.state.get(WATCH)
        if w is not None:
            for case in await self.service.watch_list(actor, record=False, grids=w.grids, roots=w.roots):
                if case["id"] not in seen:
                    ctx.send({"type": "case.updated", "case": case})

    async def forget(self, ctx: Peer) -> None:
        """The connection closed: stop its room feeds and case watch now."""
        for f in [f for f in self.live if f.ctx is ctx]:
            await self._drop(f)

    def drop_soon(self, f: Listener) -> None:
        if f not in self._dropping and f in self.live:
            self._dropping.add(f)
            task = asyncio.get_running_loop().create_task(self._drop(f))
            self._tasks.add(task)                       # the loop holds only a weak reference
            task.add_done_callback(self._tasks.discard)

    async def _drop(self, f: Listener) -> None:
        self.live.discard(f)
        if isinstance(f, RoomFeed):
            f.stop()
        with contextlib.suppress(Exception):
            await self.bus.unlisten(f.channel, f)
        self._dropping.discard(f)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            for f in [f for f in self.live if gone(f.ctx)]:
                await self._drop(f)
