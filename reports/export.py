"""SQL of the export (GET /api/export/incidents, `helpline export`): closed incidents, keyset-paged by
(closed_at, id) over incident_facts, with nothing personal (no name, phone, note, position)."""
from __future__ import annotations

from typing import Any

import asyncpg

from infra.db import Conn
from infra.formats import iso
from reports.rules import ExportQuery

SELECT = """
SELECT f.*, i.ref_no, i.priority, g.name AS grid_name
FROM incident_facts f JOIN incidents i ON i.id = f.incident_id LEFT JOIN grids g ON g.code = f.grid_code
"""


def item(r: asyncpg.Record) -> dict[str, Any]:
    """One exported incident (times as datetimes: `wire` turns them into ISO 8601)."""
    def minus(a: float | None, b: float | None) -> float | None:
        return a - b if a is not None and b is not None else None
    return {"id": str(r["incident_id"]), "ref_no": r["ref_no"], "category": r["category"],
            "priority": r["priority"], "channel": r["channel"], "status": r["status"],
            "disposition": r["disposition"], "grid_code": r["grid_code"], "grid_name": r["grid_name"],
            "created_at": r["created_at"], "closed_at": r["closed_at"], "escalated": r["escalated"],
            "offers": r["offers"], "offers_accepted": r["offers_accepted"],
            "press_to_first_offer_s": r["first_offer_s"], "press_to_assigned_s": r["assigned_s"],
            "press_to_on_scene_s": r["on_scene_s"], "press_to_closed_s": r["closed_s"],
            "assigned_to_on_scene_s": minus(r["on_scene_s"], r["assigned_s"])}


def wire(it: dict[str, Any]) -> dict[str, Any]:
    return {**it, "created_at": iso(it["created_at"]), "closed_at": iso(it["closed_at"])}


async def page(conn: Conn, q: ExportQuery) -> list[dict[str, Any]]:
    """Up to q.limit closed incidents closed at or after q.since, after the cursor, oldest first."""
    after = q.after or (q.since, "00000000-0000-0000-0000-000000000000")
    rows = await conn.fetch(SELECT + " WHERE f.closed_at IS NOT NULL AND f.closed_at >= $1"
                            " AND (f.closed_at, f.incident_id) > ($2, $3::uuid)"
                            " ORDER BY f.closed_at, f.incident_id LIMIT $4", q.since, after[0], after[1], q.limit)
    return [item(r) for r in rows]


async def one(conn: Conn, incident_id: str) -> dict[str, Any] | None:
    """A closed incident, or None (unknown or still open)."""
    r = await conn.fetchrow(SELECT + " WHERE f.incident_id = $1 AND f.closed_at IS NOT NULL", incident_id)
    return item(r) if r is not None else None


# the CSV columns of `helpline export --format csv`, in order
COLUMNS = ("id", "ref_no", "category", "priority", "channel", "status", "disposition", "grid_code", "grid_name",
           "created_at", "closed_at", "escalated", "offers", "offers_accepted", "press_to_first_offer_s",
           "press_to_assigned_s", "assigned_to_on_scene_s", "press_to_on_scene_s", "press_to_closed_s")
