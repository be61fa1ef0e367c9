"""The edges refuse bad input clearly and never half-write: WebSocket frames, HTTP bodies, health, metrics."""
from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from handlers.context import ADMISSION, TOKENS
from testkit.accounts import Front
from testkit.client import http
from testkit.geo import near


async def raw_ws(hl: Front, token: str | None = None) -> ClientConnection:
    ws = await websockets.connect(hl.ws_url, max_size=None)
    if token:
        await ws.send(json.dumps({"type": "hello", "token": token}))
        welcome = json.loads(await ws.recv())
        assert welcome["type"] == "welcome"
    return ws


async def test_hello_is_required_and_checked(hl):
    for first in ("not json", json.dumps({"type": "ping", "ref": "1"}),
                  json.dumps({"type": "hello", "token": "abc.def.ghi"}), json.dumps({"type": "hello"})):
        ws = await websockets.connect(hl.ws_url)
        await ws.send(first)
        with pytest.raises(websockets.ConnectionClosed) as e:
            await asyncio.wait_for(ws.recv(), 5)
        assert e.value.rcvd is not None and e.value.rcvd.code == 4401


async def test_token_of_a_deleted_or_other_deployment_is_refused(hl):
    from infra.auth import TokenService

    other = TokenService("another-secret-" + "z" * 40, "helpline", "helpline", 60).issue(str(uuid.uuid4()), "admin")
    ws = await websockets.connect(hl.ws_url)
    await ws.send(json.dumps({"type": "hello", "token": other}))
    with pytest.raises(websockets.ConnectionClosed) as e:
        await ws.recv()
    assert e.value.rcvd is not None and e.value.rcvd.code == 4401
    ghost = hl.app[TOKENS].issue(str(uuid.uuid4()), "dispatcher")
    ws = await websockets.connect(hl.ws_url)
    await ws.send(json.dumps({"type": "hello", "token": ghost}))
    with pytest.raises(websockets.ConnectionClosed) as e:
        await ws.recv()
    assert e.value.rcvd is not None and e.value.rcvd.code == 4401


