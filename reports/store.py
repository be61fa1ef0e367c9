"""SQL of the reports: one GROUP BY over incident_facts (infra/migrations/028_reports.sql) per report.

The facts are kept by the database in the transaction of each change (triggers on the incident log);
`facts_of` is the plain rule they are held equal to. A report's groups and its total are one statement
(GROUPING SETS); percentiles are PostgreSQL's `percentile_cont` (linear interpolation between the
closest ranks), which ignores incidents without the interval.
"""
from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from infra.db import Conn
from reports.rules import (
    CASE_COUNTS,
    CASE_INTERVALS,
    CASE_PERCENTILES,
    INTERVALS,
    PERCENTILES,
    PERIODS,
    Grouping,
    Query,
    ratio,
)

CLOSED_CASES = "'settled','failed','referred','withdrawn'"

_QS = "ARRAY[" + ",".join(str(q) for _, q in PERCENTILES) + "]::float8[]"


def _key(by: Grouping, tz: str) -> str:
    local = "f.created_at AT TIME ZONE '" + tz.replace("'", "''") + "'"
    # text keys in byte order (COLLATE "C"): codes and category names are ASCII, and PostgreSQL sorts "C" text
    # with abbreviated keys, which it does not for a libc locale (the grouping sort is most of a report's time)
    return {Grouping.CATEGORY: 'f.category COLLATE "C"', Grouping.GRID: "coalesce(f.grid_code, '') COLLATE \"C\"",
            Grouping.CHANNEL: 'f.channel COLLATE "C"', Grouping.AGENCY: 'f.agency COLLATE "C"',
            Grouping.DAY: f"date_trunc('day', {local})",
            Grouping.WEEK: f"date_trunc('week', {local})", Grouping.MONTH: f"date_trunc('month', {local})"}[by]


def _sets(key: str, part: str) -> tuple[str, str]:
    """(the group and total columns, the GROUP BY) of one statement with the groups and the total (`both`),
    or of the groups or the total alone."""
    if part == "groups":
        return f"{key} AS g, 0 AS total", f"GROUP BY {key}"
    if part == "total":
        return "NULL AS g, 1 AS total", ""
    return f"{key} AS g, grouping({key}) AS total", f"GROUP BY GROUPING SETS (({key}), ())"


def _incidents_sql(by: Grouping, tz: str, area: bool, part: str = "both") -> str:
    cols, group_by = _sets(_key(by, tz), part)
    return f"""
SELECT {cols},
       count(*) AS received,
       count(*) FILTER (WHERE f.escalated) AS escalated,
       count(*) FILTER (WHERE f.status = 'cancelled' AND f.disposition IS DISTINCT FROM 'false_alarm') AS cancelled,
       count(*) FILTER (WHERE f.status = 'resolved') AS resolved,
       count(*) FILTER (WHERE f.disposition = 'false_alarm') AS false_alarms,
       percentile_cont({_QS}) WITHIN GROUP (ORDER BY f.first_offer_s) AS press_to_first_offer,
       percentile_cont({_QS}) WITHIN GROUP (ORDER BY f.assigned_s) AS press_to_assigned,
       percentile_cont({_QS}) WITHIN GROUP (ORDER BY f.on_scene_s - f.assigned_s) AS assigned_to_on_scene,
       percentile_cont({_QS}) WITHIN GROUP (ORDER BY f.closed_s) FILTER (WHERE f.status = 'resolved')
           AS press_to_resolved,
       coalesce(sum(f.offers), 0) AS offers, coalesce(sum(f.offers_accepted), 0) AS offers_accepted,
       count(*) FILTER (WHERE f.assigned_s <= $3) AS in_target,
       count(*) FILTER (WHERE NOT coalesce(f.assigned_s IS NULL AND f.closed_s <= $3, false)) AS target_base
FROM incident_facts f
WHERE f.created_at >= $1 AND f.created_at < $2 {"AND f.grid_code = ANY($4::text[])" if area else ""}
{group_by}
ORDER BY total, g"""


