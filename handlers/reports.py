"""GET /api/reports/… (contract §11, issue 16): the figures, as JSON or CSV.

Edges only: authorise by role, parse the query (reports/rules.py), settle the area (a dispatcher
limited to an area sees only it; `grid=` picks one), run the report's one statement (reports/store.py).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from handlers.apidoc import BEARER, Param, route_doc
from handlers.context import CONFIG, POOL
from handlers.http import bearer
from infra.db import Conn
from infra.errors import Forbidden
from infra.identity import Role
from reports import rules, store

INCIDENT_REPORTERS = frozenset({Role.DISPATCHER, Role.ADMIN})
CASE_REPORTERS = frozenset({Role.MEDIATOR, Role.ADMIN})
QUERY = (Param("from", "first day (YYYY-MM-DD, the city's time zone); default 30 days before `to`"),
         Param("to", "last day, included (YYYY-MM-DD); default today"),
         Param("grid", "only this area: a grid code at any level, and everything under it"),
         Param("format", "json (default) or csv (UTF-8 with BOM)"))


async def _area(conn: Conn, account: dict[str, Any], picked: str | None) -> list[str] | None:
    """The grid codes the report covers, or None for everything; Forbidden / BadRequest per rules.check_area."""
    limited = bool(account.get("area_limited"))
    own: list[str] = list(account.get("grids") or [])
    path = await store.grid_path(conn, picked) if picked is not None else None
    rules.check_area(limited, own, picked, path)
    if picked is not None:
        return await store.area_codes(conn, [picked])
    if limited:
        return await store.area_codes(conn, own)
    return None


def _answer(q: rules.Query, columns: list[str], rows: list[dict[str, Any]], total: dict[str, Any],
            meta: dict[str, Any], name: str, unit: str = "_s") -> web.Response:
    if q.csv:
        body = rules.csv_table(columns, [*rows, {**total, "group": "total"}], unit)
        return web.Response(text=body, content_type="text/csv", charset="utf-8", headers={
            "Content-Disposition": f'attachment; filename="{name}-{q.by}-{q.first_day}-{q.last_day}.csv"'})
    return web.json_response({**meta, "from": str(q.first_day), "to": str(q.last_day), "by": str(q.by),
                              "grid": q.grid, "rows": rows, "total": total})


@route_doc(auth=BEARER, answers="application/json",
           query=(*QUERY, Param("by", "category, grid, channel, day, week or month (default category)")))
async def incident_report(request: web.Request) -> web.Response:
    """Per group: incidents received, escalated, cancelled, resolved, false alarms; p50/p90/p95 seconds of
    press→first offer, press→assigned, assigned→on scene, press→resolved; offer acceptance, offers per
    incident, the share assigned within reports.assign_target_s."""
    account = await bearer(request)
    if account["role"] not in INCIDENT_REPORTERS:
        raise Forbidden("the incident report is for dispatchers and admins")
    cfg = request.app[CONFIG].reports
    tz = ZoneInfo(cfg.time_zone)
    q = rules.parse_query(request.query, today=datetime.now(tz).date(), tz=tz)
    pool = request.app[POOL]
    async with pool.acquire() as conn:
        area = await _area(conn, account, q.grid)
        # a second connection for the total, only if one is free at once: a report never waits on the pool
        # holding a connection (reports at once could otherwise take every connection and wait for each other)
        try:
            total_conn = await pool.acquire(timeout=0.05)
        except TimeoutError:
            total_conn = None
        try:
            rows, total = await store.incident_report(conn, q, tz=cfg.time_zone, target_s=cfg.assign_target_s,
                                                      area=area, total_conn=total_conn)
        finally:
            if total_conn is not None:
                await pool.release(total_conn)
        names = (await store.grid_names(conn, [r["group"] for r in rows])) if q.by == rules.Grouping.GRID else {}
    for r in rows:
        r["label"] = names.get(r["group"], r["group"])
    total["label"] = "total"
    return _answer(q, rules.incident_columns(), rows, total,
                   {"assign_target_s": cfg.assign_target_s, "time_zone": cfg.time_zone}, "incidents")


@route_doc(auth=BEARER, answers="application/json",
           query=(*QUERY, Param("by", "category, grid or month (default category)")))
async def case_report(request: web.Request) -> web.Response:
    """Per group: cases filed, taken, settled, failed, referred, withdrawn; p50/p90 days to take and to
    close."""
    account = await bearer(request)
    if account["role"] not in CASE_REPORTERS:
        raise Forbidden("the case report is for mediators and admins")
    cfg = request.app[CONFIG].reports
    tz = ZoneInfo(cfg.time_zone)
    q = rules.parse_query(request.query, today=datetime.now(tz).date(), tz=tz, groupings=rules.CASE_GROUPINGS)
    async with request.app[POOL].acquire() as conn:
        area = await _area(conn, account, q.grid)
        rows, total = await store.case_report(conn, q, tz=cfg.time_zone, area=area)
        names = (await store.grid_names(conn, [r["group"] for r in rows])) if q.by == rules.Grouping.GRID else {}
    for r in rows:
        r["label"] = names.get(r["group"], r["group"])
    total["label"] = "total"
    return _answer(q, rules.case_columns(), rows, total, {"time_zone": cfg.time_zone}, "cases", unit="")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/reports/incidents", incident_report)
    app.router.add_get("/api/reports/cases", case_report)
