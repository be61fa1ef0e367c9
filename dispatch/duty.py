"""Responders going on and off duty and moving: the roster's commands (its rules: dispatch/roster.py).

A responder's row changes in its own short transaction; the live GEO index follows after
commit, best effort (it is rebuilt from PostgreSQL after a Redis restart).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from dispatch import roster
from dispatch import roster_store as rs
from dispatch.lifecycle import check_position
from dispatch.matching import Matcher
from dispatch.notices import Notices
from dispatch.roster import ResponderStatus as RS
from infra.errors import Conflict
from infra.events import Outbox
from infra.identity import Account

Publish = Callable[[list[tuple[str, str]]], Awaitable[None]]
PassOn = Callable[[str, str], Awaitable[None]]      # (offer id, responder id): decline it as off_duty
GiveBack = Callable[[str, str], Awaitable[int]]     # (responder id, why): hand their jobs back (handback.py)


class Duty:
    def __init__(self, pool: asyncpg.Pool, matcher: Matcher, notices: Notices, publish: Publish,
                 pass_on: PassOn, give_back: GiveBack) -> None:
        self.pool, self.matcher, self.notices, self.publish = pool, matcher, notices, publish
        self.pass_on, self.give_back = pass_on, give_back

    async def start(self, who: Account, lat: float | None, lon: float | None,
                    skills: list[str] | None) -> dict[str, Any]:
        """On duty at (lat, lon); without a position (None) only a grid worker by SMS (`resume`): matched
        by their grid's membership (dispatch/tiers.py), out of the live index until they send one."""
        check_position(lat, lon)
        out = Outbox()
        async with self.pool.acquire() as conn, conn.transaction():
            old = await rs.lock_responder(conn, who.id, create=True)
            assert old is not None
            new_skills = roster.skills_after(list(old["skills"]), skills)
            status = roster.start_duty(roster.status_of(old["status"]))
            saved = await rs.save_duty(conn, who.id, status, lat, lon, new_skills)
            resp = self.notices.responder(out, saved)
        await self.matcher.place(who.id, lat, lon, new_skills, old_skills=list(old["skills"]),
                                 pageable=saved["phone"] is not None)
        await self.publish(out.items)
        assert resp is not None
        return resp

    async def resume(self, who: Account) -> dict[str, Any] | None:
        """Start duty at the last known position (duty by SMS: `ON`); None if there is none, unless they
        belong to a grid: a grid worker goes on duty without one, and is offered their grid's and community's
        incidents by membership (dispatch/tiers.py), by SMS while off line."""
        async with self.pool.acquire() as conn:
            row = await rs.get_responder(conn, who.id)
            member = await rs.in_a_grid(conn, who.id)
        if row is not None and row["lat"] is not None and row["lon"] is not None:
            return await self.start(who, row["lat"], row["lon"], None)
        if member:
            return await self.start(who, None, None, None)
        return None

    async def end(self, who: Account, hand_back: str | None = None) -> dict[str, Any]:
        """Off duty; an offer held passes on. With a job in hand only with `hand_back` (why: `signed_out` or
        `off_duty`): the job goes back to dispatch first (roster.check_end_duty)."""
        async with self.pool.acquire() as conn:
            row = await rs.get_responder(conn, who.id)
            status = roster.status_of(row["status"]) if row else None
            roster.check_end_duty(status, hand_back is not None)
            offer = await rs.pending_for_responder(conn, who.id)
        if offer is not None:
            await self.pass_on(offer.id, who.id)
        gave_back = await self.give_back(who.id, hand_back) if hand_back is not None and status == RS.BUSY else 0
        out = Outbox()
        async with self.pool.acquire() as conn, conn.transaction():
            row = await rs.set_responder_status(conn, who.id, RS.OFF_DUTY, tuple(roster.MAY_END_DUTY))
            if row is None and gave_back:    # the hand-back already left them off duty
                row = await rs.get_responder(conn, who.id)
                if row is not None and row["status"] != RS.OFF_DUTY:
                    row = None
            if row is None:
                raise Conflict("your status changed meanwhile; try again")
            resp = rs.responder_view(row) if gave_back else self.notices.responder(out, row)
        await self.matcher.place(who.id, None, None, list(row["skills"]), old_skills=list(row["skills"]),
                                 pageable=False)
        await self.publish(out.items)
        assert resp is not None
        return resp

    async def move(self, who: Account, lat: float, lon: float) -> None:
        check_position(lat, lon)
        out = Outbox()
        async with self.pool.acquire() as conn:
            row = await rs.move(conn, who.id, lat, lon)
        roster.check_located(row is not None)
        assert row is not None
        self.notices.responder(out, row)
        await self.matcher.place(who.id, lat, lon, list(row["skills"]))
        await self.publish(out.items)

    async def rebuild_index(self) -> int:
        """Refill the GEO index from PostgreSQL (after a Redis restart); returns responders indexed.

        Raises RedisError if Redis is not (yet) taking writes, so the caller can try again.
        """
        async with self.pool.acquire() as conn:
            rows = await rs.placed_on_duty(conn)
        await self.matcher.refill([(str(r["account_id"]), list(r["skills"]), r["lat"], r["lon"]) for r in rows],
                                  [str(r["account_id"]) for r in rows if r["phone"]])
        return len(rows)
