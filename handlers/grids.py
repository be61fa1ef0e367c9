"""GET /api/grids (contract §9): the city's grids as GeoJSON for the dispatch page's map.

Edges only: authorise by role, read the open incidents per grid (dispatch) and the grids with them
(grids/store.py builds the whole FeatureCollection in PostgreSQL).
"""
from __future__ import annotations

from aiohttp import web

from dispatch import store as dispatch_store
from dispatch.access import area_of
from grids import rules
from grids import store as grids_store
from handlers.apidoc import BEARER, Param, route_doc
from handlers.context import POOL
from handlers.http import bearer
from infra.errors import BadRequest, Forbidden
from infra.identity import Role

# who may read the map: the staff who watch incidents and cases, and the front desk
GRID_READERS = frozenset({Role.DISPATCHER, Role.MEDIATOR, Role.ADMIN, Role.CLERK})


@route_doc(auth=BEARER, answers="application/geo+json",
           query=(Param("level", "only grids of this level: district, street, community or grid"),))
async def get_grids(request: web.Request) -> web.Response:
    """A FeatureCollection of every grid (`?level=` one level), properties code, name, level, parent, path
    and `open` (open incidents in the grid or under it). A dispatcher limited to an area gets the grids of
    their area only (their grids and those under them): neither the borders nor the counts of the rest."""
    account = await bearer(request)
    if account["role"] not in GRID_READERS:
        raise Forbidden("the grids map is for dispatchers, mediators, clerks and admins")
    raw = request.query.get("level")
    try:
        level = rules.Level.parse(raw) if raw else None
    except ValueError as e:
        raise BadRequest(f"level: {e}") from None
    area = area_of(account["role"], bool(account.get("area_limited")), frozenset(account.get("grids") or ()))
    async with request.app[POOL].acquire() as conn:
        body = await grids_store.feature_collection(conn, level, await dispatch_store.open_by_grid(conn),
                                                    sorted(area.codes) if area.limited else None)
    return web.Response(text=body, content_type="application/geo+json")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/grids", get_grids)
