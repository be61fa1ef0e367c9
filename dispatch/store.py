"""SQL for incidents and their event log (responders and offers: dispatch/roster_store.py).

Functions take an open connection (inside the caller's transaction when there
is one) and return records, or plain dicts in the wire shape of contract §3.
Every status written into a statement comes from the enums (lifecycle.Status,
roster.ResponderStatus, offers.OfferState), never from a literal.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from dispatch import lifecycle as lc
from dispatch.offers import OfferState, Plan, Tier
from dispatch.roster import ResponderStatus
from grids.rules import GridRef
from infra import eventlog
from infra.db import Conn, sql_list
from infra.formats import iso

FINAL_SQL = sql_list(lc.Status, lc.FINAL)
FALSE_ALARM = "false_alarm"         # the disposition that makes a reporter not "known"
POSSIBLE_FLOOD = "possible_flood"   # incidents.flags: held for a dispatcher's look (docs/protocol.md)
FLOOD_HOLD = "flood_hold"           # its escalation reason
WORKING_SQL = sql_list(lc.Status, lc.WORKING)

INCIDENT_SELECT = """
SELECT i.*, ra.name AS reporter_name, ra.phone AS reporter_phone, sa.name AS responder_name,
       (SELECT count(*) FROM incidents f WHERE f.reporter_id = i.reporter_id
        AND f.disposition = 'false_alarm') AS reporter_false_alarms,
       (SELECT name FROM accounts ob WHERE ob.id = i.opened_by) AS opened_by_name,
       gr.name AS grid_name, gr.path AS grid_path
FROM incidents i
JOIN accounts ra ON ra.id = i.reporter_id
LEFT JOIN accounts sa ON sa.id = i.responder_id
LEFT JOIN grids gr ON gr.code = i.grid_code
"""


def incident_view(r: asyncpg.Record) -> dict[str, Any]:
    """The incident as everyone told of it sees it: never the reporter's phone (reporter_phone below)."""
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
        "flags": list(r["flags"]),
        "acknowledged_by": list(r["acknowledged_by"]),   # dispatchers who said "I'm on it" (dispatch/alarm.py)
        "escalation_reason": r["escalation_reason"] if r["status"] == lc.Status.ESCALATED else None,
        # staff intake (dispatch/intake.py): who opened it for a caller, the words of where, the call it joined
        "opened_by": {"id": str(r["opened_by"]), "name": r.get("opened_by_name")} if r.get("opened_by") else None,
        "caller_name": r.get("caller_name"), "address": r.get("address"), "place_id": r.get("place_id"),
        "duplicate_of": str(r["duplicate_of"]) if r.get("duplicate_of") else None,
        "grid": grid_view(r),
        # incident.refer (issue 15): the mediation case it was referred into
        "case_id": str(r["case_id"]) if r.get("case_id") else None, "case_ref": r.get("case_ref"),
    }


def grid_view(r: asyncpg.Record) -> dict[str, Any] | None:
    """The incident's grid {code, name, path} (grids.rules.GridRef.view), or None outside every grid. A grid
    a later import removed keeps its code (incidents.grid_code has no foreign key: the figures stay)."""
    code = r.get("grid_code")
    if code is None:
        return None
    path = r.get("grid_path")
    return {"code": code, "name": r.get("grid_name") or code, "path": list(path) if path is not None else [code]}


def reporter_phone(r: asyncpg.Record) -> str | None:
    """The reporter's phone, when known (an SMS reporter, an OTP-verified resident): for access.with_phone."""
    phone = r["reporter_phone"]
    return str(phone) if phone else None


def plan_of(r: asyncpg.Record) -> Plan:
    return Plan(r["radius_km"], r["max_offers"], r["offer_timeout_s"])


def rules_view(r: asyncpg.Record) -> lc.Incident:
    return lc.Incident(id=str(r["id"]), status=lc.Status(r["status"]), reporter_id=str(r["reporter_id"]),
                       responder_id=str(r["responder_id"]) if r["responder_id"] else None,
                       offer_attempts=r["offer_attempts"], has_position=r["lat"] is not None,
                       accuracy_m=r["accuracy_m"], plan=plan_of(r))