async def _fetch(conn: Conn, sql: str, args: list[Any]) -> list[asyncpg.Record]:
    """A report's statement without JIT (compiling it costs more than it saves on a scan of this size) and
    planned for its own values: in a generic plan `grid_code = ANY($4)` is searched element by element for
    every row (an area of 500 grids: 8 s of CPU for a district's year instead of 0.14 s), where a custom
    plan hashes the array."""
    async with conn.transaction():
        await conn.execute("SET LOCAL jit = off")
        await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        return await conn.fetch(sql, *args)


def _percentiles(v: list[float] | None) -> dict[str, float | None]:
    return {name: (v[i] if v is not None else None) for i, (name, _) in enumerate(PERCENTILES)}


def _group(by: Grouping, g: Any) -> str:
    if by in PERIODS:
        return str(g.strftime("%Y-%m") if by == Grouping.MONTH else g.strftime("%Y-%m-%d"))
    return str(g)


def incident_row(by: Grouping, r: asyncpg.Record) -> dict[str, Any]:
    row: dict[str, Any] = {"group": None if r["total"] else _group(by, r["g"])}
    row.update({k: r[k] for k in ("received", "escalated", "cancelled", "resolved", "false_alarms")})
    row.update({name: _percentiles(r[name]) for name in INTERVALS})
    row.update({"offers": int(r["offers"]), "offers_accepted": int(r["offers_accepted"]),
                "offer_acceptance": ratio(r["offers_accepted"], r["offers"]),
                "offers_per_incident": ratio(r["offers"], r["received"]),
                "assigned_within_target": ratio(r["in_target"], r["target_base"])})
    return row


async def area_codes(conn: Conn, roots: list[str]) -> list[str]:
    """Every grid code under these grids (themselves included): an area, for `grid_code = ANY(...)`."""
    return [r["code"] for r in await conn.fetch("SELECT code FROM grids WHERE path && $1::text[]", roots)]


async def grid_path(conn: Conn, code: str) -> list[str] | None:
    path = await conn.fetchval("SELECT path FROM grids WHERE code = $1", code)
    return list(path) if path is not None else None


async def grid_names(conn: Conn, codes: list[str]) -> dict[str, str]:
    rows = await conn.fetch("SELECT code, name FROM grids WHERE code = ANY($1::text[])", codes)
    return {r["code"]: r["name"] for r in rows}


