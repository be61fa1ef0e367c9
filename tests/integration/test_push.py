"""Web Push (contract §7, issue 12) over real HTTP, WebSockets, PostgreSQL and Redis, with pywebpush
pointed at a stand-in push service that checks each VAPID signature and decrypts each message with the
subscriber's own keys."""
from __future__ import annotations

import asyncio
import base64
import json
import uuid

import pytest

from handlers.context import PUSH
from infra import accounts, db
from push.service import PushService
from testkit.client import http, incident_is
from testkit.geo import near
from testkit.nodes import InProcess
from testkit.stack import Stack, query
from testkit.webpush import FakePushService, Subscriber

HTTP_OK = pytest.mark.config(push_allow_http_endpoints="true")


async def subscribe(app: InProcess, token: str, sub: Subscriber, lang: str | None = None) -> None:
    st, body = await http("POST", app.base + "/api/push/subscribe", token=token, json=sub.json(lang))
    assert st == 201, (st, body)


async def staff(app: InProcess, role: str, **kw: object) -> tuple[str, str]:
    """(token, account id) of a new signed-in account."""
    username = f"{role}-{uuid.uuid4().hex[:8]}"
    account_id = await app.add_user(username, role, name=username, **kw)  # type: ignore[arg-type]
    return await app.login(username), account_id


async def public_key(app: InProcess) -> str:
    st, body = await http("GET", app.base + "/api/push/key")
    assert st == 200
    key: str = body["public_key"]
    return key


async def subscriptions(app: InProcess) -> list[tuple[str, str]]:
    return [(r["endpoint"], str(r["account_id"])) for r in
            await query(app, "SELECT endpoint, account_id FROM push_subscriptions ORDER BY created_at")]


async def metrics(app: InProcess) -> str:
    st, text = await http("GET", app.base + "/metrics")
    assert st == 200
    return str(text)


# ---------------------------------------------------------------- the key and the subscriptions
async def test_the_vapid_key_is_an_uncompressed_p256_point_shared_by_the_cluster(hl, stack):
    key = await public_key(hl)
    raw = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
    assert len(raw) == 65 and raw[0] == 4 and "=" not in key
    assert await public_key(hl) == key
    other = await InProcess(stack).start()      # another node on the same database signs with the same key
    try:
        assert await public_key(other) == key
    finally:
        await other.stop()


@HTTP_OK
async def test_subscribe_unsubscribe_and_one_owner_per_endpoint(hl, pushsvc):
    medic, medic_id = await staff(hl, "responder", skills=["medical"])
    disp, disp_id = await staff(hl, "dispatcher")
    sub = pushsvc.subscriber()
    await subscribe(hl, medic, sub)
    await subscribe(hl, medic, sub)                 # the same again: still one row
    assert await subscriptions(hl) == [(sub.endpoint, medic_id)]
    await subscribe(hl, disp, sub, lang="zh-CN")    # the browser now signed in as someone else: it moves
    assert await subscriptions(hl) == [(sub.endpoint, disp_id)]
    assert [r["lang"] for r in await query(hl, "SELECT lang FROM push_subscriptions")] == ["zh"]

    # the former owner cannot drop it any more; its owner can, and again is no error
    st, _ = await http("DELETE", hl.base + "/api/push/subscribe", token=medic, json={"endpoint": sub.endpoint})
    assert st == 204 and await subscriptions(hl) == [(sub.endpoint, disp_id)]
    for _ in range(2):
        st, _ = await http("DELETE", hl.base + "/api/push/subscribe", token=disp, json={"endpoint": sub.endpoint})
        assert st == 204
    assert await subscriptions(hl) == []


@HTTP_OK
async def test_an_account_keeps_its_ten_most_recent_subscriptions(hl, pushsvc):
    token, _ = await staff(hl, "responder")
    subs = [pushsvc.subscriber() for _ in range(11)]
    for s in subs:
        await subscribe(hl, token, s)
    kept = {e for e, _ in await subscriptions(hl)}
    assert kept == {s.endpoint for s in subs[1:]}
    assert 'helpline_push_subscriptions_dropped_total{reason="limit"} 1.0' in await metrics(hl)


