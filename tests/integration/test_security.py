"""Tokens, sessions, brute-force limits, origins, headers, audit and purge (issue 7)."""
from __future__ import annotations

import asyncio
import json
import time
import uuid

import asyncpg
import pytest
import websockets
from jose import jwt
from websockets.typing import Origin

from infra import config as config_mod
from infra.auth import ALGORITHM, TokenService, key_id
from infra.errors import Unauthorized
from testkit.accounts import SECRET, Front
from testkit.client import http
from testkit.geo import near


async def sql(hl: Front, query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(hl.database_url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def hello_close_code(hl: Front, token: str) -> int | None:
    ws = await websockets.connect(hl.ws_url)
    await ws.send(json.dumps({"type": "hello", "token": token}))
    try:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert msg["type"] == "welcome"
        await ws.close()
        return None
    except websockets.ConnectionClosed as e:
        assert e.rcvd is not None, "closed without a close frame"
        return e.rcvd.code


def claims(**over: object) -> dict[str, object]:
    now = int(time.time())
    c = {"sub": str(uuid.uuid4()), "role": "dispatcher", "ep": 0, "iss": "helpline", "aud": "helpline",
         "iat": now, "nbf": now, "exp": now + 60, "jti": uuid.uuid4().hex}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def test_jose_is_used_safely():
    ts = TokenService(SECRET, "helpline", "helpline", 60)
    good = ts.issue("acc", "resident")
    assert ts.decode(good).account_id == "acc"
    kid = {"kid": key_id(SECRET)}
    for bad in [
        jwt.encode(claims(exp=None), SECRET, algorithm=ALGORITHM, headers=kid),
        jwt.encode(claims(aud=None), SECRET, algorithm=ALGORITHM, headers=kid),
        jwt.encode(claims(iss="someone-else"), SECRET, algorithm=ALGORITHM, headers=kid),
        jwt.encode(claims(sub=None), SECRET, algorithm=ALGORITHM, headers=kid),
        jwt.encode(claims(exp=int(time.time()) - 120), SECRET, algorithm=ALGORITHM, headers=kid),
        jwt.encode(claims(nbf=int(time.time()) + 600), SECRET, algorithm=ALGORITHM, headers=kid),
        jwt.encode(claims(role="superuser"), SECRET, algorithm=ALGORITHM, headers=kid),
        jwt.encode(claims(), SECRET, algorithm="HS512", headers=kid),
        jwt.encode(claims(), "other-secret-" + "q" * 40, algorithm=ALGORITHM, headers=kid),
        jwt.encode(claims(), SECRET, algorithm=ALGORITHM),                    # no kid
        good.rsplit(".", 1)[0] + ".",                                         # signature stripped
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + good.split(".")[1] + ".",   # alg none
        "", "x" * 5000, "a.b.c",
    ]:
        with pytest.raises(Unauthorized):
            ts.decode(bad)
    # nbf honoured with a small leeway (clock skew)
    ts.decode(jwt.encode(claims(nbf=int(time.time()) + 10), SECRET, algorithm=ALGORITHM, headers=kid))


def test_algorithm_confusion_with_a_public_key_is_refused():
    """An RS256 token, and an HS256 token MACed with a public key as the secret, are both refused."""
    import base64
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    priv_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key_id(SECRET)}).encode())
    body = b64(json.dumps(claims()).encode())
    mac = b64(hmac.new(pem.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest())
    rs256 = jwt.encode(claims(), priv_pem, algorithm="RS256", headers={"kid": key_id(SECRET)})
    ts = TokenService(SECRET, "helpline", "helpline", 60)
    for forged in (f"{header}.{body}.{mac}", rs256):
        with pytest.raises(Unauthorized):
            ts.decode(forged)


def test_secret_rotation_keeps_old_tokens_valid_only_while_listed():
    old, new = "old-secret-" + "o" * 40, "new-secret-" + "n" * 40
    token = TokenService(old, "helpline", "helpline", 60).issue("acc", "resident")
    assert TokenService(new, "helpline", "helpline", 60, (old,)).decode(token).account_id == "acc"
    with pytest.raises(Unauthorized):
        TokenService(new, "helpline", "helpline", 60).decode(token)


def test_production_refuses_the_sample_secret():
    with pytest.raises(config_mod.ConfigError, match="sample secret"):
        config_mod.load({"HELPLINE_SERVER_PRODUCTION": "true"})
    cfg = config_mod.load({"HELPLINE_SERVER_PRODUCTION": "true", "HELPLINE_AUTH_JWT_SECRET": SECRET})
    assert cfg.server.production
    with pytest.raises(config_mod.ConfigError):
        config_mod.load({"HELPLINE_AUTH_JWT_SECRET": "short"})
    with pytest.raises(config_mod.ConfigError):
        config_mod.load({"HELPLINE_DISPATCH_MAX_OFFERS": "many"})


async def test_logout_revokes_the_token_and_closes_its_connections(hl):
    await hl.add_user("lo1", "dispatcher")
    token, other = await hl.login("lo1"), await hl.login("lo1")
    live = await hl.connect(token)
    kept = await hl.connect(other)
    st, _ = await http("POST", hl.base + "/api/auth/logout", token=token)
    assert st == 204
    await asyncio.wait_for(live.reader, 5)
    assert live.close_code == 1008
    assert await hello_close_code(hl, token) == 4401
    st, body = await http("GET", hl.base + f"/api/incidents/{uuid.uuid4()}", token=token)
    assert st == 401
    await kept.ok("queue.watch")   # the account's other session goes on


async def test_role_change_or_suspension_ends_sessions_at_the_next_privileged_command(hl):
    await hl.add_user("sus1", "dispatcher")
    disp = await hl.connect(await hl.login("sus1"))
    await disp.ok("queue.watch")
    # what `helpline user set` does in the database (without the Redis announcement)
    from infra import accounts, db
    conn = await db.connect(hl.database_url)
    try:
        _, ended = await accounts.update(conn, "sus1", role="mediator")
    finally:
        await conn.close()
    assert ended
    err = await disp.call("queue.watch")
    assert err["type"] == "error" and err["code"] == "unauthorized"
    await asyncio.wait_for(disp.reader, 5)
    assert disp.close_code == 1008
    # a new login has the new role
    mediator = await hl.connect(await hl.login("sus1"))
    assert mediator.welcome["account"]["role"] == "mediator"
    await mediator.error("queue.watch", "forbidden")
    conn = await db.connect(hl.database_url)
    try:
        await accounts.update(conn, "sus1", disabled=True)
    finally:
        await conn.close()
    st, _ = await http("POST", hl.base + "/api/auth/login", json={"username": "sus1", "password": "Pw-123456!"})
    assert st == 401


async def test_cli_user_set_closes_open_connections_at_once(cluster):
    node = await cluster.start_node()
    await node.add_user("cli-sus", "dispatcher")
    disp = await node.connect(await node.login("cli-sus"))
    r = cluster.cli("user", "set", "cli-sus", "--disable")
    assert r.returncode == 0, r.stderr
    await asyncio.wait_for(disp.reader, 5)
    assert disp.close_code == 1008


async def test_login_brute_force_is_limited_per_account(hl):
    await hl.add_user("bf1", "dispatcher")
    for _ in range(10):
        st, _ = await http("POST", hl.base + "/api/auth/login", json={"username": "bf1", "password": "guess-guess"})
        assert st == 401
    st, body = await http("POST", hl.base + "/api/auth/login", json={"username": "bf1", "password": "Pw-123456!"})
    assert st == 429 and body["error"]["code"] == "rate_limited"


async def test_help_requests_are_limited_per_account_across_connections(hl):
    token = await hl.device_token()
    conns = [await hl.connect(token) for _ in range(3)]
    answers = []
    for i in range(12):
        answers.append(await conns[i % 3].call("help.request", request_id=f"rl{i}", category="other", **near(0)))
    codes = [a.get("code", "ok") for a in answers]
    assert codes[:10] == ["ok"] * 10 and codes[10:] == ["rate_limited"] * 2
    rows = await sql(hl, "SELECT count(*) AS n FROM incidents")
    assert rows[0]["n"] == 10
    # the same account over HTTP shares the limit (it is counted where reports are made, for every channel)
    st, body = await http("POST", hl.base + "/api/help", token=token,
                          json={"request_id": "rl-http", "category": "other", **near(0)})
    assert st == 429 and body["error"]["code"] == "rate_limited"


async def test_help_over_http_is_limited_per_account(hl):
    token = await hl.device_token()
    sts = []
    for i in range(11):
        st, _ = await http("POST", hl.base + "/api/help", token=token,
                           json={"request_id": f"h{i}", "category": "other", **near(0)})
        sts.append(st)
    assert sts == [201] * 10 + [429]
    rows = await sql(hl, "SELECT count(*) AS n FROM incidents")
    assert rows[0]["n"] == 10


async def test_websocket_origin_is_checked(hl):
    c = await hl.device_token()
    with pytest.raises(websockets.InvalidStatus) as e:
        await websockets.connect(hl.ws_url, origin=Origin("https://evil.example"))
    assert e.value.response.status_code == 403
    ws = await websockets.connect(hl.ws_url, origin=Origin(hl.base))
    await ws.send(json.dumps({"type": "hello", "token": c}))
    assert json.loads(await ws.recv())["type"] == "welcome"
    await ws.close()


async def test_staff_reads_are_audited(hl):
    disp = await hl.user("dispatcher")
    resident = await hl.resident()
    inc = (await resident.ok("help.request", request_id="au", category="other", **near(0)))["incident"]
    await disp.ok("queue.watch")
    await disp.ok("incident.events", incident_id=inc["id"])
    await resident.ok("incident.events", incident_id=inc["id"])   # one's own: not a staff read
    rows = await sql(hl, "SELECT actor_id::text, action, subject_type, subject_id FROM audit_log ORDER BY id")
    assert [(r["actor_id"], r["action"], r["subject_type"], r["subject_id"]) for r in rows] == [
        (disp.account_id, "watch", "queue", None), (disp.account_id, "read", "incident", inc["id"])]
    with pytest.raises(asyncpg.RaiseError):
        await sql(hl, "DELETE FROM audit_log")


async def test_false_alarms_are_visible_to_dispatchers(hl):
    disp = await hl.user("dispatcher")
    resident = await hl.resident()
    for i in range(2):
        inc = (await resident.ok("help.request", request_id=f"fa{i}", category="other", **near(0)))["incident"]
        await disp.ok("incident.close", incident_id=inc["id"], disposition="false_alarm")
    inc = (await resident.ok("help.request", request_id="fa9", category="other", **near(0)))["incident"]
    assert inc["reporter"]["false_alarms"] == 2


async def test_purge_removes_personal_data_of_old_closed_incidents(hl):
    from infra import db
    from server import purge

    disp = await hl.user("dispatcher")
    old_reporter = await hl.resident()
    old = (await old_reporter.ok("help.request", request_id="p1", category="medical", note="my flat is 12-3",
                                 **near(0)))["incident"]
    await disp.ok("incident.close", incident_id=old["id"], disposition="resolved")
    fresh = (await (await hl.resident()).ok("help.request", request_id="p2", category="fire", note="kitchen",
                                            **near(0)))["incident"]
    await sql(hl, "UPDATE incidents SET updated_at = now() - interval '200 days' WHERE id = $1", old["id"])
    await sql(hl, "UPDATE accounts SET created_at = now() - interval '300 days' WHERE id = $1",
              old_reporter.account_id)
    conn = await db.connect(hl.database_url)
    try:
        done = await purge.purge(conn, 180)
    finally:
        await conn.close()
    assert done["incidents"] == 1 and done["residents"] == 1
    (row,) = await sql(hl, "SELECT * FROM incidents WHERE id = $1", old["id"])
    assert row["note"] == "" and row["lat"] is None and row["category"] == "medical" and row["status"] == "resolved"
    (kept,) = await sql(hl, "SELECT * FROM incidents WHERE id = $1", fresh["id"])
    assert kept["note"] == "kitchen" and kept["lat"] is not None
    (acct,) = await sql(hl, "SELECT * FROM accounts WHERE id = $1", old_reporter.account_id)
    assert acct["device_id"] is None and acct["phone"] is None
    # the log still refuses ordinary rewrites
    with pytest.raises(asyncpg.RaiseError):
        await sql(hl, "UPDATE incident_events SET kind = 'x'")


async def test_pages_carry_security_headers(hl):
    import aiohttp

    async with aiohttp.ClientSession() as s:
        async with s.get(hl.base + "/") as r:
            if r.status == 404:
                pytest.skip("pages not built")
            assert "script-src 'self'" in r.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
            assert r.headers["X-Frame-Options"] == "DENY"
            assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_aiohttp_uses_its_c_parser():
    from aiohttp import http_parser

    assert http_parser.HttpRequestParser.__module__ == "aiohttp._http_parser"


async def test_purge_keeps_a_resident_who_is_party_to_an_open_case(hl):
    import mediation.purge  # noqa: F401  (registers its purge step and keep rule)
    from infra import db
    from server import purge

    disp = await hl.user("dispatcher")
    token = await hl.device_token("keep-me-1")
    resident = await hl.connect(token)
    inc = (await resident.ok("help.request", request_id="k1", category="other", **near(0)))["incident"]
    await disp.ok("incident.close", incident_id=inc["id"], disposition="resolved")
    await resident.ok("case.open", category="neighbour", summary="Noise at night", other_parties=[{"name": "B"}])
    await sql(hl, "UPDATE incidents SET updated_at = now() - interval '200 days'")
    await sql(hl, "UPDATE accounts SET created_at = now() - interval '300 days' WHERE id = $1", resident.account_id)
    conn = await db.connect(hl.database_url)
    try:
        done = await purge.purge(conn, 180)
    finally:
        await conn.close()
    assert done["incidents"] == 1 and done["residents"] == 0
    (acct,) = await sql(hl, "SELECT device_id FROM accounts WHERE id = $1", resident.account_id)
    assert acct["device_id"] == "keep-me-1"