async def incident_report(conn: Conn, q: Query, *, tz: str, target_s: float, area: list[str] | None,
                          total_conn: Conn | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The groups (in order of their key) and the total of the incidents received in the period, within
    `area` (grid codes) unless it is None. With `total_conn`, the groups and the total are two statements
    run at once on the two connections (on two cores about half the time of one statement doing both: each
    sorts every interval of the period once, which is most of a report's cost)."""
    args: list[Any] = [q.start, q.end, float(target_s)]
    if area is not None:
        args.append(area)
    if total_conn is None:
        recs = await _fetch(conn, _incidents_sql(q.by, tz, area is not None), args)
    else:
        groups, totals = await asyncio.gather(
            _fetch(conn, _incidents_sql(q.by, tz, area is not None, "groups"), args),
            _fetch(total_conn, _incidents_sql(q.by, tz, area is not None, "total"), args))
        recs = [*groups, *totals]
    rows = [incident_row(q.by, r) for r in recs if not r["total"]]
    total = next((incident_row(q.by, r) for r in recs if r["total"]), None)
    if total is None:    # nothing at all in the period: the total of nothing
        total = incident_row(q.by, _EMPTY)
    return rows, total


_EMPTY: Any = {"total": 1, "g": None, "received": 0, "escalated": 0, "cancelled": 0, "resolved": 0,
               "false_alarms": 0, **{name: None for name in INTERVALS}, "offers": 0, "offers_accepted": 0,
               "in_target": 0, "target_base": 0}


async def facts(conn: Conn, incident_ids: list[str]) -> list[asyncpg.Record]:
    """The facts as kept (the fast path), by incident id."""
    return await conn.fetch("SELECT * FROM incident_facts WHERE incident_id = ANY($1::uuid[]) ORDER BY incident_id",
                            incident_ids)


async def facts_of(conn: Conn, incident_ids: list[str]) -> list[asyncpg.Record]:
    """The facts recomputed from the incidents' rows and whole logs (the plain rule)."""
    return await conn.fetch("SELECT * FROM incident_facts_of($1::uuid[]) ORDER BY incident_id", incident_ids)


# ---------------------------------------------------------------- cases
_CQS = "ARRAY[" + ",".join(str(q) for _, q in CASE_PERCENTILES) + "]::float8[]"


def _cases_sql(by: Grouping, tz: str, area: bool) -> str:
    """Cases are few (thousands a year, not millions): read from `cases` and their `taken` event directly.
    Taken: the first `taken` of the log (a case opened by a mediator is theirs from the start)."""
    key = _key(by, tz)
    return f"""
WITH f AS (
    SELECT c.category, c.grid_code, c.created_at, c.status, c.closed_at,
           coalesce((SELECT min(e.at) FROM case_events e WHERE e.case_id = c.id AND e.kind = 'taken'),
                    CASE WHEN c.opened_by_role = 'mediator' THEN c.created_at END) AS taken_at,
           c.overdue_since IS NOT NULL AS overdue, fb.n AS fb_n, fb.total AS fb_total,
           coalesce(ra.agency_type, c.referred_to_type, '') AS agency
    FROM cases c
    LEFT JOIN accounts ra ON ra.id = c.referred_to_agency
    LEFT JOIN LATERAL (SELECT count(score) AS n, sum(score) AS total FROM case_feedback WHERE case_id = c.id) fb
        ON true
    WHERE c.created_at >= $1 AND c.created_at < $2 {"AND c.grid_code = ANY($3::text[])" if area else ""}
)
SELECT {key} AS g, grouping({key}) AS total,
       count(*) AS filed, count(f.taken_at) AS taken,
       count(*) FILTER (WHERE f.status = 'settled') AS settled,
       count(*) FILTER (WHERE f.status = 'failed') AS failed,
       count(*) FILTER (WHERE f.status = 'referred') AS referred,
       count(*) FILTER (WHERE f.status = 'withdrawn') AS withdrawn,
       count(*) FILTER (WHERE f.overdue) AS overdue,
       coalesce(sum(f.fb_n), 0) AS satisfaction_answers,
       sum(f.fb_total)::float8 / nullif(sum(f.fb_n), 0) AS satisfaction_mean,
       percentile_cont({_CQS}) WITHIN GROUP (ORDER BY extract(epoch FROM f.taken_at - f.created_at) / 86400)
           AS days_to_take,
       percentile_cont({_CQS}) WITHIN GROUP (ORDER BY extract(epoch FROM f.closed_at - f.created_at) / 86400)
           FILTER (WHERE f.status IN ({CLOSED_CASES})) AS days_to_close
FROM f
GROUP BY GROUPING SETS (({key}), ())
ORDER BY total, g"""


def case_row(by: Grouping, r: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"group": None if r["total"] else _group(by, r["g"])}
    row.update({k: r[k] for k in CASE_COUNTS})
    row.update({"satisfaction_answers": int(r["satisfaction_answers"]), "satisfaction_mean": r["satisfaction_mean"]})
    for name in CASE_INTERVALS:
        v = r[name]
        row[name] = {p: (float(v[i]) if v is not None else None) for i, (p, _) in enumerate(CASE_PERCENTILES)}
    return row


async def case_report(conn: Conn, q: Query, *, tz: str,
                      area: list[str] | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The groups and the total of the cases filed in the period, within `area` unless it is None."""
    args: list[Any] = [q.start, q.end]
    if area is not None:
        args.append(area)
    recs = await _fetch(conn, _cases_sql(q.by, tz, area is not None), args)
    rows = [case_row(q.by, r) for r in recs if not r["total"]]
    total = next(case_row(q.by, r) for r in recs if r["total"])
    return rows, total
