"""GET /api/export/incidents… (contract §11, issue 16): closed incidents for other departments.

Who: an admin's token, or an API key of scope `export` (`Authorization: Bearer hlk_…`, infra/apikeys.py;
a revoked key is 401 from its next request). What: closed incidents without personal data, paged by an
opaque cursor (reports/export.py); one incident as JSON or, asked with `Accept: application/cap+xml`,
as a CAP 1.2 alert (reports/cap.py).
"""
from __future__ import annotations

import uuid
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aiohttp import web

from handlers.apidoc import BEARER, Param, route_doc
from handlers.context import CONFIG, POOL
from handlers.http import bearer, bearer_token
from infra import apikeys
from infra.errors import Forbidden, NotFound
from infra.identity import Role
from reports import cap, export, rules

SCOPE = "export"


async def _authorise(request: web.Request) -> None:
    token = bearer_token(request)
    if token is not None and apikeys.is_key(token):
        async with request.app[POOL].acquire() as conn:
            await apikeys.check(conn, token, SCOPE)
        return
    account = await bearer(request)
    if account["role"] != Role.ADMIN:
        raise Forbidden("the export is for admins and API keys of scope export")


@route_doc(auth=BEARER, query=(
    Param("since", "closed at or after: YYYY-MM-DD (the city's day) or an ISO 8601 time", required=True),
    Param("cursor", "the `next` of the previous page"),
    Param("limit", f"incidents per page, 1 to {rules.EXPORT_MAX_PAGE} (default {rules.EXPORT_PAGE})")))
async def export_incidents(request: web.Request) -> web.Response:
    """Closed incidents, oldest closed first: `{"incidents": [...], "next": cursor or null}`; no names,
    phones, notes or positions (the grid only). An admin token or an API key of scope export."""
    await _authorise(request)
    q = rules.parse_export(request.query, ZoneInfo(request.app[CONFIG].reports.time_zone))
    async with request.app[POOL].acquire() as conn:
        items = await export.page(conn, q)
    last = items[-1] if len(items) == q.limit else None
    return web.json_response({"incidents": [export.wire(i) for i in items],
                              "next": rules.cursor(last["closed_at"], last["id"]) if last else None})


@route_doc(auth=BEARER, answers="application/json")
async def export_incident(request: web.Request) -> web.Response:
    """One closed incident as in the export, or with `Accept: application/cap+xml` a CAP 1.2 alert."""
    await _authorise(request)
    try:
        iid = str(uuid.UUID(request.match_info["id"]))
    except ValueError:
        raise NotFound("no such closed incident") from None
    async with request.app[POOL].acquire() as conn:
        it = await export.one(conn, iid)
    if it is None:
        raise NotFound("no such closed incident")
    if cap.MEDIA_TYPE in request.headers.get("Accept", ""):
        cfg = request.app[CONFIG]
        host = urlsplit(cfg.server.public_url).hostname or "helpline"
        body = cap.alert(it, sender=f"helpline@{host}", tz=ZoneInfo(cfg.reports.time_zone),
                         grid_name=it["grid_name"])
        return web.Response(body=body, content_type=cap.MEDIA_TYPE, charset="utf-8")
    return web.json_response(export.wire(it))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/export/incidents", export_incidents)
    app.router.add_get("/api/export/incidents/{id}", export_incident)
