"""The machine-readable API (issue 21): /api/openapi.json and /api/asyncapi.json, made from the router and
the command table, checked by real validators and against what the server really decodes."""
from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
from openapi_spec_validator import validate as validate_openapi

from handlers.apidoc import PUSHES, openapi_path
from handlers.commands import COMMANDS
from testkit.client import http

ASYNCAPI_SCHEMA = Path(__file__).resolve().parents[1] / "vendor" / "asyncapi-3.0.0.json"
REPO = Path(__file__).resolve().parents[2]


async def test_openapi_is_valid_and_lists_every_route_with_the_bodies_the_server_decodes(hl):
    st, doc = await http("GET", hl.base + "/api/openapi.json")
    assert st == 200
    validate_openapi(doc)                                # OpenAPI 3.1, by openapi-spec-validator
    assert doc["openapi"] == "3.1.0"
    registered = {(openapi_path(r.resource.canonical)[0], r.method.lower())
                  for r in hl.app.router.routes() if r.resource is not None and r.method not in ("HEAD", "*")}
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert registered == documented
    assert {"/api/help", "/api/places", "/ws", "/api/openapi.json", "/api/asyncapi.json", "/static/{path}"} \
        <= set(doc["paths"])

    # the body of POST /api/help is the struct the server decodes: what the schema refuses, the server does
    help_op = doc["paths"]["/api/help"]["post"]
    assert help_op["security"] == [{"bearer": []}]
    ref = help_op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = {**doc["components"]["schemas"][ref.rsplit("/", 1)[1]], "components": doc["components"]}
    good = {"request_id": "r-1", "category": "medical", "lat": 31.2, "lon": 121.4}
    jsonschema.validate(good, schema)
    bad = {**good, "lat": 95}
    assert not jsonschema.Draft202012Validator(schema).is_valid(bad)
    token = await hl.device_token()
    st, body = await http("POST", hl.base + "/api/help", token=token, json=bad)
    assert st == 400 and body["error"]["code"] == "bad_request" and "lat" in body["error"]["message"]
    places = doc["paths"]["/api/places"]["get"]
    assert [p["name"] for p in places["parameters"]] == ["q", "limit"] and places["parameters"][0]["required"]


async def test_asyncapi_is_valid_and_has_every_command_with_its_payload_and_answers(hl):
    st, doc = await http("GET", hl.base + "/api/asyncapi.json")
    assert st == 200
    jsonschema.Draft7Validator(json.loads(ASYNCAPI_SCHEMA.read_text(encoding="utf-8"))).validate(doc)
    assert doc["asyncapi"] == "3.0.0" and doc["channels"]["ws"]["address"] == "/ws"
    ops = doc["operations"]
    received = {op["title"] for op in ops.values() if op["action"] == "receive"}
    assert received == set(COMMANDS)
    sent = {op["title"] for op in ops.values() if op["action"] == "send"}
    assert sent == set(PUSHES)

    # a command's payload is its decoder's struct: incident.create refuses what the server refuses
    msg = doc["components"]["messages"]["incident_create"]
    schema = {**msg["payload"], "components": doc["components"]}
    v = jsonschema.Draft202012Validator(schema)
    good = {"type": "incident.create", "ref": "r1", "request_id": "c-1", "category": "medical",
            "channel": "phone", "caller": {"name": "Zhao", "phone": "+8613800138000"}, "lat": 31.2, "lon": 121.4}
    assert v.is_valid(good), list(v.iter_errors(good))
    assert not v.is_valid({**good, "type": "incident.link"})          # the type is the command's own
    assert not v.is_valid({k: x for k, x in good.items() if k != "request_id"})
    assert ops["incident_create"]["reply"]["messages"][1] == {"$ref": "#/channels/ws/messages/error"}


def test_every_push_type_the_server_sends_is_documented():
    """Every `"type": "…"` the server's code sends (apart from the answers) is one of the pushes listed."""
    sent: set[str] = set()
    for pkg in ("dispatch", "mediation", "handlers", "sms", "push", "server", "infra", "grids"):
        for f in (REPO / pkg).rglob("*.py"):
            if f.name == "apidoc.py":       # JSON Schema's "type": "object" and the like
                continue
            sent |= set(re.findall(r'"type": "([a-z_.]+)"', f.read_text(encoding="utf-8")))
    assert sent - {"ok", "error"} <= set(PUSHES), sent - {"ok", "error"} - set(PUSHES)