async def get_incident(conn: Conn, incident_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(INCIDENT_SELECT + " WHERE i.id = $1", incident_id)


async def lock_incident(conn: Conn, incident_id: str, skip_locked: bool = False) -> asyncpg.Record | None:
    """Lock the incident row: every change to an incident or its offers happens under this lock."""
    mode = "FOR UPDATE OF i SKIP LOCKED" if skip_locked else "FOR UPDATE OF i"
    return await conn.fetchrow(INCIDENT_SELECT + f" WHERE i.id = $1 {mode}", incident_id)


async def incident_by_request(conn: Conn, reporter_id: str, request_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(INCIDENT_SELECT + " WHERE i.reporter_id = $1 AND i.request_id = $2",
                               reporter_id, request_id)


async def incident_of_offer(conn: Conn, offer_id: str) -> asyncpg.Record | None:
    """What matching needs before the lock is taken: the incident's id, skill, position, radius and grid."""
    return await conn.fetchrow("SELECT o.incident_id AS id, i.skill, i.lat, i.lon, i.radius_km, i.grid_code"
                               " FROM offers o"
                               " JOIN incidents i ON i.id = o.incident_id WHERE o.id = $1", offer_id)


Event = tuple[str, "str | None", dict[str, Any]]   # (kind, actor id, data) for the incident log

VIEW_OF_U = """
SELECT u.*, ra.name AS reporter_name, ra.phone AS reporter_phone, sa.name AS responder_name,
       (SELECT count(*) FROM incidents f WHERE f.reporter_id = u.reporter_id AND f.id <> u.id
        AND f.disposition = 'false_alarm')
       + (u.disposition IS NOT DISTINCT FROM 'false_alarm')::int AS reporter_false_alarms,
       (SELECT name FROM accounts ob WHERE ob.id = u.opened_by) AS opened_by_name,
       gr.name AS grid_name, gr.path AS grid_path
FROM u JOIN accounts ra ON ra.id = u.reporter_id LEFT JOIN accounts sa ON sa.id = u.responder_id
LEFT JOIN grids gr ON gr.code = u.grid_code"""


async def update_incident(conn: Conn, incident_id: str, *, event: Event | None = None,
                          **fields: Any) -> asyncpg.Record:
    """Change the incident (and log the event) and return it in view shape, in one round trip.

    The statement's snapshot does not see its own update, so false alarms are counted
    without this incident and its new disposition added.
    """
    sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(fields))
    args: list[Any] = [incident_id, *fields.values()]
    ev = ""
    if event is not None:
        n = len(args) + 1
        ev = (f", e AS (INSERT INTO incident_events (incident_id, actor_id, kind, data)"
              f" SELECT id, ${n}::uuid, ${n + 1}, ${n + 2} FROM u)")
        args += [event[1], event[0], event[2]]
    row = await conn.fetchrow(
        f"WITH u AS (UPDATE incidents SET {sets}, version = version + 1, updated_at = now() WHERE id = $1"
        f" RETURNING *){ev}" + VIEW_OF_U, *args)
    assert row is not None
    return row


# A report and its first offer in one statement (no transaction around it, no other round trip).
# pick: the first responder of $11 (nearest first) still available; rows being claimed right now by
# another statement are skipped, and a responder claimed meanwhile fails the re-check. c: claimed.
# u: the incident with its frozen plan ($18-$20), born `offered` if someone was claimed, else $12
# ('escalated', or 'queued' when the live index was unreachable and the sweeper must carry it on).
# Its `reported` event, then `offered` or `escalated`, in that order. A request_id already used
# raises UniqueViolationError, so nothing is claimed for a duplicate.
_GATED = ",".join(f"'{c}'" for c in sorted(lc.GATED_CHANNELS))


def _trusted_sql(incident: str, account: str) -> str:
    """SQL: whether the report `incident` by the account `account` is trusted (lifecycle.trusted_report)."""
    return (f"({incident}.channel NOT IN ({_GATED}) OR {account}.verified OR EXISTS ("
            f"SELECT 1 FROM incidents k WHERE k.reporter_id = {account}.id AND k.responder_id IS NOT NULL"
            f" AND k.disposition IS DISTINCT FROM '{FALSE_ALARM}'))")


async def untrusted_reports(conn: Conn, incident_ids: list[str]) -> set[str]:
    """Those of these incidents whose report is not trusted (lifecycle.trusted_report)."""
    rows = await conn.fetch(f"SELECT i.id FROM incidents i JOIN accounts a ON a.id = i.reporter_id"
                            f" WHERE i.id = ANY($1::uuid[]) AND NOT {_trusted_sql('i', 'a')}", incident_ids)
    return {str(r["id"]) for r in rows}


# t: whether the reporter is trusted (OTP-verified, or known: an earlier incident a responder was
# assigned to that was not closed as a false alarm). $21: the live index held the report as a possible
# flood; an untrusted reporter's held report claims no one and is born escalated `flood_hold`, flagged.
# $22: the channels an offer to each candidate goes out on ({id: ["ws", "sms", ...]}, dispatch/reach.py),
# recorded in the `offered` event. k: the reporter's row, only if ($25-$27, a WebSocket session's token id,
# epoch and role) the session still holds, and ($28) when the caller did not look at the grids, only if no
# grid's box holds the position: otherwise k is empty, nothing is claimed or written and no row comes back.
# preemptible: escalated with candidates, whether one of them holds a pending offer this report may take
# (lifecycle.may_preempt), so that the caller looks again under the lock only then (assign.after_report).
REPORT_SQL = f"""
WITH k AS (
    SELECT a.verified OR EXISTS (
        SELECT 1 FROM incidents k WHERE k.reporter_id = a.id AND k.responder_id IS NOT NULL
        AND k.disposition IS DISTINCT FROM '{FALSE_ALARM}') AS known
    FROM accounts a WHERE a.id = $1 AND ($25::text IS NULL OR (NOT a.disabled AND a.role = $27::text
        AND a.session_epoch = $26::int AND NOT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $25::text)))
    AND NOT ($28::bool AND EXISTS (SELECT 1 FROM grids g
                                   WHERE g.bbox @> box(point($7::float8, $6::float8), point($7::float8, $6::float8))))
), t AS (
    SELECT $21::bool AND NOT k.known AS held, $10 NOT IN ({_GATED}) OR k.known AS trusted FROM k
), pick AS (
    SELECT r.account_id FROM unnest($11::uuid[]) WITH ORDINALITY AS x(id, ord)
    JOIN responders r ON r.account_id = x.id
    WHERE r.status = '{ResponderStatus.AVAILABLE}' AND NOT (SELECT held FROM t)
    ORDER BY x.ord LIMIT 1
    FOR UPDATE OF r SKIP LOCKED
), c AS (
    UPDATE responders r SET status = '{ResponderStatus.OFFERED}', updated_at = now() FROM pick
    WHERE r.account_id = pick.account_id AND r.status = '{ResponderStatus.AVAILABLE}'
    RETURNING r.*
), u AS (
    INSERT INTO incidents (ref_no, reporter_id, request_id, status, category, skill, priority,
                           lat, lon, accuracy_m, note, channel, offer_attempts,
                           radius_km, max_offers, offer_timeout_s, flags, escalation_reason, grid_code)
    SELECT 'H-' || nextval('incident_ref_seq'), $1, $2,
           CASE WHEN c.account_id IS NOT NULL THEN '{lc.Status.OFFERED}'
                WHEN t.held THEN '{lc.Status.ESCALATED}' ELSE $12 END,
           $3, $4, $5, $6, $7, $8, $9, $10, CASE WHEN c.account_id IS NULL THEN 0 ELSE $13::int END,
           $18::float8, $19::int, $20::float8,
           CASE WHEN t.held THEN ARRAY['{POSSIBLE_FLOOD}'] ELSE '{{}}'::text[] END,
           CASE WHEN c.account_id IS NOT NULL THEN NULL WHEN t.held THEN '{FLOOD_HOLD}'
                WHEN $12 = '{lc.Status.ESCALATED}' THEN $17::text END,
           $23::text
    FROM t LEFT JOIN c ON true
    RETURNING *
), o AS (
    INSERT INTO offers (id, incident_id, responder_id, attempt, expires_at, tier)
    SELECT $14::uuid, u.id, c.account_id, $13::int, $15,
           COALESCE($24::jsonb ->> c.account_id::text, '{Tier.RADIUS}') FROM u, c
    RETURNING *
), e AS (
    INSERT INTO incident_events (incident_id, actor_id, kind, data)
    SELECT u.id, ev.actor_id, ev.kind, ev.data FROM u CROSS JOIN LATERAL (
        SELECT 1 AS ord, $1::uuid AS actor_id, 'reported' AS kind, $16::jsonb AS data
        UNION ALL
        SELECT 2, NULL, 'offered', jsonb_build_object('responder_id', c.account_id::text, 'offer_id', $14::uuid::text,
                                                      'attempt', $13::int,
                                                      'channels', COALESCE($22::jsonb -> c.account_id::text,
                                                                           '["ws"]'::jsonb),
                                                      'tier', COALESCE($24::jsonb ->> c.account_id::text,
                                                                       '{Tier.RADIUS}')) FROM c
        UNION ALL
        SELECT 2, NULL, 'escalated', jsonb_build_object('reason', CASE WHEN u.flags @> ARRAY['{POSSIBLE_FLOOD}']
                                                                       THEN '{FLOOD_HOLD}' ELSE $17::text END)
        WHERE u.status = '{lc.Status.ESCALATED}'
    ) ev ORDER BY ev.ord
)
SELECT v.*, o.id AS offer_id, o.expires_at AS offer_expires_at,
       c.account_id AS r_account_id, c.skills AS r_skills, c.status AS r_status, c.lat AS r_lat, c.lon AS r_lon,
       c.updated_at AS r_updated_at, rn.name AS r_name,
       CASE WHEN c.account_id IS NULL AND v.status = '{lc.Status.ESCALATED}' AND NOT t.held
                 AND cardinality($11::uuid[]) > 0 THEN EXISTS (
           SELECT 1 FROM offers ho JOIN incidents hi ON hi.id = ho.incident_id
           JOIN accounts ha ON ha.id = hi.reporter_id
           WHERE ho.responder_id = ANY($11::uuid[]) AND ho.state = '{OfferState.PENDING}'
           AND (($5::int = {lc.PREEMPTING_PRIORITY} AND hi.priority > $5::int)
                OR (t.trusted AND hi.priority >= $5::int AND NOT {_trusted_sql('hi', 'ha')})))
       ELSE false END AS preemptible
FROM ({VIEW_OF_U}) v CROSS JOIN t LEFT JOIN o ON true LEFT JOIN c ON true LEFT JOIN accounts rn ON rn.id = c.account_id
"""


async def report(conn: Conn, *, reporter_id: str, request_id: str, category: str, skill: str, priority: int,
                 lat: float | None, lon: float | None, accuracy_m: float | None, note: str, channel: str,
                 plan: Plan, offer_to: list[str], otherwise: lc.Status, reason: str, attempt: int,
                 offer_id: str, expires_at: datetime, hold: bool = False,
                 channels: dict[str, list[str]] | None = None, grid: GridRef | None = None,
                 tiers: dict[str, str] | None = None,
                 session: tuple[str, int, str] | None = None, untagged: bool = False) -> asyncpg.Record | None:
    """Insert the incident with its plan and make its first offer to the first of `offer_to` still
    available, else give it status `otherwise` (escalated with `reason`, or queued); one row: the
    incident in view shape plus offer_id / offer_expires_at and the claimed responder's r_* columns
    (NULL if none). `hold`: the live index judged it a possible flood; if its reporter is not trusted it is
    escalated `flood_hold` and flagged instead of offered. `grid`: the grid holding the position (tagged by the
    caller, grids/store.tag); `tiers`: the tier of each candidate asked from outside the radius
    (dispatch/tiers.py), recorded on the offer and its `offered` event. `session`: (token id, epoch, role) of
    the session sending it: the same statement checks it (handlers/connection.py session_problem: the account
    enabled, its role and epoch the token's, the token not revoked) and, if it no longer holds, writes nothing
    and returns None (a help request needs no round trip of its own for that check). `untagged`: the caller did
    not look at the grids (`grid` None): if a grid's box holds the position, nothing is written either and the
    answer is None (the caller tags it, grids/store.tag, and reports again)."""
    row = await conn.fetchrow(
        REPORT_SQL, reporter_id, request_id, category, skill, priority, lat, lon, accuracy_m, note, channel,
        offer_to, str(otherwise), attempt, offer_id, expires_at,
        {"channel": channel, "category": category, "plan": plan.as_data(),
         "grid": grid.code if grid is not None else None,
         "tiers": [str(t) for t in Tier] if grid is not None else [str(Tier.RADIUS)]}, reason,
        plan.radius_km, plan.max_offers, plan.offer_timeout_s, hold, channels or {},
        grid.code if grid is not None else None, tiers or {}, *(session or (None, None, None)), untagged)
    assert row is not None or session is not None or untagged
    return row


async def log_event(conn: Conn, incident_id: str, actor_id: str | None, kind: str, **data: Any) -> None:
    await conn.execute("INSERT INTO incident_events (incident_id, actor_id, kind, data) VALUES ($1, $2, $3, $4)",
                       incident_id, actor_id, kind, data)


async def events(conn: Conn, incident_id: str) -> list[dict[str, Any]]:
    return await eventlog.read(conn, "incident_events", incident_id)


async def open_incidents(conn: Conn, sets: tuple[frozenset[str], ...] = ()) -> list[dict[str, Any]]:
    """Every unfinished incident; with `sets` (access.Filter) those whose grid path meets each set."""
    meets = "".join(f" AND gr.path && ${k + 1}::text[]" for k in range(len(sets)))
    rows = await conn.fetch(INCIDENT_SELECT + f" WHERE i.status NOT IN ({FINAL_SQL}){meets}"
                            " ORDER BY i.priority, i.created_at", *(sorted(x) for x in sets))
    return [incident_view(r) for r in rows]


async def area(conn: Conn, account_id: str) -> tuple[str, bool, frozenset[str]]:
    """(role, area_limited, the grids the account belongs to) for access.area_of."""
    r = await conn.fetchrow("SELECT a.role, a.area_limited, ARRAY(SELECT code FROM account_grids g"
                            " WHERE g.account_id = a.id) AS codes FROM accounts a WHERE a.id = $1", account_id)
    if r is None:
        return "", False, frozenset()
    return str(r["role"]), bool(r["area_limited"]), frozenset(r["codes"])


async def grid_paths(conn: Conn, incident_ids: list[str]) -> dict[str, list[str] | None]:
    """The grid path of each of these incidents (None: in no grid); an id that names none is left out."""
    rows = await conn.fetch("SELECT i.id, CASE WHEN i.grid_code IS NULL THEN NULL"
                            " ELSE COALESCE(gr.path, ARRAY[i.grid_code]) END AS path FROM incidents i"
                            " LEFT JOIN grids gr ON gr.code = i.grid_code WHERE i.id = ANY($1::uuid[])", incident_ids)
    return {str(r["id"]): list(r["path"]) if r["path"] is not None else None for r in rows}


async def reported_open(conn: Conn, reporter_id: str) -> list[asyncpg.Record]:
    """A resident's unfinished reports, oldest first."""
    return await conn.fetch(INCIDENT_SELECT + f" WHERE i.reporter_id = $1 AND i.status NOT IN ({FINAL_SQL})"
                            " ORDER BY i.created_at", reporter_id)


async def latest_open_of(conn: Conn, reporter_id: str) -> tuple[str, str] | None:
    """(id, ref_no) of the reporter's latest unfinished incident, or None."""
    row = await conn.fetchrow(f"SELECT id, ref_no FROM incidents WHERE reporter_id = $1 AND status NOT IN"
                              f" ({FINAL_SQL}) ORDER BY created_at DESC LIMIT 1", reporter_id)
    return (str(row["id"]), str(row["ref_no"])) if row else None


async def assigned_working(conn: Conn, responder_id: str) -> list[asyncpg.Record]:
    """A responder's incidents in hand (assigned, en route, on scene), oldest first."""
    return await conn.fetch(INCIDENT_SELECT + f" WHERE i.responder_id = $1 AND i.status IN ({WORKING_SQL})"
                            " ORDER BY i.created_at", responder_id)


async def orphans(conn: Conn, older_than_s: float, limit: int) -> list[asyncpg.Record]:
    """Queued incidents nobody carried on for a while (their node died, or Redis was down)."""
    return await conn.fetch(
        f"SELECT id, skill, lat, lon, radius_km, grid_code FROM incidents WHERE status = '{lc.Status.QUEUED}'"
        " AND updated_at <= now() - make_interval(secs => $1) ORDER BY priority, created_at LIMIT $2",
        float(older_than_s), limit)


async def open_by_grid(conn: Conn) -> dict[str, int]:
    """{grid code: open incidents tagged with it} (the map's colours: GET /api/grids); one index scan."""
    rows = await conn.fetch("SELECT grid_code, count(*) AS n FROM incidents"
                            f" WHERE grid_code IS NOT NULL AND status NOT IN ({FINAL_SQL}) GROUP BY grid_code")
    return {r["grid_code"]: r["n"] for r in rows}
