"""A dispatcher's assign (contract §3), which may preempt an offer the responder holds (contract §12).

The responder may be holding an offer for another incident: that offer is withdrawn as `preempted` and
that incident moves on (the next candidate, or escalated) in the same transaction as the assign. This
incident's row is locked first (the change helper); the other's is taken with SKIP LOCKED, never waited
on, so two transactions each holding one incident cannot deadlock; when it is held, the whole assign is
tried again from a fresh look. This module is the service's friend, like dispatch/sweeps.py.
"""
from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import asyncpg

from dispatch import lifecycle as lc
from dispatch import offers, roster, store
from dispatch import roster_store as rs
from dispatch.matching import Nearby
from dispatch.notices import SYSTEM, Held, Tx
from dispatch.offers import Reason
from dispatch.roster import ResponderStatus as RS
from grids import store as grids_store
from infra.errors import Conflict, NotFound
from infra.identity import Account

if TYPE_CHECKING:
    from dispatch.service import DispatchService

PREEMPT_TRIES = 20   # an assign is tried again while the incident it preempts is locked by another change


class Assigning:
    def __init__(self, svc: DispatchService) -> None:
        self.svc = svc

    async def assign(self, who: Account, incident_id: str, responder_id: str, *, via: str = "ws") -> dict[str, Any]:
        """Assign; an offer the responder holds for another incident is withdrawn as `preempted` in the same
        transaction, and that incident moves on (contract §12). Its row is taken with SKIP LOCKED after this
        one's: never waited on, so two incidents' locks cannot deadlock; when it is busy, all is tried again."""
        for attempt in range(PREEMPT_TRIES):
            async with self.svc.pool.acquire() as conn:
                held = await rs.pending_for_responder(conn, responder_id)
                other = (await store.get_incident(conn, held.incident_id)
                         if held is not None and held.incident_id != incident_id else None)
            near = (await self.svc.nearby(other["skill"], other["lat"], other["lon"], other["radius_km"],
                                          other["grid_code"]) if other is not None else None)
            try:
                return await self._assign(who, incident_id, responder_id, held if near is not None else None, near, via)
            except Held:
                await asyncio.sleep(0.01 * (attempt + 1))
        raise Conflict("that responder is answering another offer; try again in a moment")

    async def _assign(self, who: Account, incident_id: str, responder_id: str, held: offers.Offer | None,
                      near: Nearby | None, via: str) -> dict[str, Any]:
        async def decide(tx: Tx, row: asyncpg.Record) -> dict[str, Any]:
            other = None
            if held is not None:   # lock the other incident before the responder, as its own changes do
                other = await store.lock_incident(tx.conn, held.incident_id, skip_locked=True)
                if other is None:
                    raise Held(held.incident_id)
            resp = await rs.lock_responder(tx.conn, responder_id)
            pending = await rs.pending_for_incident(tx.conn, incident_id)
            now_held = await rs.pending_for_responder(tx.conn, responder_id)
            if now_held is not None and now_held.incident_id != incident_id and (
                    held is None or now_held.id != held.id):
                raise Held(now_held.incident_id)   # a new offer since the look: look again
            status = roster.as_assignee(roster.status_of(resp["status"]) if resp else None,
                                        pending is not None and pending.responder_id == responder_id)
            lc.check_assign(store.rules_view(row), status)
            if other is not None and now_held is not None and near is not None:
                await self.svc._ended(tx, other, now_held, Reason.PREEMPTED, who.id, near)
            if pending is not None:
                await rs.end_offer(tx.conn, pending.id, offers.ENDS[Reason.TAKEN], Reason.TAKEN)
                self.svc.notices.withdrawn(tx.out, pending, Reason.TAKEN)
                if pending.responder_id != responder_id:
                    self.svc.notices.responder(tx.out, await rs.set_responder_status(
                        tx.conn, pending.responder_id, RS.AVAILABLE, (RS.OFFERED,)))
            busy = await rs.set_responder_status(tx.conn, responder_id, RS.BUSY)
            row = await store.update_incident(
                tx.conn, incident_id, status=str(lc.Status.ASSIGNED), responder_id=responder_id,
                event=("assigned", who.id, {"responder_id": responder_id, "by": "dispatcher"}))
            inc = await self.svc.notices.incident(tx, row)
            self.svc.notices.responder(tx.out, busy)
            return inc
        return await self.svc._change(incident_id, decide, actor_id=who.id, via=via)

    async def locate(self, who: Account, incident_id: str, lat: float, lon: float, *,
                     via: str = "ws") -> dict[str, Any]:
        """A dispatcher sets the position of an incident that has none (or a wrong one); it is tagged with the
        grid holding the new position, and matching runs again."""
        lc.check_position(lat, lon)
        async with self.svc.pool.acquire() as conn:
            pre = await store.get_incident(conn, incident_id)
            if pre is None:
                raise NotFound("no such incident")
            grid = await grids_store.tag(conn, lat, lon)
        code = grid.code if grid is not None else None
        near = await self.svc.nearby(pre["skill"], lat, lon, pre["radius_km"], code)
        candidates = near.candidates

        async def decide(tx: Tx, row: asyncpg.Record) -> dict[str, Any]:
            lc.check_relocate(store.rules_view(row))
            # the dispatcher's position is exact: a rough accuracy the resident's device reported no longer applies
            row = await store.update_incident(tx.conn, incident_id, lat=lat, lon=lon, accuracy_m=None,
                                              status=str(lc.Status.QUEUED), offer_attempts=0, grid_code=code,
                                              event=("located", who.id, {"lat": lat, "lon": lon, "grid": code}))
            if candidates is None:
                return await self.svc.notices.incident(tx, row)
            return store.incident_view(await self.svc._advance(tx, row, candidates, who.id, near.fresh))
        return await self.svc._change(incident_id, decide, actor_id=who.id, via=via)

    # ------------------------------------------------------------ automatic preemption (dispatch.preempt)
    async def preempt(self, tx: Tx, row: asyncpg.Record, pool: list[lc.Candidate], before: set[str]) -> str | None:
        """For an incident (row locked) no available responder can take: withdraw, as `preempted`, the pending
        offer the nearest responder in range holds for an incident this one may preempt (lifecycle.may_preempt:
        a lower priority, for a priority-1 incident; an untrusted report, for a trusted one). That incident
        is queued now and matched again after commit. The responder freed, or None."""
        if not self.svc.dcfg.preempt or store.POSSIBLE_FLOOD in row["flags"]:
            return None
        offered = [c.responder_id for c in pool if c.status == RS.OFFERED]
        if not offered:
            return None
        held = await rs.held_offers(tx.conn, offered)
        if not held:
            return None
        untrusted = await store.untrusted_reports(tx.conn, [str(row["id"]), *(o.incident_id for o, _ in held.values())])
        target = lc.preemption_target(row["priority"], pool, {k: p for k, (_, p) in held.items()}, before,
                                      store.plan_of(row).radius_km, trusted=str(row["id"]) not in untrusted,
                                      untrusted_held=frozenset(k for k, (o, _) in held.items()
                                                               if o.incident_id in untrusted))
        if target is None:
            return None
        offer = held[target.responder_id][0]
        other = await store.lock_incident(tx.conn, offer.incident_id, skip_locked=True)
        if other is None:     # in a change of its own right now: never waited on (lock order); escalate instead
            return None
        got = await rs.offer(tx.conn, offer.id)
        if got is None or got[0].state != offers.OfferState.PENDING:
            return None
        await self.svc._ended(tx, other, offer, Reason.PREEMPTED, tx.actor_id, Nearby(None))
        tx.rematch.append(offer.incident_id)
        return target.responder_id

    async def after_report(self, incident_id: str, candidates: list[lc.Candidate],
                           fresh: bool) -> dict[str, Any] | None:
        """A report escalated with responders in range, none available: preempt one if it may (a priority-1
        report, or a trusted one: `preempt`), and offer it this incident. The incident after, or None if nothing
        changed. A report held as a possible flood preempts no one."""
        async def decide(tx: Tx, row: asyncpg.Record) -> dict[str, Any] | None:
            if row["status"] != lc.Status.ESCALATED or store.POSSIBLE_FLOOD in row["flags"]:
                return None
            statuses, before = await rs.candidate_states(tx.conn, incident_id, [c.responder_id for c in candidates])
            pool = [replace(c, status=statuses.get(c.responder_id, RS.OFF_DUTY)) for c in candidates]
            if await self.preempt(tx, row, pool, before) is None:
                return None
            row = await store.update_incident(tx.conn, incident_id, status=str(lc.Status.QUEUED))
            return store.incident_view(await self.svc._advance(tx, row, candidates, None, fresh))
        return await self.svc._change(incident_id, decide, actor_id=None, via=SYSTEM)
