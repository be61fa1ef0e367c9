"""Incidents a dispatcher opens for a caller, and calls attached to an incident being handled (contract §8).

The rules are dispatch/intake_rules.py. An incident is reported through `DispatchService.request_help`
like any other, with the caller's account as its reporter (so that an SMS from that phone lands on it
as a note, and its status texts go to that phone: sms/status.py covers the `phone` and `walk_in`
channels), and, in the same transaction (`also`), it is marked opened by the staff account, with an
`opened_for_caller` event and an audit record. This module is the service's friend, like
dispatch/assign.py.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg

from dispatch import intake_rules as rules
from dispatch import lifecycle as lc
from dispatch import places_store, store
from dispatch.notices import Tx
from infra import audit
from infra.accounts import check_name, normalise_phone
from infra.db import Conn
from infra.errors import BadRequest, NotFound
from infra.events import Outbox
from infra.formats import mask_phone
from infra.identity import Account, Role

if TYPE_CHECKING:
    from dispatch.service import DispatchService


@dataclass(frozen=True)
class Caller:
    name: str | None = None
    phone: str | None = None


def _device_key(staff_id: str, request_id: str) -> str:
    """The device id of a call's own account (a caller without a phone): one per call-taker's request_id,
    so a re-sent request finds it again; the `/` keeps it out of reach of POST /api/auth/device."""
    return "call/" + hashlib.sha256(f"{staff_id}\x1f{request_id}".encode()).hexdigest()[:32]


class Intake:
    def __init__(self, svc: DispatchService) -> None:
        self.svc = svc

    # ------------------------------------------------------------ incident.create
    async def create(self, who: Account, *, request_id: str, category: str, channel: str, caller: Caller,
                     lat: float | None, lon: float | None, place_id: str | None, address: str | None,
                     note: str) -> dict[str, Any]:
        """{"incident", "duplicates"}; the same request_id from the same staff account: the same incident."""
        rules.check_channel(channel)
        if category not in self.svc.dcfg.categories:
            raise BadRequest(f"category must be one of {', '.join(self.svc.dcfg.categories)}")
        where = rules.where(lat, lon, place_id, address)
        if where.lat is not None:
            lc.check_position(where.lat, where.lon)
        phone = None
        if caller.phone and caller.phone.strip():
            try:
                phone = normalise_phone(caller.phone.strip())
            except BadRequest:
                raise BadRequest(f"caller.phone: {caller.phone.strip()[:32]!r} is not a valid phone number"
                                 ) from None
        name = check_name(caller.name, "caller.name")[:rules.CALLER_NAME_MAX] if caller.name else ""
        key = f"{who.id}:{request_id}"
        async with self.svc.pool.acquire() as conn:
            existing = await self._by_request(conn, who.id, key)
            if existing is not None:
                return await self._answer(conn, existing, phone is not None)
            place = await places_store.get(conn, where.place_id) if where.place_id else None
            if where.place_id and place is None:
                raise NotFound("no such place: pick one from places.search")
            reporter = await self._reporter(conn, phone, name, _device_key(who.id, request_id))
        if place is not None:
            at: tuple[float | None, float | None] = (place.lat, place.lon)
        else:
            at = (where.lat, where.lon)
        text = rules.note_for(note, where.address, f"{place.name}, {place.address}" if place else None)

        async def also(conn: Conn) -> None:
            iid = await conn.fetchval(
                "UPDATE incidents SET opened_by = $3, caller_name = $4, place_id = $5, address = $6,"
                " version = version + 1, updated_at = now() WHERE reporter_id = $1 AND request_id = $2 RETURNING id",
                reporter, key, who.id, name or None, place.id if place else None, where.address or None)
            detail = {"channel": channel, "caller_name": name or None, "caller_phone": mask_phone(phone),
                      "place_id": place.id if place else None, "address": where.address or None}
            await store.log_event(conn, str(iid), who.id, "opened_for_caller", **detail)
            await audit.record(conn, who.id, who.role, "incident.create", "incident", str(iid), **detail)
        try:
            inc, created = await self.svc.request_help(
                Account(reporter, Role.RESIDENT, name), request_id=key, category=category, lat=at[0], lon=at[1],
                accuracy_m=None, note=text, channel=channel, also=also)
        except asyncpg.UniqueViolationError:    # the same request_id at the same moment, for another phone
            async with self.svc.pool.acquire() as conn:
                existing = await self._by_request(conn, who.id, key)
                if existing is None:
                    raise
                return await self._answer(conn, existing, phone is not None)
        async with self.svc.pool.acquire() as conn:
            row = await store.get_incident(conn, inc["id"])
            assert row is not None
            if created:    # the consoles learn who opened it (the report's own push was before `also`)
                out = Outbox()
                self.svc.notices.queue_incident(out, store.incident_view(row))
                await self.svc.publish(out.items)
            return await self._answer(conn, row, phone is not None)

    async def _by_request(self, conn: Conn, staff_id: str, key: str) -> asyncpg.Record | None:
        return await conn.fetchrow(store.INCIDENT_SELECT + " WHERE i.opened_by = $1 AND i.request_id = $2",
                                   staff_id, key)

    async def _reporter(self, conn: Conn, phone: str | None, name: str, device: str) -> str:
        """The caller's account: the resident account of their phone (created as an SMS would create it),
        else one of this call alone. A phone that belongs to a staff account is not made its reporter."""
        if phone is not None:
            row = await conn.fetchrow(
                "INSERT INTO accounts (role, name, phone) VALUES ('resident', $2, $1) ON CONFLICT (phone)"
                " DO UPDATE SET name = CASE WHEN accounts.name = '' THEN EXCLUDED.name ELSE accounts.name END"
                " RETURNING id, role", phone, name)
            assert row is not None
            if row["role"] == Role.RESIDENT:
                return str(row["id"])
        acc = await conn.fetchval(
            "INSERT INTO accounts (role, name, device_id) VALUES ('resident', $1, $2) ON CONFLICT (device_id)"
            " DO UPDATE SET name = accounts.name RETURNING id", name, device)
        return str(acc)

    async def _answer(self, conn: Conn, row: asyncpg.Record, by_phone: bool) -> dict[str, Any]:
        return {"incident": store.incident_view(row), "duplicates": await self.duplicates(conn, row, by_phone)}

    async def duplicates(self, conn: Conn, row: asyncpg.Record, by_phone: bool) -> list[dict[str, Any]]:
        """Open incidents that may be the same emergency (intake_rules.why_duplicate), most likely first:
        each an incident with `duplicate_reasons` and `distance_m`."""
        new = _seen(row)
        near = rules.box(new.lat, new.lon) if new.lat is not None and new.lon is not None else None
        since = new.created_at - timedelta(seconds=rules.DUPLICATE_WINDOW_S)
        rows = await conn.fetch(
            store.INCIDENT_SELECT + f" WHERE i.status NOT IN ({store.FINAL_SQL}) AND i.id <> $1 AND"
            " ((i.reporter_id = $2 AND $3) OR (i.category = $4 AND i.created_at >= $5 AND $6::float8 IS NOT NULL"
            " AND i.lat BETWEEN $6 AND $7 AND i.lon BETWEEN $8 AND $9)) ORDER BY i.created_at DESC LIMIT 50",
            row["id"], row["reporter_id"], by_phone, row["category"], since,
            *(near if near else (None, None, None, None)))
        found: list[tuple[tuple[int, float], dict[str, Any]]] = []
        for r in rows:
            reasons, dist = rules.why_duplicate(new, _seen(r), by_phone)
            if reasons:
                view = {**store.incident_view(r), "duplicate_reasons": reasons,
                        "distance_m": round(dist) if dist is not None else None}
                found.append(((0 if "same_phone" in reasons else 1, dist if dist is not None else 1e12), view))
        found.sort(key=lambda x: x[0])
        return [v for _, v in found[:rules.DUPLICATE_MAX]]

    # ------------------------------------------------------------ incident.link
    async def link(self, who: Account, incident_id: str, duplicate_of: str, *, via: str = "ws") -> dict[str, Any]:
        """Attach the call `incident_id` to `duplicate_of`: both logs say so, and the call is closed as a
        `duplicate` of it. Both rows are locked in id order, so two links cannot deadlock."""
        if incident_id == duplicate_of:
            raise BadRequest("an incident cannot be a duplicate of itself")
        out = Outbox()
        async with self.svc.pool.acquire() as conn, conn.transaction():
            locked: dict[str, asyncpg.Record] = {}
            for iid in sorted((incident_id, duplicate_of)):
                r = await store.lock_incident(conn, iid)
                if r is None:
                    raise NotFound("no such incident")
                locked[iid] = r
            row, main = locked[incident_id], locked[duplicate_of]
            rules.check_link(incident_id, duplicate_of, row["status"], main["status"])
            tx = Tx(conn, out, who.id, via)
            await store.log_event(conn, duplicate_of, who.id, "linked", linked_id=incident_id,
                                  ref_no=row["ref_no"])
            await store.log_event(conn, incident_id, who.id, "linked", duplicate_of=duplicate_of,
                                  ref_no=main["ref_no"])
            row = await store.update_incident(conn, incident_id, duplicate_of=duplicate_of)
            inc = await self.svc._finish(tx, row, lc.DISPOSITIONS["duplicate"], "closed", disposition="duplicate",
                                         duplicate_of=duplicate_of)
            await audit.record(conn, who.id, who.role, "incident.link", "incident", incident_id,
                               duplicate_of=duplicate_of)
        await self.svc.publish(out.items)
        return inc


def _seen(r: asyncpg.Record) -> rules.Seen:
    created = r["created_at"] if r["created_at"].tzinfo else r["created_at"].replace(tzinfo=UTC)
    return rules.Seen(str(r["id"]), str(r["reporter_id"]), r["category"], r["lat"], r["lon"], created, r["status"])

