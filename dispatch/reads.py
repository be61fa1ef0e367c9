"""What clients read: the dispatchers' queue, an incident with its log, a (re)connecting client's state.

Who may read what is decided in dispatch/access.py; every staff read of a resident's incident is audited.
"""
from __future__ import annotations

from typing import Any

import asyncpg

from dispatch import access, offers, store
from dispatch import roster_store as rs
from dispatch.offers import Offer
from grids import store as grids_store
from infra import audit
from infra.db import Conn
from infra.errors import BadRequest, NotFound
from infra.formats import iso
from infra.identity import Account, Role


async def snapshot(conn: Conn, who: Account | None, sets: access.Filter = ()) -> dict[str, Any]:
    """The dispatchers' queue: open incidents (those passing the filter `sets`) and on-duty responders."""
    if who is not None:
        await audit.record(conn, who.id, who.role, "watch", "queue", None)
    return {"incidents": await store.open_incidents(conn, sets), "responders": await rs.on_duty(conn)}


async def area(conn: Conn, who: Account) -> access.Area:
    role, limited, codes = await store.area(conn, who.id)
    return access.area_of(role, limited, codes)


async def incident_with_events(conn: Conn, who: Account, incident_id: str) -> dict[str, Any]:
    row = await store.get_incident(conn, incident_id)
    if row is None:
        raise NotFound("no such incident")
    responder = str(row["responder_id"]) if row["responder_id"] is not None else None
    offered = None
    if who.role == Role.RESPONDER and responder != who.id:   # the offered responder reads what they weigh up
        pending = await rs.pending_for_incident(conn, incident_id)
        offered = pending.responder_id if pending is not None else None
    reader = access.reader_of(access.Parties(str(row["reporter_id"]), responder, offered), who)
    if reader == access.Reader.STAFF:     # a dispatcher limited to an area reads only its incidents
        grid = store.grid_view(row)
        access.check_area(await area(conn, who), grid["path"] if grid is not None else None)
    if access.audited(reader):
        await audit.record(conn, who.id, who.role, "read", "incident", incident_id)
    inc = access.with_phone(store.incident_view(row), store.reporter_phone(row), who.id)
    return {"incident": inc, "events": await store.events(conn, incident_id)}


async def welcome_state(conn: Conn, who: Account) -> dict[str, Any]:
    """What a (re)connecting client needs to pick up where it was."""
    rows: list[asyncpg.Record] = []
    offer, responder = None, None
    if who.role == Role.RESIDENT:
        rows = await store.reported_open(conn, who.id)
    elif who.role == Role.RESPONDER:
        rows = await store.assigned_working(conn, who.id)
        o = await rs.pending_for_responder(conn, who.id)
        if o is not None:
            inc = await store.get_incident(conn, o.incident_id)
            assert inc is not None
            offer = {"offer_id": o.id, "incident": store.incident_view(inc), "expires_at": iso(o.expires_at)}
        responder = await rs.get_responder(conn, who.id)
    state: dict[str, Any] = {"open_incidents": [access.with_phone(store.incident_view(r), store.reporter_phone(r),
                                                                  who.id) for r in rows], "offer": offer}
    if responder is not None:
        state["responder"] = rs.responder_view(responder)
    return state


class Reads:
    """The reads above, each on a connection of its own from the pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def snapshot(self, who: Account | None = None, sets: access.Filter = ()) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            return await snapshot(conn, who, sets)

    async def queue_filter(self, who: Account, grids: list[str] | None) -> access.Filter:
        """The filter of `who`'s queue.watch: the grids asked for (an unknown code is refused, named), within
        their area if they are limited to it (access.queue_filter)."""
        async with self.pool.acquire() as conn:
            if grids:
                bad = await grids_store.unknown(conn, grids)
                if bad:
                    raise BadRequest(f"grids: no such grid {', '.join(bad[:10])}")
            return access.queue_filter(await area(conn, who), grids)

    async def check_area(self, who: Account, *incident_ids: str) -> None:
        """Forbidden if `who` is a dispatcher limited to an area and one of these incidents lies outside it
        (an incident that does not exist is left to the command: not_found)."""
        async with self.pool.acquire() as conn:
            mine = await area(conn, who)
            if not mine.limited:
                return
            paths = await store.grid_paths(conn, list(incident_ids))
        for path in paths.values():
            access.check_area(mine, path)

    async def incident_with_events(self, who: Account, incident_id: str) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            return await incident_with_events(conn, who, incident_id)

    async def latest_open(self, reporter_id: str) -> tuple[str, str] | None:
        """(id, ref_no) of the reporter's latest unfinished incident (what a follow-up text adds to)."""
        async with self.pool.acquire() as conn:
            return await store.latest_open_of(conn, reporter_id)

    async def welcome_state(self, who: Account) -> dict[str, Any]:
        """What a (re)connecting client needs to pick up where it was."""
        async with self.pool.acquire() as conn:
            return await welcome_state(conn, who)

    async def offer_open(self, offer_id: str) -> bool:
        """Whether the offer is still pending and within its deadline (a text or call about it may go)."""
        async with self.pool.acquire() as conn:
            got = await rs.offer(conn, offer_id)
        return got is not None and offers.may_end(got[0], got[1], only_if_due=False) \
            and not offers.is_due(got[0].expires_at, got[1])

    async def offer_for_phone(self, responder_id: str) -> tuple[Offer | None, Offer | None, str | None]:
        """(the responder's pending offer, their latest offer, the latest one's incident ref_no): what an
        answer by SMS is about."""
        async with self.pool.acquire() as conn:
            pending = await rs.pending_for_responder(conn, responder_id)
            latest = pending or await rs.latest_offer_for(conn, responder_id)
            ref = (await conn.fetchval("SELECT ref_no FROM incidents WHERE id = $1", latest.incident_id)
                   if latest is not None else None)
        return pending, latest, ref

    async def offer(self, offer_id: str) -> Offer | None:
        async with self.pool.acquire() as conn:
            got = await rs.offer(conn, offer_id)
        return got[0] if got is not None else None

    async def working(self, responder_id: str) -> list[dict[str, Any]]:
        """A responder's incidents in hand (assigned, en route, on scene), oldest first."""
        async with self.pool.acquire() as conn:
            return [store.incident_view(r) for r in await store.assigned_working(conn, responder_id)]
