"""SQL of the console alarm: acknowledgements (a column of incidents) and the supervisor sweep's reads."""
from __future__ import annotations

from typing import Any

import asyncpg

from dispatch import lifecycle as lc
from dispatch.alarm import Ack, Escalation
from infra.db import Conn

SUPERVISOR_ALERTED = "supervisor_alerted"     # the incident log's record of a supervisor text
ACKNOWLEDGED = "acknowledged"                 # ... of a dispatcher's "I'm on it"

# the escalated incidents supervisors may still have to hear of, with their latest escalation: those told
# of it already and those a dispatcher took while escalated are left out here, so that however many of
# them pile up, a new escalation is always among the rows read (dispatch/alarm.py decides, on what is read).
# FOR UPDATE OF i SKIP LOCKED is appended when the rows are taken (an incident in a change is left alone).
_ESCALATIONS = f"""
SELECT i.id, i.ref_no, i.category, i.status, i.acknowledged_by, esc.at AS escalated_at, false AS alerted
FROM incidents i
CROSS JOIN LATERAL (SELECT e.id, e.at FROM incident_events e WHERE e.incident_id = i.id AND e.kind = 'escalated'
                    ORDER BY e.id DESC LIMIT 1) esc
WHERE i.status = '{lc.Status.ESCALATED}' AND ($2::uuid[] IS NULL OR i.id = ANY($2::uuid[]))
  AND NOT EXISTS (SELECT 1 FROM incident_events s WHERE s.incident_id = i.id AND s.kind = '{SUPERVISOR_ALERTED}'
                  AND s.id > esc.id)
  AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(i.acknowledged_by) a WHERE a->>'status' = 'escalated')
ORDER BY esc.at, i.id LIMIT $1"""


def acks_of(r: asyncpg.Record) -> list[Ack]:
    return [Ack.of(a) for a in r["acknowledged_by"]]


def escalation(r: asyncpg.Record) -> Escalation:
    return Escalation(str(r["id"]), r["status"], tuple(acks_of(r)), r["escalated_at"], r["alerted"])


async def escalations(conn: Conn, limit: int, ids: list[str] | None = None) -> list[asyncpg.Record]:
    """Escalated incidents nobody took and supervisors were not told of, the longest waiting first
    (`ids`: only these)."""
    return await conn.fetch(_ESCALATIONS, limit, ids)


async def lock_escalations(conn: Conn, limit: int) -> list[asyncpg.Record]:
    """Take the rows `escalations` would read, skipping locked ones; then read them again (`escalations` with
    their ids): a row another node held was released by a commit this statement's snapshot predates, and
    only a new statement sees what that node wrote (its `supervisor_alerted`)."""
    locked = await conn.fetch(_ESCALATIONS + " FOR UPDATE OF i SKIP LOCKED", limit, None)
    return await escalations(conn, limit, [str(r["id"]) for r in locked]) if locked else []


async def supervisor_phones(conn: Conn) -> list[tuple[str, str]]:
    """(account id, phone) of every supervisor who can be texted."""
    rows = await conn.fetch("SELECT id, phone FROM accounts WHERE supervisor AND phone IS NOT NULL"
                            " AND NOT disabled ORDER BY id")
    return [(str(r["id"]), str(r["phone"])) for r in rows]


async def display_name(conn: Conn, account_id: str) -> str | None:
    name: Any = await conn.fetchval("SELECT name FROM accounts WHERE id = $1", account_id)
    return str(name) if name is not None else None
