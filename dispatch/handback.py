"""A responder leaving duty with a job in hand hands it back to dispatch (issue 19).

The page warns first; if the responder signs out (or goes off duty) anyway, `duty.end` with `hand_back`
lands here: in one transaction per incident (its row locked, as every change is), the responder goes
off duty, the incident loses its responder, is flagged `handed_back` and logged `handed_back` with the
reason, and is matched over from a fresh count of offers without them: the next candidate is offered it,
or it is escalated with reason `handed_back` for a dispatcher. The resident is told by the incident's
new status (and the flag); the dispatchers by the queue. This module is the service's friend, like
dispatch/assign.py.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import asyncpg

from dispatch import lifecycle as lc
from dispatch import roster_store as rs
from dispatch import store
from dispatch.matching import Nearby
from dispatch.notices import Tx
from dispatch.roster import ResponderStatus as RS
from infra.errors import Conflict

if TYPE_CHECKING:
    from dispatch.service import DispatchService


class HandingBack:
    def __init__(self, svc: DispatchService) -> None:
        self.svc = svc

    async def hand_back(self, responder_id: str, why: str, *, via: str = "ws") -> int:
        """Give back every job the responder works (`why`: a key of lifecycle.HAND_BACK_REASONS), leaving
        them off duty; the number of incidents handed back (one that ended meanwhile is left alone)."""
        reason = lc.HAND_BACK_REASONS[why]
        async with self.svc.pool.acquire() as conn:
            rows = await store.assigned_working(conn, responder_id)
        n = 0
        for pre in rows:
            # Redis is asked before the lock is taken, so that no incident row waits on it
            near = await self.svc.matcher.nearby(pre["skill"], pre["lat"], pre["lon"], pre["radius_km"])
            try:
                await self.svc._change(str(pre["id"]), self._decide(responder_id, reason, near),
                                       actor_id=responder_id, via=via)
            except Conflict:
                continue    # closed by a dispatcher (or otherwise ended) since it was read
            n += 1
        return n

    def _decide(self, responder_id: str, reason: str, near: Nearby) -> Callable[[Tx, asyncpg.Record],
                                                                                 Awaitable[None]]:
        async def decide(tx: Tx, row: asyncpg.Record) -> None:
            lc.check_hand_back(store.rules_view(row), responder_id)
            self.svc.notices.responder(tx.out, await rs.set_responder_status(
                tx.conn, responder_id, RS.OFF_DUTY, (RS.BUSY,)))
            row = await store.update_incident(
                tx.conn, str(row["id"]), status=str(lc.Status.QUEUED), responder_id=None, offer_attempts=0,
                flags=sorted({*row["flags"], lc.HANDED_BACK}),
                event=("handed_back", responder_id, {"reason": reason, "responder_id": responder_id,
                                                     "from": row["status"]}))
            if near.candidates is None:    # Redis cannot say now: queued, the orphan sweep carries it on
                await self.svc.notices.incident(tx, row)
                return
            await self.svc._advance(tx, row, near.candidates, None, near.fresh, after=lc.HANDED_BACK)
        return decide