@HTTP_OK
async def test_bad_subscriptions_are_refused_with_a_clear_400(hl, pushsvc):
    token, _ = await staff(hl, "responder")
    good = pushsvc.subscriber().json()
    url = hl.base + "/api/push/subscribe"
    st, body = await http("POST", url, json=good)
    assert st == 401 and body["error"]["code"] == "unauthorized"
    resident = await hl.device_token()
    st, body = await http("POST", url, token=resident, json=good)
    assert st == 403 and "responders and dispatchers" in body["error"]["message"]

    def with_keys(**keys: str) -> dict[str, object]:
        return {**good, "keys": {**good["keys"], **keys}}

    cases = [
        ("not json", "not a valid JSON body"),
        ({"endpoint": good["endpoint"]}, "keys"),
        ({**good, "endpoint": "ftp://push.example/x"}, "https URL of a push service"),
        ({**good, "endpoint": "not a url"}, "https URL of a push service"),
        ({**good, "endpoint": "https://evil.example.com/push/1"}, "not on a known push service"),
        ({**good, "endpoint": "https://user:pw@fcm.googleapis.com/x"}, "credentials"),
        ({**good, "endpoint": "https://fcm.googleapis.com/" + "x" * 1100}, "1024"),
        (with_keys(p256dh="AAAA"), "uncompressed P-256 point"),
        (with_keys(p256dh="!!!notbase64!!!"), "base64url"),
        (with_keys(auth="AAAA"), "16 bytes"),
    ]
    for payload, says in cases:
        kw = {"data": payload, "headers": {"Content-Type": "application/json"}} if isinstance(payload, str) \
            else {"json": payload}
        st, body = await http("POST", url, token=token, **kw)
        assert st == 400 and body["error"]["code"] == "bad_request", (payload, st, body)
        assert says in body["error"]["message"], (says, body)
    st, body = await http("DELETE", url, token=token, json={})
    assert st == 400 and "endpoint" in body["error"]["message"]
    assert await subscriptions(hl) == []
    # a real push service's endpoint is taken
    st, _ = await http("POST", url, token=token, json={**good, "endpoint": "https://fcm.googleapis.com/fcm/send/abc"})
    assert st == 201


async def test_http_endpoints_are_refused_without_the_test_flag(hl, pushsvc):
    token, _ = await staff(hl, "dispatcher")
    st, body = await http("POST", hl.base + "/api/push/subscribe", token=token, json=pushsvc.subscriber().json())
    assert st == 400 and body["error"]["message"] == "endpoint must be https"
    assert await subscriptions(hl) == []


@HTTP_OK
async def test_logout_and_suspension_drop_the_accounts_subscriptions(hl, pushsvc):
    token, account_id = await staff(hl, "responder")
    other, other_id = await staff(hl, "dispatcher")
    await subscribe(hl, token, pushsvc.subscriber())
    await subscribe(hl, token, pushsvc.subscriber())
    await subscribe(hl, other, (keep := pushsvc.subscriber()))
    st, _ = await http("POST", hl.base + "/api/auth/logout", token=token)
    assert st == 204
    assert await subscriptions(hl) == [(keep.endpoint, other_id)]
    assert 'helpline_push_subscriptions_dropped_total{reason="logout"} 2.0' in await metrics(hl)

    username = (await query(hl, "SELECT username FROM accounts WHERE id = $1", other_id))[0]["username"]
    conn = await db.connect(hl.database_url)
    try:
        await accounts.update(conn, username, disabled=True)     # what `helpline user set --disable` does
    finally:
        await conn.close()
    assert await subscriptions(hl) == []


