"""The work every node does in the background, from PostgreSQL: offers past their deadline expire,
queued incidents nobody carried on are matched, and supervisors are texted about escalations nobody
took (dispatch/worker.py runs them every tick).

Rows are claimed with FOR UPDATE SKIP LOCKED through the service's one change helper, so several
nodes share the work and a stale or duplicate tick does nothing. This module is the service's
friend: it drives the same change helper the commands use.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import asyncpg
from redis.exceptions import RedisError

from dispatch import lifecycle as lc
from dispatch import roster_store as rs
from dispatch import store
from dispatch.matching import Nearby
from dispatch.notices import SYSTEM, Held, Tx
from dispatch.offers import Reason

if TYPE_CHECKING:
    from dispatch.service import DispatchService

log = logging.getLogger(__name__)


class Sweeps:
    def __init__(self, svc: DispatchService) -> None:
        self.svc = svc

    async def expire_due(self, limit: int = 100) -> int:
        """Expire offers past their deadline; several nodes may run this at once."""
        async with self.svc.pool.acquire() as conn:
            due = await rs.due_offers(conn, limit)
        n = 0
        for offer_id in due:
            if await self.svc._end_offer(offer_id, Reason.EXPIRED, None, via=SYSTEM, only_if_due=True):
                n += 1
        return n

    async def sweep_orphans(self, limit: int = 100) -> int:
        """Dispatch queued incidents that no node carried on (its node died, or Redis was down or lost the
        live index). One incident that cannot be matched never holds up the others: a position the index
        cannot hold is escalated at once; only Redis itself being unavailable ends the sweep early."""
        if not await self.live_ready():
            return 0
        async with self.svc.pool.acquire() as conn:
            rows = await store.orphans(conn, self.svc.dcfg.orphan_after_s, limit)
        n = 0
        for r in rows:
            done = await self._match(r)
            if done is None:
                break    # Redis is down or lost the index again: every other incident would fare the same
            n += done
        return n

    async def alert_supervisors(self) -> int:
        """Text the supervisors about escalated incidents no dispatcher took in time (dispatch/acks.py)."""
        return await self.svc.alarms.alert_supervisors()

    async def rematch(self, incident_id: str) -> None:
        """Match a queued incident again now (one preempted by a more urgent one); if this fails, the orphan
        sweep picks it up after dispatch.orphan_after_s."""
        try:
            async with self.svc.pool.acquire() as conn:
                r = await store.get_incident(conn, incident_id)
            if r is not None:
                await self._match(r, after="preempted")
        except RedisError as e:
            log.warning("rematch of a preempted incident left to the sweeper: %s", e)

    async def _match(self, r: asyncpg.Record, after: str | None = None) -> int | None:
        """1 if the queued incident was matched (offered or escalated), 0 if not, None if Redis cannot say.
        `after`: how its previous try ended, when known (lifecycle.nobody_else)."""
        bad = lc.position_problem(r["lat"], r["lon"])
        near = (Nearby(None) if bad
                else await self.svc.nearby(r["skill"], r["lat"], r["lon"], r["radius_km"], r["grid_code"]))
        if near.candidates is None and not bad:
            return None

        async def decide(tx: Tx, row: asyncpg.Record, near: Nearby = near, bad: str | None = bad) -> bool:
            if row["status"] != lc.Status.QUEUED:
                return False
            if bad is not None or near.candidates is None:
                row = await store.update_incident(tx.conn, str(row["id"]), status=str(lc.Status.ESCALATED),
                                                  escalation_reason="bad_position",
                                                  event=("escalated", None, {"reason": "bad_position"}))
                await self.svc.notices.incident(tx, row)
                self.svc.notices.outcome("escalated")
                return True
            await self.svc._advance(tx, row, near.candidates, None, near.fresh, after=after)
            return True
        try:
            return int(await self.svc._change(str(r["id"]), decide, actor_id=None, via=SYSTEM, skip_locked=True))
        except Held:
            return 0

    async def live_ready(self) -> bool:
        """Whether the live index can be trusted; if Redis lost it (a restart, a flush), rebuild it first."""
        try:
            if await self.svc.matcher.is_ready():
                return True
            log.warning("live index missing (Redis restarted or flushed): rebuilding it from PostgreSQL")
            await self.svc.rebuild_index()
            return True
        except RedisError as e:
            log.warning("live index not ready, queued incidents wait: %s", e)
            return False
