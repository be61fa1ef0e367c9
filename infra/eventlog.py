"""The append-only event logs of incidents and cases, read the same way (the tables differ by owner only)."""
from __future__ import annotations

from typing import Any, Literal

from infra.db import Conn
from infra.formats import iso

# log table → the column naming what the event belongs to (the two tables refuse UPDATE and DELETE)
LOGS: dict[str, str] = {"incident_events": "incident_id", "case_events": "case_id"}


async def read(conn: Conn, table: Literal["incident_events", "case_events"], owner_id: str) -> list[dict[str, Any]]:
    """One incident's or case's events, oldest first: {id, at, kind, data, actor {id, name, role} | null}."""
    rows = await conn.fetch(
        f"""SELECT e.id, e.at, e.kind, e.data, e.actor_id, a.name, a.role FROM {table} e
            LEFT JOIN accounts a ON a.id = e.actor_id WHERE e.{LOGS[table]} = $1 ORDER BY e.id""", owner_id)
    return [{"id": r["id"], "at": iso(r["at"]), "kind": r["kind"], "data": r["data"],
             "actor": {"id": str(r["actor_id"]), "name": r["name"], "role": r["role"]} if r["actor_id"] else None}
            for r in rows]
