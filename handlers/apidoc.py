"""Machine-readable API documents made from what the server really runs (issue 21).

`GET /api/openapi.json`: OpenAPI 3.1 of every route registered on the application's router (the
router is walked, so a route cannot be missing), with the JSON body each one decodes: the msgspec
struct named by `@route_doc(body=…)` on its handler, the same struct `read_json` decodes it with.
`GET /api/asyncapi.json`: AsyncAPI 3.0 of `/ws`, one `send` operation for each command of the
command table (handlers/commands.py), its payload the struct the command is decoded with, answered by
`ok` or `error`; then what the server pushes.

JSON Schema comes from msgspec (`msgspec.json.schema_components`): the constraints (lengths,
patterns, ranges) are the ones the decoder enforces. Nothing here is written beside the types by hand
except a route's summary (its handler's docstring) and what the pushes are for.
"""
from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from handlers.registry import Command

F = TypeVar("F", bound=Callable[..., Any])
REF = "#/components/schemas/{name}"
TITLE = "helpline"
VERSION = "1"

# how a caller proves who they are, per route
BEARER, TWILIO, LOOPBACK, PUBLIC = "bearer", "twilio", "loopback", "public"
_AUTH_NOTE = {
    BEARER: "",
    TWILIO: "Signed by Twilio (X-Twilio-Signature over the URL and the form).",
    LOOPBACK: "Answers only from the node's own machine (or per its settings).",
    PUBLIC: "",
}

# what the server sends on /ws without being asked (each a `type`), with what it is for
PUSHES: dict[str, str] = {
    "welcome": "the first frame after the hello: the account, its state (duty, incidents, offers, cases)",
    "state": "a resident's or responder's state again, after a change made elsewhere",
    "session.ended": "the session was ended (logout, suspension, a newer device); the socket closes",
    "incident.updated": "an incident changed (status, responder, position, note); its full object",
    "queue.snapshot": "a dispatcher's whole queue (open incidents, on-duty responders), after queue.watch",
    "responder.updated": "an on-duty responder changed (position, status), to watching dispatchers",
    "offer": "an incident offered to this responder: accept or decline before `expires_at`",
    "offer.withdrawn": "an offer ended before an answer (`reason`: expired, taken, cancelled, preempted…)",
    "case.updated": "a mediation case changed; the receiver's own view of it",
    "chat.message": "a message in a case room this connection follows",
    "chat.gap": "messages were missed in a room: read them again from `after_seq`",
}


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    required: bool = False
    type: str = "string"


@dataclass(frozen=True)
class RouteDoc:
    body: type[msgspec.Struct] | None = None
    auth: str = PUBLIC
    query: tuple[Param, ...] = ()
    answers: str = "application/json"         # the media type of a 2xx answer
    form: bool = False                        # the body is a form (Twilio's webhooks)
    statuses: dict[int, str] = field(default_factory=dict)


def route_doc(**kw: Any) -> Callable[[F], F]:
    """What a route takes beyond its path: its body struct, auth, query parameters, answer type."""
    doc = RouteDoc(**kw)

    def mark(fn: F) -> F:
        fn.__apidoc__ = doc  # type: ignore[attr-defined]
        return fn
    return mark


def doc_of(handler: Any) -> RouteDoc:
    return getattr(handler, "__apidoc__", None) or RouteDoc()


def summary_of(handler: Any) -> str:
    text = inspect.getdoc(handler) or ""
    return text.split("\n\n")[0].replace("\n", " ").strip() or getattr(handler, "__name__", "route")


_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


def openapi_path(canonical: str) -> tuple[str, list[str]]:
    """aiohttp's `/static/{path:.+}` as OpenAPI's `/static/{path}`, and the parameter names."""
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", canonical), _PARAM.findall(canonical)


def _schemas(structs: Iterable[type[msgspec.Struct]]) -> tuple[dict[type[Any], dict[str, Any]], dict[str, Any]]:
    unique = list(dict.fromkeys(structs))
    refs, components = msgspec.json.schema_components(unique, ref_template=REF)
    return dict(zip(unique, refs)), components


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"],
                             "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}},
}


