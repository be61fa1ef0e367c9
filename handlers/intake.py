"""Staff intake (contract §8): the gazetteer's search, and incidents a dispatcher opens for a caller.

`Intake` (dispatch/intake.py) holds nothing but the dispatch service: it is made per command.

Edges only: decode, authorise by role (handlers/commands.py for the WebSocket), call the domain
(dispatch/places_store.py, dispatch/intake.py).
"""
from __future__ import annotations

from typing import Annotated, Any

import msgspec
from aiohttp import web

from dispatch import places, places_store
from dispatch.intake import Caller, Intake
from handlers.apidoc import BEARER, Param, route_doc
from handlers.connection import Connection
from handlers.context import DISPATCH, POOL
from handlers.http import bearer
from handlers.messages import Id, Lat, Lon, Msg, RequestId
from infra.errors import BadRequest, Forbidden
from infra.identity import Role

# who may search the gazetteer: every account but a resident's
PLACE_READERS = frozenset({Role.RESPONDER, Role.DISPATCHER, Role.MEDIATOR, Role.AGENCY, Role.ADMIN})
Query = Annotated[str, msgspec.Meta(min_length=1, max_length=places.QUERY_MAX)]


class PlacesSearch(Msg, kw_only=True):
    q: Query
    limit: Annotated[int, msgspec.Meta(ge=1, le=places.LIMIT_MAX)] | None = None


class CallerFields(msgspec.Struct, kw_only=True):
    name: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    phone: Annotated[str, msgspec.Meta(max_length=32)] | None = None


class IncidentCreate(Msg, kw_only=True):
    request_id: RequestId
    category: Annotated[str, msgspec.Meta(max_length=32)]
    channel: Annotated[str, msgspec.Meta(max_length=16)]
    caller: CallerFields = msgspec.field(default_factory=CallerFields)
    lat: Lat | None = None
    lon: Lon | None = None
    place_id: Annotated[str, msgspec.Meta(max_length=places.ID_MAX)] | None = None
    address: Annotated[str, msgspec.Meta(max_length=300)] | None = None
    note: Annotated[str, msgspec.Meta(max_length=1000)] = ""


class IncidentLink(Msg, kw_only=True):
    incident_id: Id
    duplicate_of: Id


async def incident_create(ctx: Connection, msg: IncidentCreate) -> dict[str, Any]:
    return await Intake(ctx.app[DISPATCH]).create(
        ctx.who, request_id=msg.request_id, category=msg.category, channel=msg.channel,
        caller=Caller(msg.caller.name, msg.caller.phone), lat=msg.lat, lon=msg.lon, place_id=msg.place_id,
        address=msg.address, note=msg.note)


async def incident_link(ctx: Connection, msg: IncidentLink) -> dict[str, Any]:
    await ctx.app[DISPATCH].reads.check_area(ctx.who, msg.incident_id.lower(), msg.duplicate_of.lower())
    return {"incident": await Intake(ctx.app[DISPATCH]).link(ctx.who, msg.incident_id.lower(),
                                                              msg.duplicate_of.lower())}


async def _search(app: web.Application, q: str, limit: int | None) -> list[dict[str, Any]]:
    if not places.normalise(q):
        raise BadRequest("q: type part of a name or an address")
    async with app[POOL].acquire() as conn:
        return await places_store.search(conn, q, places.check_limit(limit))


async def places_search(ctx: Connection, msg: PlacesSearch) -> dict[str, Any]:
    return {"places": await _search(ctx.app, msg.q, msg.limit)}


@route_doc(auth=BEARER, query=(Param("q", "what was typed: part of a name, alias or address", True),
                              Param("limit", "at most this many places (1-50, default 10)", type="integer")))
async def get_places(request: web.Request) -> web.Response:
    """GET /api/places?q=&limit= (staff, Bearer): the answer of places.search."""
    account = await bearer(request)
    if account["role"] not in PLACE_READERS:
        raise Forbidden("the gazetteer is for staff")
    q = request.query.get("q", "")
    if not q.strip():
        raise BadRequest("q is required: part of a name or an address")
    if len(q) > places.QUERY_MAX:
        raise BadRequest(f"q: at most {places.QUERY_MAX} characters")
    raw = request.query.get("limit")
    try:
        limit = int(raw) if raw not in (None, "") else None
    except ValueError:
        raise BadRequest("limit must be a whole number") from None
    if limit is not None and not 1 <= limit <= places.LIMIT_MAX:
        raise BadRequest(f"limit must be 1-{places.LIMIT_MAX}")
    return web.json_response({"places": await _search(request.app, q, limit)})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/places", get_places)
