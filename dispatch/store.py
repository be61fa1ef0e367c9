"""SQL for incidents, offers, responders and the event log.

Functions take an open connection (inside the caller's transaction) and
return plain dicts in the wire shape of contract §3.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from dispatch.lifecycle import Incident, Status

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

INCIDENT_SELECT = """
SELECT i.*, ra.name AS reporter_name, sa.name AS responder_name,
       (SELECT count(*) FROM incidents f WHERE f.reporter_id = i.reporter_id
        AND f.disposition = 'false_alarm') AS reporter_false_alarms
FROM incidents i
JOIN accounts ra ON ra.id = i.reporter_id
LEFT JOIN accounts sa ON sa.id = i.responder_id
"""

RESPONDER_SELECT = """
SELECT r.*, a.name FROM responders r JOIN accounts a ON a.id = r.account_id
"""


def iso(t: datetime | None) -> str | None:
    return t.isoformat().replace("+00:00", "Z") if t else None


def incident_view(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(r["id"]), "ref_no": r["ref_no"], "status": r["status"], "category": r["category"],
        "priority": r["priority"], "lat": r["lat"], "lon": r["lon"], "accuracy_m": r["accuracy_m"],
        "note": r["note"], "channel": r["channel"], "created_at": iso(r["created_at"]),
        "updated_at": iso(r["updated_at"]),
        "reporter": {"id": str(r["reporter_id"]), "name": r["reporter_name"],
                     "false_alarms": r["reporter_false_alarms"]},
        "responder": ({"id": str(r["responder_id"]), "name": r["responder_name"]}
                      if r["responder_id"] else None),
        "offer_attempts": r["offer_attempts"], "version": r["version"], "disposition": r["disposition"],
    }


def responder_view(r: asyncpg.Record, prefix: str = "") -> dict[str, Any]:
    """A responder row in wire shape; `prefix` picks columns aliased in a wider row (REPORT_SQL's r_*)."""
    def col(name: str) -> Any:
        return r[prefix + name]
    return {"id": str(col("account_id")), "name": col("name"), "skills": list(col("skills")),
            "status": col("status"), "lat": col("lat"), "lon": col("lon"), "updated_at": iso(col("updated_at"))}


def rules_view(r: asyncpg.Record) -> Incident:
    return Incident(id=str(r["id"]), status=Status(r["status"]), reporter_id=str(r["reporter_id"]),
                    responder_id=str(r["responder_id"]) if r["responder_id"] else None,
                    offer_attempts=r["offer_attempts"], has_position=r["lat"] is not None,
                    accuracy_m=r["accuracy_m"])


async def get_incident(conn: Conn, incident_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(INCIDENT_SELECT + " WHERE i.id = $1", incident_id)


async def lock_incident(conn: Conn, incident_id: str, skip_locked: bool = False) -> asyncpg.Record | None:
    """Lock the incident row: every change to an incident or its offers happens under this lock."""
    mode = "FOR UPDATE OF i SKIP LOCKED" if skip_locked else "FOR UPDATE OF i"
    return await conn.fetchrow(INCIDENT_SELECT + f" WHERE i.id = $1 {mode}", incident_id)


async def incident_by_request(conn: Conn, reporter_id: str, request_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(INCIDENT_SELECT + " WHERE i.reporter_id = $1 AND i.request_id = $2",
                               reporter_id, request_id)


Event = tuple[str, "str | None", dict[str, Any]]   # (kind, actor id, data) for the incident log

VIEW_OF_U = """
SELECT u.*, ra.name AS reporter_name, sa.name AS responder_name,
       (SELECT count(*) FROM incidents f WHERE f.reporter_id = u.reporter_id AND f.id <> u.id
        AND f.disposition = 'false_alarm')
       + (u.disposition IS NOT DISTINCT FROM 'false_alarm')::int AS reporter_false_alarms
FROM u JOIN accounts ra ON ra.id = u.reporter_id LEFT JOIN accounts sa ON sa.id = u.responder_id"""


def _event_cte(event: Event | None, first_param: int) -> tuple[str, list[Any]]:
    if event is None:
        return "", []
    kind, actor, data = event
    n = first_param
    return (f", e AS (INSERT INTO incident_events (incident_id, actor_id, kind, data)"
            f" SELECT id, ${n}::uuid, ${n + 1}, ${n + 2} FROM u)", [actor, kind, data])


async def update_incident(conn: Conn, incident_id: str, *, event: Event | None = None,
                          **fields: Any) -> asyncpg.Record:
    """Change the incident (and log the event) and return it in view shape, in one round trip.

    The statement's snapshot does not see its own update, so false alarms are counted
    without this incident and its new disposition added.
    """
    sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(fields))
    ev, ev_args = _event_cte(event, len(fields) + 2)
    row = await conn.fetchrow(
        f"WITH u AS (UPDATE incidents SET {sets}, version = version + 1, updated_at = now() WHERE id = $1"
        f" RETURNING *){ev}" + VIEW_OF_U, incident_id, *fields.values(), *ev_args)
    assert row is not None
    return row


async def insert_incident(conn: Conn, *, reporter_id: str, request_id: str, category: str, skill: str,
                          priority: int, lat: float | None, lon: float | None, accuracy_m: float | None,
                          note: str, channel: str) -> asyncpg.Record | None:
    """The new incident in view shape, its `reported` event logged; None if this reporter already
    sent this request_id."""
    ev, ev_args = _event_cte((("reported", reporter_id, {"channel": channel, "category": category})), 11)
    return await conn.fetchrow(
        """WITH u AS (INSERT INTO incidents (ref_no, reporter_id, request_id, status, category, skill, priority,
                                             lat, lon, accuracy_m, note, channel)
                      VALUES ('H-' || nextval('incident_ref_seq'), $1, $2, 'queued', $3, $4, $5, $6, $7, $8, $9, $10)
                      ON CONFLICT (reporter_id, request_id) DO NOTHING RETURNING *)""" + ev + VIEW_OF_U,
        reporter_id, request_id, category, skill, priority, lat, lon, accuracy_m, note, channel, *ev_args)


# A report and its first offer in one statement (no transaction around it, no other round trip).
# pick: the first responder of $11 (nearest first) still available; rows being claimed right now by
# another statement are skipped, and a responder claimed meanwhile fails the re-check. c: claimed.
# u: the incident, born `offered` if someone was claimed, else $12 ('escalated', or 'queued' when the
# live index was unreachable and the sweeper must carry it on). Its `reported` event, then `offered`
# or `escalated`, in that order. A request_id already used raises UniqueViolationError, so nothing
# is claimed for a duplicate.
REPORT_SQL = """
WITH pick AS (
    SELECT r.account_id FROM unnest($11::uuid[]) WITH ORDINALITY AS x(id, ord)
    JOIN responders r ON r.account_id = x.id
    WHERE r.status = 'available'
    ORDER BY x.ord LIMIT 1
    FOR UPDATE OF r SKIP LOCKED
), c AS (
    UPDATE responders r SET status = 'offered', updated_at = now() FROM pick
    WHERE r.account_id = pick.account_id AND r.status = 'available'
    RETURNING r.*
), u AS (
    INSERT INTO incidents (ref_no, reporter_id, request_id, status, category, skill, priority,
                           lat, lon, accuracy_m, note, channel, offer_attempts)
    SELECT 'H-' || nextval('incident_ref_seq'), $1, $2, CASE WHEN c.account_id IS NULL THEN $12 ELSE 'offered' END,
           $3, $4, $5, $6, $7, $8, $9, $10, CASE WHEN c.account_id IS NULL THEN 0 ELSE $13::int END
    FROM (SELECT 1) one LEFT JOIN c ON true
    RETURNING *
), o AS (
    INSERT INTO offers (id, incident_id, responder_id, attempt, expires_at)
    SELECT $14::uuid, u.id, c.account_id, $13::int, $15 FROM u, c
    RETURNING *
), e AS (
    INSERT INTO incident_events (incident_id, actor_id, kind, data)
    SELECT u.id, ev.actor_id, ev.kind, ev.data FROM u CROSS JOIN LATERAL (
        SELECT 1 AS ord, $1::uuid AS actor_id, 'reported' AS kind, $16::jsonb AS data
        UNION ALL
        SELECT 2, NULL, 'offered', jsonb_build_object('responder_id', c.account_id::text, 'offer_id', $14::uuid::text,
                                                      'attempt', $13::int) FROM c
        UNION ALL
        SELECT 2, NULL, 'escalated', jsonb_build_object('reason', $17::text) WHERE u.status = 'escalated'
    ) ev ORDER BY ev.ord
)
SELECT v.*, o.id AS offer_id, o.expires_at AS offer_expires_at,
       c.account_id AS r_account_id, c.skills AS r_skills, c.status AS r_status, c.lat AS r_lat, c.lon AS r_lon,
       c.updated_at AS r_updated_at, rn.name AS r_name
FROM (""" + VIEW_OF_U + """) v LEFT JOIN o ON true LEFT JOIN c ON true LEFT JOIN accounts rn ON rn.id = c.account_id
"""


async def report(conn: Conn, *, reporter_id: str, request_id: str, category: str, skill: str, priority: int,
                 lat: float | None, lon: float | None, accuracy_m: float | None, note: str, channel: str,
                 offer_to: list[str], otherwise: str, reason: str, attempt: int, offer_id: str,
                 expires_at: datetime) -> asyncpg.Record:
    """Insert the incident and make its first offer to the first of `offer_to` still available, else
    give it status `otherwise` (escalated with `reason`, or queued); one row: the incident in view
    shape plus offer_id / offer_expires_at and the claimed responder's r_* columns (NULL if none)."""
    row = await conn.fetchrow(
        REPORT_SQL, reporter_id, request_id, category, skill, priority, lat, lon, accuracy_m, note, channel,
        offer_to, otherwise, attempt, offer_id, expires_at, {"channel": channel, "category": category}, reason)
    assert row is not None
    return row


async def log_event(conn: Conn, incident_id: str, actor_id: str | None, kind: str, **data: Any) -> None:
    await conn.execute("INSERT INTO incident_events (incident_id, actor_id, kind, data) VALUES ($1, $2, $3, $4)",
                       incident_id, actor_id, kind, data)


async def events(conn: Conn, incident_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT e.id, e.at, e.kind, e.data, e.actor_id, a.name, a.role FROM incident_events e
           LEFT JOIN accounts a ON a.id = e.actor_id WHERE e.incident_id = $1 ORDER BY e.id""", incident_id)
    return [{"id": r["id"], "at": iso(r["at"]), "kind": r["kind"], "data": r["data"],
             "actor": {"id": str(r["actor_id"]), "name": r["name"], "role": r["role"]} if r["actor_id"] else None}
            for r in rows]


async def pending_offer_for_incident(conn: Conn, incident_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM offers WHERE incident_id = $1 AND state = 'pending'", incident_id)


async def pending_offer_for_responder(conn: Conn, responder_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM offers WHERE responder_id = $1 AND state = 'pending'", responder_id)


async def candidate_states(conn: Conn, incident_id: str, ids: list[str]) -> tuple[dict[str, str], set[str]]:
    """(status of each candidate, the candidates already offered this incident), in one round trip."""
    rows = await conn.fetch(
        "SELECT r.account_id, r.status, EXISTS (SELECT 1 FROM offers o WHERE o.incident_id = $1"
        " AND o.responder_id = r.account_id) AS offered FROM responders r WHERE r.account_id = ANY($2::uuid[])",
        incident_id, ids)
    return ({str(r["account_id"]): r["status"] for r in rows},
            {str(r["account_id"]) for r in rows if r["offered"]})


async def claim_and_offer(conn: Conn, incident_id: str, responder_id: str, attempt: int,
                          expires_at: datetime) -> asyncpg.Record | None:
    """available → offered and the offer row, atomically; None if someone else claimed the responder first."""
    return await conn.fetchrow(
        """WITH c AS (UPDATE responders SET status = 'offered', updated_at = now()
                      WHERE account_id = $2 AND status = 'available' RETURNING account_id)
           INSERT INTO offers (incident_id, responder_id, attempt, expires_at)
           SELECT $1, c.account_id, $3, $4 FROM c RETURNING *""",
        incident_id, responder_id, attempt, expires_at)


async def set_responder_status(conn: Conn, responder_id: str, status: str, only_if: tuple[str, ...] = ()
                               ) -> asyncpg.Record | None:
    """Set the status (optionally only from the given ones); the responder row after, or None if unchanged."""
    if only_if:
        done = await conn.fetchval(
            "UPDATE responders SET status = $2, updated_at = now() WHERE account_id = $1"
            " AND status = ANY($3::text[]) RETURNING 1", responder_id, status, list(only_if))
    else:
        done = await conn.fetchval("UPDATE responders SET status = $2, updated_at = now() WHERE account_id = $1"
                                   " RETURNING 1", responder_id, status)
    return await get_responder(conn, responder_id) if done else None


async def get_responder(conn: Conn, responder_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(RESPONDER_SELECT + " WHERE r.account_id = $1", responder_id)


async def end_offer(conn: Conn, offer_id: str, state: str, reason: str) -> None:
    await conn.execute("UPDATE offers SET state = $2, reason = $3, answered_at = now() WHERE id = $1",
                       offer_id, state, reason)


async def open_incidents(conn: Conn) -> list[dict[str, Any]]:
    rows = await conn.fetch(INCIDENT_SELECT + " WHERE i.status NOT IN ('resolved','cancelled')"
                            " ORDER BY i.priority, i.created_at")
    return [incident_view(r) for r in rows]


async def on_duty(conn: Conn) -> list[dict[str, Any]]:
    rows = await conn.fetch(RESPONDER_SELECT + " WHERE r.status <> 'off_duty' ORDER BY a.name")
    return [responder_view(r) for r in rows]