def openapi(app: web.Application) -> dict[str, Any]:
    routes = [(r.method, r.resource.canonical, r.handler) for r in app.router.routes()
              if r.resource is not None and r.method not in ("HEAD", "*")]
    bodies = [d.body for _, _, h in routes if (d := doc_of(h)).body is not None]
    refs, components = _schemas(bodies)
    paths: dict[str, dict[str, Any]] = {}
    for method, canonical, handler in sorted(routes, key=lambda r: (r[1], r[0])):
        d = doc_of(handler)
        path, names = openapi_path(canonical)
        op: dict[str, Any] = {
            "operationId": f"{method.lower()}{re.sub(r'[^A-Za-z0-9]+', '_', path)}".rstrip("_"),
            "summary": summary_of(handler),
            "parameters": [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                           for n in names]
            + [{"name": p.name, "in": "query", "required": p.required, "description": p.description,
                "schema": {"type": p.type}} for p in d.query],
            "responses": {
                "200": {"description": "done", "content": {d.answers: {"schema": {}}}},
                **{str(code): {"description": text} for code, text in d.statuses.items()},
                "default": {"description": "an error", "content": {"application/json": {"schema": ERROR_SCHEMA}}},
            },
        }
        if d.auth == BEARER:
            op["security"] = [{"bearer": []}]
        if _AUTH_NOTE[d.auth]:
            op["description"] = _AUTH_NOTE[d.auth]
        if d.body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": refs[d.body]}}}
        elif d.form:
            op["requestBody"] = {"required": True, "content": {"application/x-www-form-urlencoded": {
                "schema": {"type": "object", "additionalProperties": {"type": "string"}}}}}
        paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION,
                 "description": "The HTTP side of helpline (contract §2 and after); /ws is in /api/asyncapi.json."},
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }


def _key(type_: str) -> str:
    return type_.replace(".", "_")


def asyncapi(commands: dict[str, Command]) -> dict[str, Any]:
    refs, schemas = _schemas(c.struct for c in commands.values())
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    answers = {"ok": {"type": "object", "required": ["type", "ref"],
                      "properties": {"type": {"const": "ok"}, "ref": {"type": "string"}},
                      "additionalProperties": True},
               "error": {"type": "object", "required": ["type", "code", "message"],
                         "properties": {"type": {"const": "error"}, "ref": {"type": "string"},
                                        "code": {"type": "string"}, "message": {"type": "string"}}}}
    for name, schema in answers.items():
        messages[name] = {"name": name, "title": f"{name} (an answer)", "payload": schema}
    for type_, c in sorted(commands.items()):
        messages[_key(type_)] = {
            "name": type_, "title": type_,
            "summary": f"sent by: {', '.join(sorted(str(r) for r in c.roles))}",
            "payload": {"allOf": [refs[c.struct], {"properties": {"type": {"const": type_}}}]},
        }
        operations[_key(type_)] = {
            "action": "receive", "title": type_,     # the server receives the command
            "channel": {"$ref": "#/channels/ws"},
            "messages": [{"$ref": f"#/channels/ws/messages/{_key(type_)}"}],
            "reply": {"channel": {"$ref": "#/channels/ws"},
                      "messages": [{"$ref": "#/channels/ws/messages/ok"}, {"$ref": "#/channels/ws/messages/error"}]},
        }
    for type_, what in PUSHES.items():
        key = "push_" + _key(type_)
        messages[key] = {"name": type_, "title": type_, "summary": what,
                         "payload": {"type": "object", "required": ["type"],
                                     "properties": {"type": {"const": type_}}, "additionalProperties": True}}
        operations[key] = {"action": "send", "title": type_, "channel": {"$ref": "#/channels/ws"},
                           "messages": [{"$ref": f"#/channels/ws/messages/{key}"}]}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": TITLE, "version": VERSION,
                 "description": "helpline's WebSocket: one JSON object a frame; the first is "
                                "{type: hello, token}; commands carry `ref`, answered by ok or error with it."},
        "defaultContentType": "application/json",
        "channels": {"ws": {"address": "/ws",
                            "messages": {k: {"$ref": f"#/components/messages/{k}"} for k in messages}}},
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


async def get_openapi(request: web.Request) -> web.Response:
    """This document: OpenAPI 3.1 of every HTTP route."""
    return web.json_response(openapi(request.app))


def asyncapi_route(commands: dict[str, Command]) -> Callable[[web.Request], Any]:
    doc = asyncapi(commands)

    async def get_asyncapi(request: web.Request) -> web.Response:
        """AsyncAPI 3.0 of /ws: every command, its payload and its answers, and the pushes."""
        return web.json_response(doc)
    return get_asyncapi


def add_routes(app: web.Application, commands: dict[str, Command]) -> None:
    app.router.add_get("/api/openapi.json", get_openapi)
    app.router.add_get("/api/asyncapi.json", asyncapi_route(commands))