# ---------------------------------------------------------------- offers
@HTTP_OK
async def test_an_offer_reaches_the_responders_push_service_signed_and_encrypted(hl, pushsvc):
    username = f"medic-{uuid.uuid4().hex[:6]}"
    await hl.add_user(username, "responder", name="Medic Wang", skills=["medical"])
    token = await hl.login(username)
    en, zh = pushsvc.subscriber(), pushsvc.subscriber()
    await subscribe(hl, token, en, lang="en")
    await subscribe(hl, token, zh, lang="zh-CN")
    medic = await hl.connect(token)
    await medic.ok("duty.start", **near(0.002))

    resident = await hl.resident()
    inc = (await resident.ok("help.request", request_id="r1", category="medical", **near(0)))["incident"]
    offer = await medic.push("offer", lambda m: m["incident"]["id"] == inc["id"])

    key = await public_key(hl)
    for sub, title in ((en, f"Someone needs help — {inc['ref_no']}"), (zh, f"有人需要帮助——{inc['ref_no']}")):
        got = await sub.next()
        p = got["payload"]
        assert p["type"] == "offer" and p["offer_id"] == offer["offer_id"] and p["incident_id"] == inc["id"]
        assert p["ref_no"] == inc["ref_no"] and p["category"] == "medical" and p["priority"] == 1
        assert p["url"] == f"/responder#offer={offer['offer_id']}" and p["expires_at"] == offer["expires_at"]
        assert p["title"] == title
        assert got["vapid_key"] == key and got["claims"]["sub"].startswith("mailto:")
        assert got["urgency"] == "high"
        assert 0 < got["ttl"] <= 2          # the offer's remaining time (dispatch.offer_timeout_s is 2 in tests)
    assert pushsvc.rejected == []
    text = await metrics(hl)
    assert 'helpline_push_sent_total{kind="offer"} 2.0' in text
    assert 'helpline_offers_sent_total{channel="push"} 1.0' in text
    # the incident's log names push among the ways this offer went out (the `offered` event names ws)
    logged: list[object] = []
    for _ in range(50):
        logged = [json.loads(r["data"]) for r in await query(
            hl, "SELECT data FROM incident_events WHERE incident_id = $1 AND kind = 'offer_sent'", inc["id"])]
        if logged:
            break
        await asyncio.sleep(0.1)
    medic_id = str((await query(hl, "SELECT id FROM accounts WHERE username = $1", username))[0]["id"])
    assert logged == [{"offer_id": offer["offer_id"], "responder_id": medic_id, "channels": ["push"], "why": "push"}]


@HTTP_OK
async def test_a_gone_subscription_is_dropped(hl, pushsvc):
    token, account_id = await staff(hl, "responder", skills=["fire"])
    gone, alive = pushsvc.subscriber(status=410), pushsvc.subscriber()
    await subscribe(hl, token, gone)
    await subscribe(hl, token, alive)
    ff = await hl.connect(token)
    await ff.ok("duty.start", **near(0.001))
    resident = await hl.resident()
    await resident.ok("help.request", request_id="r1", category="fire", **near(0))
    await alive.next()
    for _ in range(50):
        if await subscriptions(hl) == [(alive.endpoint, account_id)]:
            break
        await asyncio.sleep(0.1)
    assert await subscriptions(hl) == [(alive.endpoint, account_id)]
    assert 'helpline_push_subscriptions_dropped_total{reason="gone"} 1.0' in await metrics(hl)


@HTTP_OK
async def test_a_slow_push_service_delays_no_offer_and_no_other_push(hl, pushsvc):
    slow_token, _ = await staff(hl, "responder", skills=["fire"])
    fast_token, _ = await staff(hl, "responder", skills=["police"])
    slow, fast = pushsvc.subscriber(delay_s=10), pushsvc.subscriber()
    await subscribe(hl, slow_token, slow)
    await subscribe(hl, fast_token, fast)
    ff, cop = await hl.connect(slow_token), await hl.connect(fast_token)
    await ff.ok("duty.start", **near(0.001))
    await cop.ok("duty.start", **near(0.001))
    resident = await hl.resident()

    fire = (await resident.ok("help.request", request_id="r1", category="fire", **near(0)))["incident"]
    await ff.push("offer", lambda m: m["incident"]["id"] == fire["id"])
    while pushsvc.posts == 0:                   # the slow push service has the fire offer and sits on it
        await asyncio.sleep(0.02)
    police = (await resident.ok("help.request", request_id="r2", category="police", **near(0)))["incident"]
    assert police["status"] == "offered"
    await cop.push("offer", lambda m: m["incident"]["id"] == police["id"])
    got = await fast.next()
    assert got["payload"]["incident_id"] == police["id"]
    assert slow.received == []                  # still waiting on the slow one: nothing queued behind it


