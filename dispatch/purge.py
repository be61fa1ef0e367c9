"""`helpline purge` for incidents: blank personal data of incidents closed longer than the retention period.

What stays is what statistics need: category, priority, channel, status, disposition,
timestamps, the offer history, the event kinds, the grid (and the report facts of
reports/, which hold nothing personal). Notes, positions, follow-up texts and what a
call-taker wrote of the caller (name, phone, address, gazetteer place) are blanked;
resident accounts with nothing left inside the retention period
lose their name, phone and device id.
"""
from __future__ import annotations

from collections.abc import Sequence

from dispatch.store import FINAL_SQL
from infra.db import Conn

# an account that reported an incident: this purge blanks its phone when its incidents go
REPORTER = "EXISTS (SELECT 1 FROM incidents i WHERE i.reporter_id = a.id)"


async def purge_incidents(conn: Conn, retention_days: int, keep: Sequence[str] = ()) -> dict[str, int]:
    """Blank closed incidents past the retention period, and the resident accounts they leave behind
    (unless one of the `keep` SQL conditions on account `a` holds, e.g. a party to a live case)."""
    ids = await conn.fetch(
        f"SELECT id FROM incidents WHERE status IN ({FINAL_SQL}) AND purged_at IS NULL"
        " AND updated_at < now() - make_interval(days => $1)", retention_days)
    ids = [r["id"] for r in ids]
    if ids:
        await conn.execute("SET LOCAL helpline.purge = 'on'")
        await conn.execute("UPDATE incidents SET note = '', lat = NULL, lon = NULL, accuracy_m = NULL,"
                           " caller_name = NULL, address = NULL, place_id = NULL,"
                           " purged_at = now() WHERE id = ANY($1::uuid[])", ids)
        await conn.execute("UPDATE incident_events SET data = data - 'text' - 'note' - 'lat' - 'lon'"
                           " - 'caller_name' - 'caller_phone' - 'address' - 'place_id'"
                           " WHERE incident_id = ANY($1::uuid[])", ids)
    keep_sql = "".join(f" AND NOT ({cond})" for cond in keep)
    residents = await conn.execute(
        """UPDATE accounts a SET name = '', phone = NULL, device_id = NULL
           WHERE a.role = 'resident' AND (a.name <> '' OR a.phone IS NOT NULL OR a.device_id IS NOT NULL)
             AND a.created_at < now() - make_interval(days => $1)
             AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.reporter_id = a.id
                             AND (i.purged_at IS NULL OR i.updated_at >= now() - make_interval(days => $1)))
             AND EXISTS (SELECT 1 FROM incidents i WHERE i.reporter_id = a.id)""" + keep_sql, retention_days)
    return {"incidents": len(ids), "residents": int(residents.split()[-1])}
