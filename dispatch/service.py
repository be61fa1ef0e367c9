"""The dispatch service: thin commands that carry out the pure rules' decisions.

Every change to an incident goes through `_change`: one PostgreSQL transaction
that first locks the incident row (so accepts, expiries, declines, cancels and
a dispatcher's assign on the same incident are serialised: exactly one
responder ends up assigned), decides with the pure rules (lifecycle, offers,
roster), writes, queues its events, runs the change hooks, commits, and only
then publishes the events on Redis.

A report is the exception that proves it: a new incident has no row to lock,
so it is one statement (store.REPORT_SQL) with no transaction at all, unless a
change hook covers its channel or the caller adds work of its own (`also`);
then the same statement runs in a transaction with them.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from dispatch import lifecycle as lc
from dispatch import offers, store, tiers
from dispatch import roster_store as rs
from dispatch.acks import Alarms
from dispatch.assign import Assigning
from dispatch.duty import Duty
from dispatch.handback import HandingBack
from dispatch.matching import Gate, Matcher, Nearby
from dispatch.notices import ChangeHook, Held, InTxn, Notices, OfferHook, Tx
from dispatch.offers import Reason
from dispatch.reach import Reach
from dispatch.reads import Reads
from dispatch.roster import ResponderStatus as RS
from dispatch.sweeps import Sweeps
from dispatch.tiers import Member
from grids import store as grids_store
from grids.rules import GridRef
from infra.config import Config
from infra.errors import BadRequest, Conflict, NotFound, SessionEnded
from infra.events import Outbox
from infra.identity import Account
from infra.keys import Keys
from infra.metrics import Metrics
from infra.texts import TextQueue

log = logging.getLogger(__name__)

Publish = Callable[[list[tuple[str, str]]], Awaitable[None]]
T = TypeVar("T")


class _Gridded(Exception):
    """A report made without a look at the grids wrote nothing: a grid's box holds its position."""