# ---------------------------------------------------------------- dispatchers
async def dispatchers(app: InProcess, pushsvc: FakePushService) -> tuple[Subscriber, Subscriber]:
    en, zh = pushsvc.subscriber(), pushsvc.subscriber()
    await subscribe(app, (await staff(app, "dispatcher"))[0], en, lang="en")
    await subscribe(app, (await staff(app, "admin"))[0], zh, lang="zh")
    return en, zh


@HTTP_OK
async def test_an_escalation_reaches_every_dispatcher_once(hl, pushsvc):
    en, zh = await dispatchers(hl, pushsvc)
    bystander = pushsvc.subscriber()       # a responder's subscription hears nothing of it
    await subscribe(hl, (await staff(hl, "responder"))[0], bystander)
    resident = await hl.resident()
    inc = (await resident.ok("help.request", request_id="r1", category="police", **near(0)))["incident"]
    assert inc["status"] == "escalated" and inc["priority"] == 2
    p = (await en.next())["payload"]
    assert p["type"] == "escalated" and p["incident_id"] == inc["id"] and p["url"] == f"/dispatch#incident={inc['id']}"
    assert p["title"] == f"No responder for {inc['ref_no']}"
    z = await zh.next()
    assert z["payload"]["title"] == f"{inc['ref_no']} 无人接单" and z["ttl"] == 600

    # republished while still escalated (a note from the reporter): not told again
    await resident.ok("incident.note", incident_id=inc["id"], text="second floor")
    disp = await hl.user("dispatcher")
    await disp.ok("queue.watch")
    await resident.ok("incident.note", incident_id=inc["id"], text="blue door")
    await disp.push("incident.updated", incident_is(inc["id"], "escalated"))
    await asyncio.sleep(0.5)
    assert en.received == [] and zh.received == [] and bystander.received == []
    assert 'helpline_push_sent_total{kind="escalated"} 2.0' in await metrics(hl)


@HTTP_OK
async def test_a_new_priority_1_incident_is_told_once_then_its_escalation_once(hl, pushsvc):
    en, zh = await dispatchers(hl, pushsvc)
    medic = await hl.user("responder", skills=["medical"])
    await medic.ok("duty.start", **near(0.002))
    resident = await hl.resident()
    inc = (await resident.ok("help.request", request_id="r1", category="medical", **near(0)))["incident"]
    assert inc["status"] == "offered"
    p = (await en.next())["payload"]
    assert p["type"] == "priority1" and p["title"] == f"Priority 1: {inc['ref_no']}"
    assert (await zh.next())["payload"]["title"] == f"一级警情：{inc['ref_no']}"
    offer = await medic.push("offer", lambda m: m["incident"]["id"] == inc["id"])
    await medic.ok("offer.decline", offer_id=offer["offer_id"])     # no one else: it escalates
    p = (await en.next())["payload"]
    assert p["type"] == "escalated" and p["incident_id"] == inc["id"]
    assert (await zh.next())["payload"]["type"] == "escalated"
    await asyncio.sleep(0.5)
    assert en.received == [] and zh.received == []


@HTTP_OK
async def test_two_nodes_tell_the_dispatchers_once(stack, clean_db, pushsvc):
    """The escalation is published by one node, then again (a note) by the other: one push each."""
    a = await InProcess(stack, push_allow_http_endpoints="true").start()
    b = InProcess(stack, push_allow_http_endpoints="true")
    b.env["HELPLINE_REDIS_KEY_PREFIX"] = a.prefix          # one cluster: the same database and key prefix
    from infra import config as config_mod
    b.cfg, b.prefix = config_mod.load(b.env), a.prefix
    await b.start()
    try:
        en, zh = await dispatchers(a, pushsvc)
        token = await a.device_token()
        r_a, r_b = await a.connect(token), await b.connect(token)
        inc = (await r_a.ok("help.request", request_id="r1", category="fire", **near(0)))["incident"]
        assert inc["status"] == "escalated" and inc["priority"] == 1
        assert (await en.next())["payload"]["type"] == "escalated"     # one for escalated, none for P1
        assert (await zh.next())["payload"]["type"] == "escalated"
        await r_b.ok("incident.note", incident_id=inc["id"], text="smoke on the stairs")
        await r_a.ok("incident.note", incident_id=inc["id"], text="third floor")
        await asyncio.sleep(0.5)
        assert en.received == [] and zh.received == [] and pushsvc.rejected == []
    finally:
        await a.stop()
        await b.stop()