async def test_bad_frames_get_bad_request_and_the_connection_stays(hl):
    c = await hl.resident()
    ws = c.ws
    for frame, ref in [("{not json", None), (json.dumps([1, 2]), None), (json.dumps({"ref": "x"}), None),
                       (json.dumps({"type": "help.request"}), None),
                       (json.dumps({"type": "nope", "ref": "u1"}), "u1"),
                       (json.dumps({"type": "help.request", "ref": "h1", "request_id": "a", "category": "medical",
                                    "lat": 91, "lon": 0}), "h1"),
                       (json.dumps({"type": "help.request", "ref": "h2", "request_id": "a", "category": "medical",
                                    "lat": 0, "lon": 181}), "h2"),
                       (json.dumps({"type": "help.request", "ref": "h3", "request_id": "a", "category": "flood",
                                    "lat": 0, "lon": 0}), "h3"),
                       (json.dumps({"type": "help.request", "ref": "h4", "request_id": "a", "category": "medical",
                                    "lat": 0, "lon": 0, "note": "x" * 1001}), "h4"),
                       (json.dumps({"type": "help.request", "ref": "h5", "request_id": "a", "category": "medical",
                                    "lat": "north", "lon": 0}), "h5"),
                       (json.dumps({"type": "help.cancel", "ref": "c1", "incident_id": "'; DROP TABLE x"}), "c1"),
                       (json.dumps({"type": "help.request", "ref": "r" * 65}), None)]:
        await ws.send(frame)
        msg = await c.push("error", timeout=5)
        assert msg["type"] == "error" and msg["code"] == "bad_request", (frame, msg)
        assert msg["ref"] == ref, (frame, msg)
    await c.ok("help.request", request_id="still-works", category="medical", **near(0))
    conn = await asyncpg.connect(hl.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM incidents") == 1
    finally:
        await conn.close()


async def test_oversized_frame_closes_with_1009(hl):
    c = await hl.resident()
    await c.ws.send(json.dumps({"type": "help.request", "ref": "big", "note": "x" * 70000}))
    await asyncio.wait_for(c.reader, 5)
    assert c.close_code == 1009


async def test_wrong_role_and_not_yours_are_forbidden(hl):
    resident = await hl.resident()
    medic = await hl.user("responder", skills=["medical"])
    disp = await hl.user("dispatcher")
    mediator = await hl.user("mediator")
    await resident.error("queue.watch", "forbidden")
    await resident.error("duty.start", "forbidden", **near(0))
    await medic.error("help.request", "forbidden", request_id="x", category="medical", **near(0))
    await disp.error("offer.accept", "forbidden", offer_id=str(uuid.uuid4()))
    await mediator.error("incident.assign", "forbidden", incident_id=str(uuid.uuid4()), responder_id=str(uuid.uuid4()))
    await medic.ok("duty.start", **near(0.001))
    inc = (await resident.ok("help.request", request_id="y", category="medical", **near(0)))["incident"]
    offer = await medic.push("offer")
    other_medic = await hl.user("responder", skills=["medical"])
    await other_medic.error("offer.accept", "forbidden", offer_id=offer["offer_id"])
    await other_medic.error("incident.progress", "forbidden", incident_id=inc["id"], status="en_route")
    stranger = await hl.resident()
    await stranger.error("help.cancel", "forbidden", incident_id=inc["id"])
    await stranger.error("incident.events", "forbidden", incident_id=inc["id"])
    await medic.error("offer.accept", "not_found", offer_id=str(uuid.uuid4()))


async def test_http_errors_are_json(hl):
    st, body = await http("POST", hl.base + "/api/auth/login", json={"username": "nobody", "password": "x" * 10})
    assert st == 401 and body["error"]["code"] == "unauthorized"
    await hl.add_user("staff1", "dispatcher")
    st, body = await http("POST", hl.base + "/api/auth/login", json={"username": "staff1", "password": "wrong-pass"})
    assert st == 401
    st, body = await http("POST", hl.base + "/api/auth/login", json={"username": "staff1", "password": "Pw-123456!"})
    assert st == 200 and body["account"]["role"] == "dispatcher" and "password_hash" not in body["account"]
    st, body = await http("POST", hl.base + "/api/auth/login", data="{oops",
                          headers={"Content-Type": "application/json"})
    assert st == 400 and body["error"]["code"] == "bad_request"
    st, body = await http("POST", hl.base + "/api/auth/device", json={"device_id": "x"})
    assert st == 400
    st, body = await http("POST", hl.base + "/api/help", json={"request_id": "a"})
    assert st == 401 and body["error"]["code"] == "unauthorized"
    token = await hl.device_token()
    st, body = await http("POST", hl.base + "/api/help", token=token, data="x" * 70000)
    assert st == 413 and body["error"]["code"] == "bad_request"
    st, body = await http("POST", hl.base + "/api/help", token=token,
                          json={"request_id": "a", "category": "medical", "lat": 100, "lon": 0})
    assert st == 400
    st, body = await http("GET", hl.base + "/api/incidents/not-a-uuid", token=token)
    assert st == 404 and body["error"]["code"] == "not_found"
    st, body = await http("GET", hl.base + "/api/incidents/" + str(uuid.uuid4()), token=token)
    assert st == 404
    staff = await hl.login("staff1")
    st, body = await http("POST", hl.base + "/api/help", token=staff,
                          json={"request_id": "a", "category": "medical", "lat": 1, "lon": 1})
    assert st == 403 and body["error"]["code"] == "forbidden"


async def test_health_ready_and_metrics(hl):
    assert await http("GET", hl.base + "/healthz") == (200, {"status": "ok"})
    st, body = await http("GET", hl.base + "/readyz")
    assert st == 200
    assert body["status"] == "ready" and body["redis"].startswith("primary ")     # its address or socket path
    medic = await hl.user("responder", skills=["medical"])
    await medic.ok("duty.start", **near(0.001))
    resident = await hl.resident()
    await resident.ok("help.request", request_id="m", category="medical", **near(0))
    st, text = await http("GET", hl.base + "/metrics")
    assert st == 200
    assert 'helpline_incidents{status="offered"} 1.0' in text
    assert 'helpline_ws_connections{role="resident"} 1.0' in text
    assert "helpline_press_to_offer_seconds_count 1.0" in text
    assert 'helpline_incidents_created_total{channel="ws"} 1.0' in text


async def test_no_hello_within_10_s_closes_with_4401(hl):
    ws = await websockets.connect(hl.ws_url)
    t0 = asyncio.get_running_loop().time()
    with pytest.raises(websockets.ConnectionClosed) as e:
        await asyncio.wait_for(ws.recv(), 20)
    assert e.value.rcvd is not None and e.value.rcvd.code == 4401
    assert asyncio.get_running_loop().time() - t0 >= 9.5


@pytest.mark.config(server_max_commands_in_flight=1, server_max_commands_waiting=1)
async def test_an_overloaded_node_answers_unavailable_at_once_and_loses_nothing(hl):
    """Admission control: with the one slot busy and the one place in line taken, a help request is told
    `unavailable` at once (nothing written); a re-send with the same request_id goes through later."""
    adm = hl.app[ADMISSION]
    await adm.__aenter__()                                   # the node's only slot, held by "someone"
    first, second = await hl.resident(), await hl.resident()
    waiting = asyncio.create_task(first.call("help.request", request_id="w", category="other", **near(0)))
    for _ in range(100):
        if adm.waiting:
            break
        await asyncio.sleep(0.01)
    assert adm.waiting == 1
    shed = await second.call("help.request", request_id="s", category="other", **near(0))
    assert shed["type"] == "error" and shed["code"] == "unavailable"
    assert (await second.call("ping"))["type"] == "ok"      # cheap commands are never held back
    await adm.__aexit__(None, None, None)
    assert (await waiting)["type"] == "ok"
    again = await second.ok("help.request", request_id="s", category="other", **near(0))
    conn = await asyncpg.connect(hl.database_url)
    try:
        rows = await conn.fetch("SELECT request_id FROM incidents ORDER BY created_at")
    finally:
        await conn.close()
    assert [r["request_id"] for r in rows] == ["w", "s"] and again["incident"]["status"] in ("escalated", "offered")
    st, body = await http("GET", hl.base + "/metrics")
    assert "helpline_ws_commands_shed_total 1.0" in body
