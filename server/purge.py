"""`helpline purge`: remove personal data of closed incidents (and cases) past the retention period.

What stays is what statistics need: category, priority, channel, status, disposition,
timestamps, the offer history and the event kinds. Notes, positions and follow-up
texts are blanked; resident accounts with nothing left inside the retention period
lose their name, phone and device id. Feature packages add their own purge steps
to PURGE_STEPS (e.g. mediation cases).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

PurgeStep = Callable[[Any, int], Awaitable[dict[str, int]]]
PURGE_STEPS: list[PurgeStep] = []
# SQL conditions on a resident account `a` that keep its personal data (e.g. a party to an
# open mediation case): feature packages append theirs.
KEEP_ACCOUNT: list[str] = []


async def purge_incidents(conn: Any, retention_days: int) -> dict[str, int]:
    ids = await conn.fetch(
        "SELECT id FROM incidents WHERE status IN ('resolved','cancelled') AND purged_at IS NULL"
        " AND updated_at < now() - make_interval(days => $1)", retention_days)
    ids = [r["id"] for r in ids]
    if ids:
        await conn.execute("SET LOCAL helpline.purge = 'on'")
        await conn.execute("UPDATE incidents SET note = '', lat = NULL, lon = NULL, accuracy_m = NULL,"
                           " purged_at = now() WHERE id = ANY($1::uuid[])", ids)
        await conn.execute("UPDATE incident_events SET data = data - 'text' - 'note' - 'lat' - 'lon'"
                           " WHERE incident_id = ANY($1::uuid[])", ids)
    keep = "".join(f" AND NOT ({cond})" for cond in KEEP_ACCOUNT)
    residents = await conn.execute(
        """UPDATE accounts a SET name = '', phone = NULL, device_id = NULL
           WHERE a.role = 'resident' AND (a.name <> '' OR a.phone IS NOT NULL OR a.device_id IS NOT NULL)
             AND a.created_at < now() - make_interval(days => $1)
             AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.reporter_id = a.id
                             AND (i.purged_at IS NULL OR i.updated_at >= now() - make_interval(days => $1)))
             AND EXISTS (SELECT 1 FROM incidents i WHERE i.reporter_id = a.id)""" + keep, retention_days)
    return {"incidents": len(ids), "residents": int(residents.split()[-1])}


async def purge(conn: Any, retention_days: int) -> dict[str, int]:
    done: dict[str, int] = {}
    async with conn.transaction():
        for step in [purge_incidents, *PURGE_STEPS]:
            done.update(await step(conn, retention_days))
    return done