# ---------------------------------------------------------------- who holds a subscription, across the cluster
async def pair(stack: Stack) -> tuple[InProcess, InProcess]:
    """Two nodes of one cluster (the same database and key prefix), both taking http:// endpoints."""
    a = await InProcess(stack, push_allow_http_endpoints="true").start()
    b = InProcess(stack, push_allow_http_endpoints="true")
    b.env["HELPLINE_REDIS_KEY_PREFIX"] = a.prefix
    from infra import config as config_mod
    b.cfg, b.prefix = config_mod.load(b.env), a.prefix
    await b.start()
    return a, b


def push_of(app: InProcess) -> PushService:
    return app.app[PUSH]


async def test_a_subscription_kept_on_one_node_is_used_for_an_offer_sent_by_another_right_after(
        stack, clean_db, pushsvc):
    a, b = await pair(stack)
    try:
        token, account_id = await staff(a, "responder", skills=["medical"])
        medic = await b.connect(token)
        await medic.ok("duty.start", **near(0.002))
        assert account_id not in push_of(b).holders.accounts      # B had no reason to look this account up
        sub = pushsvc.subscriber()
        await subscribe(a, token, sub)                            # kept by node A ...
        resident = await b.resident()                              # ... the offer is sent by node B at once
        inc = (await resident.ok("help.request", request_id="r1", category="medical", **near(0)))["incident"]
        offer = await medic.push("offer", lambda m: m["incident"]["id"] == inc["id"])
        got = await sub.next()
        assert got["payload"]["type"] == "offer" and got["payload"]["offer_id"] == offer["offer_id"]
        assert pushsvc.rejected == []
    finally:
        await a.stop()
        await b.stop()


async def test_a_missed_doorbell_is_caught_by_the_next_reload_and_meanwhile_every_offer_queries(
        stack, clean_db, pushsvc):
    """A subscription written without its doorbell (as if pub/sub lost it): while the node's note may have
    missed something (the bus subscribed anew) it queries; a reload names the account."""
    a, b = await pair(stack)
    try:
        first_token, first_id = await staff(a, "responder", skills=["medical"])
        second_token, second_id = await staff(a, "responder", skills=["fire"])
        missed, later = pushsvc.subscriber(), pushsvc.subscriber()
        for account_id, sub in ((first_id, missed), (second_id, later)):
            await query(a, "INSERT INTO push_subscriptions (endpoint, account_id, p256dh, auth) VALUES"
                        " ($1, $2, $3, $4)", sub.endpoint, account_id, sub.p256dh, sub.json()["keys"]["auth"])
        node = push_of(b)
        assert node.bus is not None
        assert first_id not in node.holders.accounts
        assert node._reloads is not None
        node._reloads.cancel()            # no reload but the one this test makes, below
        node.bus.generation += 1          # what a Redis reconnect does: the note can have missed doorbells
        medic = await b.connect(first_token)
        await medic.ok("duty.start", **near(0.002))
        resident = await b.resident()
        inc = (await resident.ok("help.request", request_id="r1", category="medical", **near(0)))["incident"]
        await medic.push("offer", lambda m: m["incident"]["id"] == inc["id"])
        assert (await missed.next())["payload"]["incident_id"] == inc["id"]     # queried: not lost

        await node.reload()               # the reload loop's work (every RELOAD_S, and after a reconnect)
        assert {first_id, second_id} <= node.holders.accounts
        assert node.holders.generation == node.bus.generation
        other = await b.connect(second_token)
        await other.ok("duty.start", **near(0.002))
        inc2 = (await resident.ok("help.request", request_id="r2", category="fire", **near(0)))["incident"]
        await other.push("offer", lambda m: m["incident"]["id"] == inc2["id"])
        assert (await later.next())["payload"]["incident_id"] == inc2["id"]
    finally:
        await a.stop()
        await b.stop()
