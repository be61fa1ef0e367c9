"""Issue 20, the transport and the edges: NUL and deep nesting on every route, the session re-check,
login lockout per account and address, device-account minting per address and network, and the
pages' compression and caching. The transport deadlines and caps: test_abuse_net_transport.py."""
from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import uuid
from typing import Any

import aiohttp
import asyncpg
import pytest

from handlers.commands import COMMANDS
from testkit.accounts import PASSWORD
from testkit.client import http
from testkit.geo import near

DEEP = "[" * 1000 + "]" * 1000
NUL = "a\u0000b"


async def http_from(address: str, method: str, url: str, **kw: Any) -> tuple[int, Any]:
    """An HTTP request from another loopback address (127.0.0.0/8 is all ours)."""
    conn = aiohttp.TCPConnector(local_addr=(address, 0))
    async with aiohttp.ClientSession(connector=conn) as s, s.request(method, url, **kw) as r:
        text = await r.text()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text


async def sql(hl: Any, query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(hl.database_url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


# ---------------------------------------------------------------- #7 NUL and deep nesting
TEXT_FIELDS = {"note": NUL, "body": NUL, "summary": NUL, "client_msg_id": NUL, "name": NUL, "request_id": NUL,
               "category": "other", "lat": 31.23, "lon": 121.47}


@pytest.mark.parametrize("role", ["resident", "responder", "dispatcher", "mediator"])
async def test_nul_or_deep_nesting_in_any_frame_is_bad_request_and_the_socket_stays(hl, role):
    client = await (hl.resident() if role == "resident" else hl.user(role))
    for type_ in sorted(t for t, c in COMMANDS.items() if role in c.roles):
        ans = await client.call(type_, **TEXT_FIELDS)
        assert ans["type"] == "error" and ans["code"] == "bad_request", (type_, ans)
        # nesting as deep as the review sent, raw (json.dumps would refuse to encode it)
        await client.ws.send(json.dumps({"type": type_, "ref": f"deep-{type_}"})[:-1] + ',"x":' + DEEP + "}")
    await client.ws.send(DEEP)
    await client.ok("ping")
    # too deep for the envelope to be read: answered without a ref
    deep = [p for p in client.pushes if p.get("type") == "error"]
    assert len(deep) == 1 + sum(role in c.roles for c in COMMANDS.values())
    assert {(p["code"], p["ref"]) for p in deep} == {("bad_request", None)}
    assert not client.reader.done()
    rows = await sql(hl, "SELECT count(*) AS n FROM incidents")
    assert rows[0]["n"] == 0


async def test_http_bodies_with_nul_or_deep_nesting_are_json_400(hl):
    token = await hl.device_token()
    await hl.add_user("nul-staff", "dispatcher")
    routes = [("/api/auth/login", None, {"username": NUL, "password": "x" * 10}),
              ("/api/auth/login", None, {"username": "nul-staff", "password": NUL}),
              ("/api/auth/device", None, {"device_id": "dev-" + uuid.uuid4().hex, "x": NUL}),
              ("/api/auth/otp/request", None, {"phone": "+8613800\u00001380"}),
              ("/api/auth/otp/verify", None, {"phone": "+8613800138000", "code": NUL}),
              ("/api/help", token, {"request_id": "n1", "category": "other", "note": NUL, **near(0)}),
              ("/api/help", token, {"request_id": NUL, "category": "other", **near(0)}),
              ("/sms/simulate", None, {"from": "+8613800138000", "body": "HELP " + NUL})]
    for path, tok, body in routes:
        st, got = await http("POST", hl.base + path, token=tok, data=json.dumps(body),
                             headers={"Content-Type": "application/json"})
        assert st == 400 and got["error"]["code"] == "bad_request", (path, body, st, got)
    for path in ("/api/auth/login", "/api/auth/device", "/api/auth/otp/request", "/api/auth/otp/verify",
                 "/api/help", "/sms/simulate"):
        for tok in (None, token) if path != "/api/help" else (token,):
            st, got = await http("POST", hl.base + path, token=tok, data='{"a":' + DEEP + "}",
                                 headers={"Content-Type": "application/json"})
            assert st == 400 and got["error"]["code"] == "bad_request", (path, st, got)
    st, got = await http("GET", hl.base + "/sms/simulate/outbox?phone=%2B86138%0000")
    assert st == 400 and got["error"]["code"] == "bad_request"
    # a literal backslash-u0000 in a note is text like any other, not a NUL
    st, got = await http("POST", hl.base + "/api/help", token=token,
                         json={"request_id": "n2", "category": "other", "note": "\\u0000", **near(0)})
    assert st == 201, got
    rows = await sql(hl, "SELECT note FROM incidents")
    assert [r["note"] for r in rows] == ["\\u0000"]


async def test_a_twilio_form_with_nul_is_400_not_500(shl):
    from twilio.request_validator import RequestValidator

    url = shl.base + "/sms/inbound"
    form = {"From": "+8613800138000", "Body": "HELP\u0000fire", "MessageSid": "SM" + uuid.uuid4().hex}
    sig = RequestValidator(shl.cfg.sms.auth_token).compute_signature(url, form)
    st, got = await http("POST", url, data=form, headers={"X-Twilio-Signature": sig})
    assert st == 400 and got["error"]["code"] == "bad_request"
    st, _ = await http("GET", shl.base + "/healthz")
    assert st == 200


async def test_an_unexpected_error_is_a_json_500_over_http_and_an_answer_over_the_socket(hl):
    from handlers.context import DISPATCH

    async def broken(*a: Any, **kw: Any) -> Any:
        raise RuntimeError("a bug")

    token = await hl.device_token()
    hl.app[DISPATCH].request_help = broken    # a fault inside the domain, reached through the edges
    st, got = await http("POST", hl.base + "/api/help", token=token,
                         json={"request_id": "b1", "category": "other", **near(0)})
    assert st == 500 and got["error"]["code"] == "unavailable"
    client = await hl.connect(token)
    ans = await client.call("help.request", request_id="b2", category="other", **near(0))
    assert ans["type"] == "error"
    await client.ok("ping")


# ---------------------------------------------------------------- #6 the session re-check
@pytest.mark.config(server_session_recheck_s=1)
async def test_a_disabled_dispatcher_is_closed_within_the_period_without_redis(hl):
    await hl.add_user("rc-disp", "dispatcher")
    disp = await hl.connect(await hl.login("rc-disp"))
    await disp.ok("queue.watch")
    resident = await hl.resident()
    # the database alone changes (what `helpline user set` does when it cannot reach Redis)
    await sql(hl, "UPDATE accounts SET disabled = true, session_epoch = session_epoch + 1"
                  " WHERE username = 'rc-disp'")
    t0 = asyncio.get_running_loop().time()
    while not disp.reader.done():                 # pinging does not keep it alive
        with contextlib.suppress(Exception):
            await disp.send("ping")
        await asyncio.wait([disp.reader], timeout=0.3)
        assert asyncio.get_running_loop().time() - t0 < 4, "still open past the re-check period"
    assert disp.close_code == 1008
    seen = len(disp.pushes)
    await resident.ok("help.request", request_id="after", category="other", **near(0))
    await asyncio.sleep(0.5)
    assert len(disp.pushes) == seen


@pytest.mark.config(server_session_recheck_s=1)
async def test_a_demoted_mediator_and_a_disabled_device_account_are_closed(hl):
    await hl.add_user("rc-med", "mediator")
    med = await hl.connect(await hl.login("rc-med"))
    resident = await hl.resident()
    await sql(hl, "UPDATE accounts SET role = 'agency' WHERE username = 'rc-med'")
    await sql(hl, "UPDATE accounts SET disabled = true WHERE id = $1", uuid.UUID(resident.account_id))
    await asyncio.wait_for(med.reader, 4)
    await asyncio.wait_for(resident.reader, 4)
    assert med.close_code == 1008 and resident.close_code == 1008


async def test_a_disabled_device_account_cannot_send_one_more_help_request(hl):
    resident = await hl.resident()        # the default period (15 s): the command's own check holds
    await sql(hl, "UPDATE accounts SET disabled = true WHERE id = $1", uuid.UUID(resident.account_id))
    ans = await resident.call("help.request", request_id="dis1", category="other", **near(0))
    assert ans["type"] == "error" and ans["code"] == "unauthorized"
    await asyncio.wait_for(resident.reader, 5)
    assert resident.close_code == 1008
    rows = await sql(hl, "SELECT count(*) AS n FROM incidents")
    assert rows[0]["n"] == 0


@pytest.mark.parametrize("redis_url", ["redis://127.0.0.1:9/0", "redis+cluster://127.0.0.1:9,127.0.0.1:10"])
async def test_cli_says_when_it_could_not_tell_the_nodes(cluster, redis_url):
    import subprocess
    import sys

    from testkit.runtime import REPO

    node = await cluster.start_node()
    await node.add_user("cli-unreach", "dispatcher")
    env = dict(cluster.env, HELPLINE_REDIS_URL=redis_url)     # nothing listens there
    r = subprocess.run([sys.executable, "-m", "server.cli", "user", "set", "cli-unreach", "--disable"], env=env,
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "could not tell the nodes at once" in r.stderr and "15 s" in r.stderr


# ---------------------------------------------------------------- login lockout
async def test_wrong_passwords_lock_the_pair_not_the_account(hl):
    await hl.add_user("lock1", "dispatcher")
    url = hl.base + "/api/auth/login"
    for _ in range(10):
        st, _ = await http("POST", url, json={"username": "lock1", "password": "guess-guess"})
        assert st == 401
    st, body = await http("POST", url, json={"username": "lock1", "password": PASSWORD})
    assert st == 429 and body["error"]["code"] == "rate_limited"
    # the owner, from elsewhere, still gets in
    st, body = await http_from("127.0.0.2", "POST", url, json={"username": "lock1", "password": PASSWORD})
    assert st == 200, body


async def test_the_account_locks_at_the_higher_bar_from_many_addresses(hl):
    await hl.add_user("lock2", "dispatcher")
    url = hl.base + "/api/auth/login"
    for i in range(10):
        for _ in range(10):
            st, _ = await http_from(f"127.0.1.{i + 1}", "POST", url,
                                    json={"username": "lock2", "password": "nope-nope"})
            assert st == 401
    st, body = await http_from("127.0.2.1", "POST", url, json={"username": "lock2", "password": PASSWORD})
    assert st == 429 and body["error"]["code"] == "rate_limited"


# ---------------------------------------------------------------- device accounts per address and network
async def test_new_device_accounts_are_limited_per_address_and_network(hl):
    url = hl.base + "/api/auth/device"
    known = "dev-known-" + uuid.uuid4().hex
    sts = []
    for i in range(31):
        st, _ = await http("POST", url, json={"device_id": known if i == 0 else f"dev-a-{i}-{uuid.uuid4().hex}"})
        sts.append(st)
    assert sts == [200] * 30 + [429]
    st, body = await http("POST", url, json={"device_id": known})    # its own token again: not new
    assert st == 200
    # the same /24 from other addresses: 120 in all
    sts = []
    for i in range(3):
        for _ in range(31):
            st, _ = await http_from(f"127.0.0.{i + 2}", "POST", url, json={"device_id": "dev-n-" + uuid.uuid4().hex})
            sts.append(st)
    assert sts.count(200) == 90 and sts.count(429) == 3
    st, body = await http_from("127.0.0.9", "POST", url, json={"device_id": "dev-n-" + uuid.uuid4().hex})
    assert st == 429 and body["error"]["code"] == "rate_limited"
    st, _ = await http_from("127.0.5.9", "POST", url, json={"device_id": "dev-o-" + uuid.uuid4().hex})
    assert st == 200     # another network


# ---------------------------------------------------------------- compression and caching (issue 19)
async def test_pages_and_static_files_are_compressed_and_revalidated(hl):
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        for path in ("/", "/static/js/ws.js", "/static/app.css"):
            async with s.get(hl.base + path, headers={"Accept-Encoding": "gzip, br"}) as r:
                assert r.status == 200
                assert r.headers["Content-Encoding"] == "gzip" and r.headers["Cache-Control"] == "no-cache"
                etag = r.headers["ETag"]
                gzip.decompress(await r.read())
            async with s.get(hl.base + path, headers={"If-None-Match": etag}) as r:
                assert r.status == 304 and not await r.read()
            async with s.get(hl.base + path, headers={"Accept-Encoding": "identity"}) as r:
                assert r.status == 200 and "Content-Encoding" not in r.headers
        async with s.get(hl.base + "/static/../config.yaml") as r:
            assert r.status == 404
    token = await hl.device_token()
    st, got = await http("POST", hl.base + "/api/help", token=token,
                         json={"request_id": "gz", "category": "other", "note": "n" * 1000, **near(0)})
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        async with s.get(hl.base + f"/api/incidents/{got['incident']['id']}",
                         headers={"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"}) as r:
            assert r.status == 200 and r.headers["Content-Encoding"] == "gzip"
            assert json.loads(gzip.decompress(await r.read()))["incident"]["id"] == got["incident"]["id"]