class DispatchService:
    def __init__(self, cfg: Config, pool: asyncpg.Pool, redis: aioredis.Redis, keys: Keys,
                 publish: Publish, metrics: Metrics | None = None) -> None:
        self.cfg, self.pool, self.keys = cfg, pool, keys
        self.publish, self.metrics = publish, metrics
        self.dcfg = cfg.dispatch
        self.matcher = Matcher(redis, keys, paging=self.dcfg.offer_sms != offers.OfferSms.NEVER)
        self.reads = Reads(pool)                # what clients read: dispatch/reads.py
        self.sweeps = Sweeps(self)              # deadlines and orphans, every node: dispatch/sweeps.py
        self.assigning = Assigning(self)        # a dispatcher's assign, preempting an offer: dispatch/assign.py
        self.alarms = Alarms(self)              # "I'm on it", supervisors texted: dispatch/acks.py
        self.texts: TextQueue | None = None     # the SMS outbox, set by the composition root
        self.reach = Reach(self)                # offers by SMS and voice too: dispatch/reach.py
        self.notices = Notices(keys, metrics)
        self.handing_back = HandingBack(self)   # a responder leaving with a job gives it back: dispatch/handback.py
        self.duty = Duty(pool, self.matcher, self.notices, publish, self._pass_on, self.handing_back.hand_back)
        self.refresh_presence: Callable[[], Awaitable[None]] | None = None
        self._rebuilt = False
        self._guess_untagged = True   # whether reports go without a look at the grids first (request_help)

    def on_change(self, hook: ChangeHook, channels: frozenset[str]) -> None:
        """Run `hook` in the transaction of every change to an incident whose channel is in `channels`
        (its report included)."""
        self.notices.on_change(hook, channels)

    def on_offer(self, hook: OfferHook) -> None:
        """Run `hook` in the transaction of every offer that goes out by SMS or voice (dispatch/reach.py)."""
        self.notices.on_offer(hook)

    # ---------------------------------------------------------------- the one change helper
    async def _change(self, incident_id: str, decide: Callable[[Tx, asyncpg.Record], Awaitable[T]], *,
                      actor_id: str | None, via: str, also: InTxn | None = None, skip_locked: bool = False) -> T:
        """Lock the incident, let `decide` judge and write (queuing its events on tx), run `also`,
        commit, publish. NotFound if there is no such incident; Held if skip_locked and it is locked."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await store.lock_incident(conn, incident_id, skip_locked=skip_locked)
            if row is None:
                if skip_locked:
                    raise Held(incident_id)
                raise NotFound("no such incident")
            tx = Tx(conn, Outbox(), actor_id, via)
            result = await decide(tx, row)
            if also is not None:
                await also(conn)
        await self.publish(tx.out.items)
        for other in tx.rematch:    # an incident preempted here goes back to matching (the sweeper's backstop)
            await self.sweeps.rematch(other)
        return result

    async def _advance(self, tx: Tx, row: asyncpg.Record, candidates: list[lc.Candidate],
                       actor_id: str | None, fresh: bool = False, after: str | None = None) -> asyncpg.Record:
        """Offer the incident to the next candidate or escalate it, by its frozen plan; the row after.
        `fresh`: the live index was just rebuilt; no one online is then a reason to wait queued, not escalate.
        `after`: how the previous try ended (lifecycle.nobody_else), for a true escalation reason."""
        inc = store.rules_view(row)
        statuses, before = await rs.candidate_states(tx.conn, inc.id, [c.responder_id for c in candidates])
        pool = [replace(c, status=statuses.get(c.responder_id, RS.OFF_DUTY)) for c in candidates]
        preempted = False
        while True:
            decision = lc.next_offer(inc, pool, before, datetime.now(UTC), after)
            if lc.waits_for_presence(decision, fresh):
                if row["status"] == lc.Status.QUEUED:
                    return row
                row = await store.update_incident(tx.conn, inc.id, status=str(lc.Status.QUEUED))
                await self.notices.incident(tx, row)
                return row
            if isinstance(decision, lc.Escalate) and decision.reason in lc.NOBODY_ELSE and not preempted:
                freed = await self.assigning.preempt(tx, row, pool, before)
                if freed is not None:    # a priority-1 incident took a responder from a lesser one's offer
                    preempted = True
                    pool = [replace(c, status=RS.AVAILABLE) if c.responder_id == freed else c for c in pool]
                    continue
            if isinstance(decision, lc.Escalate):
                row = await store.update_incident(tx.conn, inc.id, status=str(lc.Status.ESCALATED),
                                                  escalation_reason=decision.reason,
                                                  event=("escalated", actor_id, {"reason": decision.reason}))
                await self.notices.incident(tx, row)
                self.notices.outcome("escalated")
                return row
            chosen = next(c for c in pool if c.responder_id == decision.responder_id)
            offer = await rs.claim_and_offer(tx.conn, inc.id, decision.responder_id, decision.attempt,
                                             decision.expires_at, chosen.tier)
            if offer is not None:
                break
            before.add(decision.responder_id)  # taken by a concurrent dispatch: try the next one
        channels = self.reach.channels_of(chosen, row["priority"])
        row = await store.update_incident(
            tx.conn, inc.id, status=str(lc.Status.OFFERED), offer_attempts=decision.attempt,
            event=("offered", actor_id, {"responder_id": decision.responder_id, "offer_id": str(offer["id"]),
                                         "attempt": decision.attempt, "channels": list(channels),
                                         "tier": str(chosen.tier)}))
        inc_view = await self.notices.incident(tx, row)
        self.notices.offer(tx.out, decision.responder_id, str(offer["id"]), inc_view, offer["expires_at"])
        await self.reach.offered(tx, str(offer["id"]), decision.responder_id, inc_view, offer["expires_at"],
                                 tiers.offer_distance(chosen), channels)
        self.notices.responder(tx.out, await rs.get_responder(tx.conn, decision.responder_id))
        if self.metrics and decision.attempt == 1:
            self.metrics.press_to_offer.observe(max(0.0, (offer["created_at"] - row["created_at"]).total_seconds()))
        return row

    # ---------------------------------------------------------------- residents
    async def request_help(self, who: Account, *, request_id: str, category: str, lat: float | None,
                           lon: float | None, accuracy_m: float | None, note: str, channel: str,
                           remote: str | None = None, also: InTxn | None = None,
                           session: tuple[str, int, str] | None = None) -> tuple[dict[str, Any], bool]:
        """(incident, created). Acknowledged only after commit; the same request_id returns the same
        incident (and `also` does not run again). `remote`: the client's address (WebSocket and HTTP),
        counted against the flood limits; a report past them is held for a dispatcher, never refused.
        `session`: (token id, epoch, role) of the WebSocket session sending it, checked by the report's own
        statement: SessionEnded, and nothing written, if the account was disabled or the session ended."""
        t0 = time.perf_counter()
        cat = self.dcfg.categories.get(category)
        if cat is None:
            raise BadRequest(f"category must be one of {', '.join(self.dcfg.categories)}")
        lc.check_position(lat, lon)
        plan = offers.freeze(self.dcfg)
        gate = (Gate(remote, self.dcfg.flood_per_address, self.dcfg.flood_per_prefix, self.dcfg.flood_window_s,
                     self.dcfg.unverified_offers_per_min) if remote and channel != "sms" else None)
        # a city without grids (or a position outside them) needs no look at the grids before the report: the
        # report's statement makes sure no grid's box holds the position, in the same snapshot as it writes;
        # if one does, it writes nothing, and the report is made again after the grids are looked at
        guess = also is None and lat is not None and lon is not None and self._guess_untagged
        grid = None if guess else await self._tag(lat, lon)
        members: list[Member] = []
        try:   # the reporter's limit (every channel), the flood limits and the nearby responders: one round trip
            # to Redis, and beside it the grid's and community's workers from PostgreSQL (tiers.py)
            searched = self.matcher.nearby_counted(cat.skill, lat, lon, plan.radius_km, who.id, gate)
            if grid is None:    # no members to read: no tasks of gather's for them
                near0 = await searched
            else:
                near0, members = await asyncio.gather(searched, self._members(grid, cat.skill))
        except RedisError as e:   # the limiter lets help through; the sweeper matches it once Redis is back
            log.warning("Redis unavailable at a report, incident stays queued for the sweeper: %s", e)
            near0 = Nearby(None if lat is not None and lon is not None else [])
        while True:
            near = near0
            if grid is not None:
                near = await self._merged(near0, members, grid.code, lat, lon) or near0
            candidates = near.candidates
            now = datetime.now(UTC)
            first: lc.OfferFirstAvailable | lc.Escalate | None = None
            if candidates is not None:
                new = lc.Incident(id="", status=lc.Status.QUEUED, reporter_id=who.id, responder_id=None,
                                  offer_attempts=0, has_position=lat is not None and lon is not None,
                                  accuracy_m=accuracy_m, plan=plan)
                first = lc.plan_first_offer(new, candidates, radius_km=plan.radius_km, max_offers=plan.max_offers,
                                            now=now, offer_timeout_s=plan.offer_timeout_s)
                if lc.waits_for_presence(first, near.fresh):
                    first = None
            offering = first if isinstance(first, lc.OfferFirstAvailable) else None
            waits = first is None or (near.fresh and offering is not None)
            reach = self.reach.plan(cat.priority, candidates or [], offering.responder_ids if offering else ())
            args: dict[str, Any] = {
                "reporter_id": who.id, "request_id": request_id, "category": category, "skill": cat.skill,
                "priority": cat.priority, "lat": lat, "lon": lon, "accuracy_m": accuracy_m, "note": note,
                "channel": channel, "plan": plan, "offer_to": list(offering.responder_ids) if offering else [],
                "otherwise": lc.Status.QUEUED if waits else lc.Status.ESCALATED,
                "reason": first.reason if isinstance(first, lc.Escalate) else lc.NO_CANDIDATE,
                "attempt": offering.attempt if offering else 1, "offer_id": str(uuid.uuid4()),
                "expires_at": offering.expires_at if offering else now, "hold": near.hold,
                "channels": {rid: list(ch) for rid, ch in reach.items()}, "grid": grid,
                "tiers": tiers.tiers_of(candidates or []), "session": session, "untagged": guess}
            out = Outbox()
            try:
                async with self.pool.acquire() as conn:
                    if also is None and channel not in self.notices.hooked and not any(map(self.reach.remote,
                                                                                           reach.values())):
                        row = await store.report(conn, **args)     # the fast path: one statement, no transaction
                        if row is None:
                            raise _Gridded() if guess else SessionEnded()
                        inc = store.incident_view(row)
                        if row["offer_id"] is not None:
                            self.notices.sent(reach.get(str(row["r_account_id"]), ()))
                    else:   # a hook covers the channel, the caller adds work, or the offer may go out by phone
                        async with conn.transaction():
                            row = await store.report(conn, **args)
                            if row is None:
                                raise _Gridded() if guess else SessionEnded()
                            inc = store.incident_view(row)
                            tx = Tx(conn, out, who.id, channel)
                            await self.notices.run_hooks(tx, inc)
                            if row["offer_id"] is not None:
                                rid = str(row["r_account_id"])
                                await self.reach.offered(tx, str(row["offer_id"]), rid, inc,
                                                         row["offer_expires_at"],
                                                         next(tiers.offer_distance(c) for c in candidates or []
                                                              if c.responder_id == rid), reach.get(rid, ()))
                            if also is not None:
                                await also(conn)
                break
            except _Gridded:    # a grid's box holds the position (or the session ended: told on the next try)
                guess = self._guess_untagged = False
                grid = await self._tag(lat, lon)
                members = await self._members(grid, cat.skill)
            except asyncpg.UniqueViolationError:   # this request_id was seen before (a retry, or a concurrent one)
                async with self.pool.acquire() as conn:
                    existing = await store.incident_by_request(conn, who.id, request_id)
                if existing is None:
                    raise
                return store.incident_view(existing), False
        if grid is None and lat is not None and not guess:   # looked, and no grid holds it: guess again next time
            self._guess_untagged = True
        if row["offer_id"] is not None:   # the offer rings first: it is what the seconds are counted by
            self.notices.offer(out, str(row["r_account_id"]), str(row["offer_id"]), inc, row["offer_expires_at"])
        self.notices.queue_incident(out, inc)
        if row["offer_id"] is not None:
            self.notices.responder(out, row, prefix="r_")
        elif row["status"] == lc.Status.ESCALATED:
            self.notices.outcome("escalated")
            if self.metrics and store.POSSIBLE_FLOOD in row["flags"]:
                self.metrics.flood_held.inc()
        await self.publish(out.items)
        # priority 1 or trusted: assign.py; held: no one. The report's statement already looked (`preemptible`)
        # whether any of the candidates holds an offer this report may take (lifecycle.may_preempt): only then
        # is the look made again under the incident's lock, where the choice is made
        if (offering is not None and row["status"] == lc.Status.ESCALATED and candidates and self.dcfg.preempt
                and store.POSSIBLE_FLOOD not in row["flags"] and row["preemptible"]):
            inc = await self.assigning.after_report(str(row["id"]), candidates, near.fresh) or inc
        if self.metrics and row["offer_id"] is not None:   # from the request reaching us to its offer's doorbell
            self.metrics.press_to_offer.observe(time.perf_counter() - t0)
        if self.metrics:
            self.metrics.incidents_created.labels(channel=channel).inc()
        return inc, True

    # ---------------------------------------------------------------- grids and tiers (dispatch/tiers.py)
    async def _tag(self, lat: float | None, lon: float | None) -> GridRef | None:
        """The grid holding a position (None outside every grid, or without one): grids/store.py."""
        if lat is None or lon is None:
            return None
        async with self.pool.acquire() as conn:
            return await grids_store.tag(conn, lat, lon)

    async def _members(self, grid: GridRef | None, skill: str) -> list[Member]:
        """The on-duty workers with the skill of the grid and its community (none without a grid)."""
        if grid is None:
            return []
        async with self.pool.acquire() as conn:
            return await rs.grid_members(conn, grid.code, skill)

    async def _merged(self, near: Nearby, members: list[Member], grid_code: str, lat: float | None,
                      lon: float | None) -> Nearby | None:
        """The nearby candidates with the grid's and community's workers merged in, by tier; whether the
        workers the live index did not find are on line is asked of Redis (None if it cannot say)."""
        if near.candidates is None or not members:
            return near
        found = {c.responder_id for c in near.candidates}
        try:
            online = await self.matcher.presence([m.responder_id for m in members if m.responder_id not in found])
        except RedisError as e:
            log.warning("presence of grid workers unknown: %s", e)
            return None
        return replace(near, candidates=tiers.merge(near.candidates, members, grid_code, lat, lon, online,
                                                    self.matcher.paging))

    async def nearby(self, skill: str, lat: float | None, lon: float | None, radius_km: float,
                     grid_code: str | None) -> Nearby:
        """The candidates for an incident: the live index's nearby responders, and the workers of its grid
        and community with their tier (None when Redis cannot say: the incident waits for the sweeper)."""
        near = await self.matcher.nearby(skill, lat, lon, radius_km)
        if near.candidates is None or grid_code is None:
            return near
        async with self.pool.acquire() as conn:
            members = await rs.grid_members(conn, grid_code, skill)
        return await self._merged(near, members, grid_code, lat, lon) or Nearby(None)

    async def cancel(self, who: Account, incident_id: str, *, via: str = "ws",
                     also: InTxn | None = None) -> dict[str, Any]:
        async def decide(tx: Tx, row: asyncpg.Record) -> dict[str, Any]:
            lc.check_cancel(store.rules_view(row), who.id)
            return await self._finish(tx, row, lc.Status.CANCELLED, "cancelled")
        return await self._change(incident_id, decide, actor_id=who.id, via=via, also=also)

    async def _finish(self, tx: Tx, row: asyncpg.Record, status: lc.Status, kind: str,
                      **data: Any) -> dict[str, Any]:
        """End an incident: withdraw a pending offer, free its responder, set the final status."""
        offer = await rs.pending_for_incident(tx.conn, str(row["id"]))
        if offer is not None:
            await rs.end_offer(tx.conn, offer.id, offers.ENDS[Reason.CANCELLED], Reason.CANCELLED)
            self.notices.withdrawn(tx.out, offer, Reason.CANCELLED)
            self.notices.responder(tx.out, await rs.set_responder_status(tx.conn, offer.responder_id, RS.AVAILABLE,
                                                                          (RS.OFFERED,)))
        if row["responder_id"] is not None:
            self.notices.responder(tx.out, await rs.set_responder_status(tx.conn, str(row["responder_id"]),
                                                                          RS.AVAILABLE, (RS.BUSY,)))
        row = await store.update_incident(tx.conn, str(row["id"]), status=str(status),
                                          disposition=data.get("disposition"), event=(kind, tx.actor_id, data))
        return await self.notices.incident(tx, row)

    async def add_note(self, actor_id: str | None, incident_id: str, text: str, *, via: str,
                       also: InTxn | None = None, reporter_only: bool = False) -> dict[str, Any]:
        """Append a follow-up (an SMS from the reporter, or their incident.note) to an open incident's note."""
        text = lc.note_text(text)

        async def decide(tx: Tx, row: asyncpg.Record) -> dict[str, Any]:
            if reporter_only:
                lc.check_note(store.rules_view(row), actor_id or "")
            note = lc.append_note(store.rules_view(row), row["note"], text)
            row = await store.update_incident(tx.conn, incident_id, note=note,
                                              event=("note_added", actor_id, {"text": text, "via": via}))
            return await self.notices.incident(tx, row)
        return await self._change(incident_id, decide, actor_id=actor_id, via=via, also=also)

    # ---------------------------------------------------------------- responders (duty: dispatch/duty.py)
    async def _pass_on(self, offer_id: str, responder_id: str) -> None:
        """A responder going off duty declines the offer they hold: the incident moves on."""
        await self._end_offer(offer_id, Reason.OFF_DUTY, responder_id, via="ws")

    async def rebuild_index(self) -> int:
        """Refill the GEO index from PostgreSQL (after a Redis restart; see Duty.rebuild_index), refresh this
        node's presence (`refresh_presence`, set by the composition root), then mark the index ready: until
        then reports wait queued rather than escalate for want of responders. Other nodes' presence comes
        back within dispatch.live_grace_s, during which no one online is no reason to escalate either."""
        n = await self.duty.rebuild_index()
        if self.refresh_presence is not None:
            await self.refresh_presence()
        # a node's first rebuild is at its start, before it holds any connection: nothing of its presence
        # is missing (a node that lost Redis with connections rebuilds again, with the grace)
        await self.matcher.mark_ready(self.dcfg.live_grace_s if self._rebuilt else 0)
        self._rebuilt = True
        return n

    async def accept(self, who: Account, offer_id: str, *, via: str = "ws",
                     also: InTxn | None = None) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            got = await rs.offer(conn, offer_id)
        mine = offers.check_own(got[0] if got else None, who.id)

        async def decide(tx: Tx, row: asyncpg.Record) -> dict[str, Any]:
            now_got = await rs.offer(tx.conn, offer_id)
            assert now_got is not None
            offer, db_now = now_got
            lc.check_accept(store.rules_view(row), offer.state, offer.responder_id, who.id,
                            offers.is_due(offer.expires_at, db_now))
            await rs.end_offer(tx.conn, offer_id, offers.ENDS[Reason.ACCEPTED], Reason.ACCEPTED)
            resp = await rs.set_responder_status(tx.conn, who.id, RS.BUSY)
            row = await store.update_incident(tx.conn, str(row["id"]), status=str(lc.Status.ASSIGNED),
                                              responder_id=who.id,
                                              event=("assigned", who.id, {"offer_id": offer_id, "by": "accept",
                                                                          "via": via}))
            inc = await self.notices.incident(tx, row)
            self.notices.responder(tx.out, resp)
            self.notices.outcome("accepted")
            self.notices.answered(via, "accepted")
            return inc
        return await self._change(mine.incident_id, decide, actor_id=who.id, via=via, also=also)

    async def decline(self, who: Account, offer_id: str, *, via: str = "ws", also: InTxn | None = None) -> None:
        async with self.pool.acquire() as conn:
            got = await rs.offer(conn, offer_id)
        offers.check_own(got[0] if got else None, who.id)
        if not await self._end_offer(offer_id, Reason.DECLINED, who.id, via=via, also=also, strict=True):
            raise Conflict("the offer is no longer open")
        self.notices.answered(via, "declined")

    async def _end_offer(self, offer_id: str, reason: Reason, actor_id: str | None, *, via: str,
                         only_if_due: bool = False, also: InTxn | None = None, strict: bool = False) -> bool:
        """Close a pending offer (declined, expired, withdrawn) and move the incident on.

        False if the offer was no longer pending (someone else handled it), or, with
        only_if_due, if it is not due or another node holds the incident right now. `strict`: Conflict
        instead of False once the change has begun, so that `also` rolls back with it.
        """
        async with self.pool.acquire() as conn:
            pre = await store.incident_of_offer(conn, offer_id)
        if pre is None:
            return False
        # Redis is asked before the lock is taken, so that no incident row waits on it
        near = await self.nearby(pre["skill"], pre["lat"], pre["lon"], pre["radius_km"], pre["grid_code"])

        async def decide(tx: Tx, row: asyncpg.Record) -> bool:
            got = await rs.offer(tx.conn, offer_id)
            assert got is not None
            offer, db_now = got
            if not offers.may_end(offer, db_now, only_if_due=only_if_due):
                if strict:
                    raise Conflict("the offer is no longer open")
                return False
            await self._ended(tx, row, offer, reason, actor_id, near)
            return True
        try:
            return await self._change(str(pre["id"]), decide, actor_id=actor_id, via=via, skip_locked=only_if_due,
                                      also=also)
        except Held:
            return False

    async def _ended(self, tx: Tx, row: asyncpg.Record, offer: offers.Offer, reason: Reason,
                     actor_id: str | None, near: Nearby) -> None:
        """End the incident's pending offer (its row locked), free the responder, move the incident on."""
        state = offers.ENDS[reason]
        await rs.end_offer(tx.conn, offer.id, state, reason)
        await store.log_event(tx.conn, str(row["id"]), actor_id, f"offer_{state}",
                              responder_id=offer.responder_id, offer_id=offer.id, reason=str(reason), via=tx.via)
        if offers.tells_responder(reason):
            self.notices.withdrawn(tx.out, offer, reason)
        else:
            self.notices.outcome(reason)
        self.notices.responder(tx.out, await rs.set_responder_status(tx.conn, offer.responder_id,
                                                                      RS.AVAILABLE, (RS.OFFERED,)))
        if near.candidates is None:
            row = await store.update_incident(tx.conn, str(row["id"]), status=str(lc.Status.QUEUED))
            await self.notices.incident(tx, row)
        else:
            await self._advance(tx, row, near.candidates, None, near.fresh, after=str(reason))

    async def progress(self, who: Account, incident_id: str, status: str, note: str | None, *,
                       via: str = "ws", also: InTxn | None = None) -> dict[str, Any]:
        async def decide(tx: Tx, row: asyncpg.Record) -> dict[str, Any]:
            to = lc.check_progress(store.rules_view(row), who.id, status)
            row = await store.update_incident(tx.conn, incident_id, status=str(to),
                                              event=(str(to), who.id, {"note": note, "via": via} if note else
                                                     {"via": via}))
            if to == lc.Status.RESOLVED:
                self.notices.responder(tx.out, await rs.set_responder_status(tx.conn, who.id, RS.AVAILABLE,
                                                                              (RS.BUSY,)))
            return await self.notices.incident(tx, row)
        return await self._change(incident_id, decide, actor_id=who.id, via=via, also=also)

    # ---------------------------------------------------------------- dispatchers
    async def assign(self, who: Account, incident_id: str, responder_id: str, *, via: str = "ws") -> dict[str, Any]:
        return await self.assigning.assign(who, incident_id, responder_id, via=via)

    async def close(self, who: Account, incident_id: str, disposition: str, *, via: str = "ws") -> dict[str, Any]:
        async def decide(tx: Tx, row: asyncpg.Record) -> dict[str, Any]:
            status = lc.check_close(store.rules_view(row), disposition)
            return await self._finish(tx, row, status, "closed", disposition=disposition)
        return await self._change(incident_id, decide, actor_id=who.id, via=via)

    async def locate(self, who: Account, incident_id: str, lat: float, lon: float, *,
                     via: str = "ws") -> dict[str, Any]:
        return await self.assigning.locate(who, incident_id, lat, lon, via=via)

    async def responder_gone(self, responder_id: str) -> None:
        """The responder's last connection closed: an offer waiting on them goes out by phone, or moves on."""
        await self.reach.gone(responder_id)
