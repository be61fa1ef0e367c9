"""Issue 20, dispatch: help floods from free device accounts, positions the live index cannot hold, the live
index lost by Redis, all performed through the public interfaces (WebSocket, HTTP) on loopback."""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from infra.config import Dispatch
from testkit.accounts import create_accounts, tokens_for
from testkit.client import Client, http, incident_is
from testkit.geo import near
from testkit.nodes import InProcess

SHIPPED = Dispatch()
# the shipped flood limits (the kit raises them for other tests: all their residents share 127.0.0.1)
FLOOD_LIMITS = {"dispatch_flood_per_address": SHIPPED.flood_per_address,
                "dispatch_flood_per_prefix": SHIPPED.flood_per_prefix,
                "dispatch_unverified_offers_per_min": SHIPPED.unverified_offers_per_min}


async def on_duty(hl: InProcess, n: int, skill: str = "medical") -> list[Client]:
    out = []
    for i in range(n):
        r = await hl.user("responder", name=f"R{i}", skills=[skill])
        await r.ok("duty.start", **near(0.002 * (i + 1)))
        out.append(r)
    return out


async def resident_tokens(hl: InProcess, n: int, *, verified: bool = False) -> list[str]:
    """n resident accounts as /api/auth/device makes them (already minted: minting is limited elsewhere)."""
    conn = await asyncpg.connect(hl.database_url)
    try:
        ids = await create_accounts(conn, "resident", n, "flood-" + uuid.uuid4().hex[:6], verified=verified)
    finally:
        await conn.close()
    return tokens_for(ids, "resident")


async def residents(hl: InProcess, n: int, *, verified: bool = False) -> list[Client]:
    """n resident accounts, each connected over the WebSocket from this one loopback address."""
    return list(await asyncio.gather(*(hl.connect(t) for t in await resident_tokens(hl, n, verified=verified))))


async def flood(clients: list[Client]) -> list[dict[str, Any]]:
    answers = await asyncio.gather(*(c.call("help.request", request_id=uuid.uuid4().hex, category="medical",
                                            **near(0)) for c in clients))
    assert all(a["type"] == "ok" for a in answers), [a for a in answers if a["type"] != "ok"][:3]  # never refused
    return [a["incident"] for a in answers]


def held(inc: dict[str, Any]) -> bool:
    return bool(inc["status"] == "escalated" and inc["flags"] == ["possible_flood"])


@pytest.mark.config(**FLOOD_LIMITS)
async def test_flood_from_one_address_is_bounded_and_a_verified_resident_is_offered_at_once(hl):
    responders = await on_duty(hl, 5)
    dispatcher = await hl.user("dispatcher")
    await dispatcher.ok("queue.watch")
    crowd = await residents(hl, 120)
    t0 = time.monotonic()
    incs = await flood(crowd)
    took = time.monotonic() - t0
    offered = [i for i in incs if i["status"] == "offered"]
    # the address's allowance of automatic dispatches (dispatch.flood_per_address) and no more
    assert hl.cfg.dispatch.flood_per_address == 3 and len(offered) <= 3
    assert all(held(i) for i in incs if i["status"] != "offered") and len(incs) - len(offered) >= 115
    assert took < 30, took
    # a responder is still free for a real (verified) resident during the flood: offered in the answer itself
    (real,) = await residents(hl, 1, verified=True)
    inc = (await real.ok("help.request", request_id="real", category="medical", **near(0)))["incident"]
    assert inc["status"] == "offered" and inc["flags"] == []
    got = await asyncio.gather(*(r.push("offer", lambda m: m["incident"]["id"] == inc["id"], timeout=1)
                                 for r in responders), return_exceptions=True)
    assert any(isinstance(g, dict) for g in got)   # (offers last 2 s in tests: a second may follow)
    # the surplus waits for a dispatcher, flagged on the console and in the incident's log
    one = next(i for i in incs if held(i))
    await dispatcher.push("incident.updated", lambda m: m["incident"]["id"] == one["id"]
                          and m["incident"]["flags"] == ["possible_flood"])
    log = await dispatcher.ok("incident.events", incident_id=one["id"])
    assert {"kind": "escalated", "reason": "flood_hold"} in [
        {"kind": e["kind"], "reason": e["data"].get("reason")} for e in log["events"]]
    snap = await dispatcher.ok("queue.watch")
    assert sum(1 for i in snap["incidents"] if "possible_flood" in i["flags"]) == len(incs) - len(offered)
    # the same address over HTTP is held too (the limit is per address, whatever the route)
    (late,) = await resident_tokens(hl, 1)
    st, body = await http("POST", hl.base + "/api/help", token=late,
                          json={"request_id": "h", "category": "medical", **near(0)})
    assert st == 201 and held(body["incident"]), body


@pytest.mark.config(dispatch_flood_per_address=1000, dispatch_flood_per_prefix=1000,
                    dispatch_unverified_offers_per_min=4)
async def test_cluster_rate_of_automatic_offers_for_unverified_requests(hl):
    await on_duty(hl, 8)
    incs = await flood(await residents(hl, 20))
    offered = [i for i in incs if i["status"] == "offered"]
    assert len(offered) == 4 and sum(held(i) for i in incs) == 16
    (real,) = await residents(hl, 1, verified=True)
    inc = (await real.ok("help.request", request_id="v", category="medical", **near(0)))["incident"]
    assert inc["status"] == "offered"


@pytest.mark.config(**FLOOD_LIMITS)
async def test_a_known_resident_is_dispatched_automatically_during_a_flood(hl):
    (r,) = await on_duty(hl, 1)
    (known,) = await residents(hl, 1)
    first = (await known.ok("help.request", request_id="1", category="medical", **near(0)))["incident"]
    offer = await r.push("offer", lambda m: m["incident"]["id"] == first["id"])
    await r.ok("offer.accept", offer_id=offer["offer_id"])
    for status in ("en_route", "on_scene", "resolved"):
        await r.ok("incident.progress", incident_id=first["id"], status=status)
    held_before = [i for i in await flood(await residents(hl, 30)) if held(i)]
    assert len(held_before) >= 28
    again = (await known.ok("help.request", request_id="2", category="medical", **near(0)))["incident"]
    assert again["status"] in ("offered", "escalated") and again["flags"] == []


@pytest.mark.config(dispatch_offer_timeout_s=60)
async def test_a_verified_resident_takes_a_responder_from_a_pending_offer_of_an_unverified_report(hl):
    """Every responder nearby holds an offer of an unverified device account's report (within the flood
    limits): a verified resident's report, of the same priority, is offered at once anyway; the flood
    report it took the responder from is told apart truthfully (preempted, then escalated: no one free)."""
    responders = await on_duty(hl, 3)
    dispatcher = await hl.user("dispatcher")
    await dispatcher.ok("queue.watch")
    fakes = await flood(await residents(hl, 3))
    assert all(i["status"] == "offered" for i in fakes), [i["status"] for i in fakes]
    # another unverified report takes no one from them: escalated, no offer withdrawn
    (more,) = await flood(await residents(hl, 1))
    assert more["status"] == "escalated"
    (real,) = await residents(hl, 1, verified=True)
    inc = (await real.ok("help.request", request_id="real", category="medical", **near(0)))["incident"]
    assert inc["status"] == "offered" and inc["flags"] == []
    offers = await asyncio.gather(*(r.push("offer", lambda m: m["incident"]["id"] == inc["id"], timeout=1)
                                    for r in responders), return_exceptions=True)
    (taker,) = [r for r, o in zip(responders, offers, strict=True) if isinstance(o, dict)]
    gone = await taker.push("offer.withdrawn")
    before = await taker.push("offer")          # the flood report's offer it held before
    assert gone == {"type": "offer.withdrawn", "offer_id": before["offer_id"], "reason": "preempted"}
    victim = before["incident"]
    assert await _held_by(dispatcher, victim["id"]) == "escalated"
    log = await dispatcher.ok("incident.events", incident_id=victim["id"])
    kinds = [(e["kind"], e["data"].get("reason")) for e in log["events"]]
    assert ("offer_withdrawn", "preempted") in kinds and kinds[-1] == ("escalated", "no_candidate"), kinds
    # the other flood reports keep their offers
    for i in fakes:
        if i["id"] != victim["id"]:
            assert await _held_by(dispatcher, i["id"]) == "offered"


async def _held_by(dispatcher: Client, incident_id: str) -> str:
    snap = await dispatcher.ok("queue.watch")
    return str(next(i["status"] for i in snap["incidents"] if i["id"] == incident_id))


# ---------------------------------------------------------------- positions the live index cannot hold

async def test_positions_beyond_the_index_are_refused_naming_the_field(hl):
    token = await hl.device_token()
    resident = await hl.connect(token)
    for lat in (85.06, -85.06, 89.9):
        err = await resident.error("help.request", "bad_request", request_id=uuid.uuid4().hex,
                                   category="medical", lat=lat, lon=121.0)
        assert "lat" in err["message"], err
    st, body = await http("POST", hl.base + "/api/help", token=token,
                          json={"request_id": "p", "category": "medical", "lat": 85.1, "lon": 0})
    assert st == 400 and body["error"]["code"] == "bad_request" and "lat" in body["error"]["message"], body
    responder = await hl.user("responder", skills=["medical"])
    err = await responder.error("duty.start", "bad_request", lat=-86, lon=0)
    assert "lat" in err["message"]
    await responder.ok("duty.start", **near(0.001))
    err = await responder.error("location.update", "bad_request", lat=86, lon=0)
    assert "lat" in err["message"]
    dispatcher = await hl.user("dispatcher")
    inc = (await resident.ok("help.request", request_id="ok", category="other", **near(0)))["incident"]
    err = await dispatcher.error("incident.locate", "bad_request", incident_id=inc["id"], lat=85.2, lon=10)
    assert "lat" in err["message"]
    assert (await resident.ok("help.request", request_id="edge", category="medical",
                              lat=85.05, lon=121.0))["incident"]["status"] in ("escalated", "offered")


async def test_a_poisoned_incident_never_stops_the_sweeper(hl):
    """Incidents left queued (e.g. during a Redis outage) by a version that took any latitude: the one the
    index cannot hold is escalated, the good one behind it is offered."""
    responder = (await on_duty(hl, 1))[0]
    resident = await hl.resident()
    conn = await asyncpg.connect(hl.database_url)
    try:
        ids = {}
        for name, lat, age in (("poisoned", 89.0, 20), ("good", near(0)["lat"], 10)):
            ids[name] = str(await conn.fetchval(
                """INSERT INTO incidents (ref_no, reporter_id, request_id, status, category, skill, priority,
                                          lat, lon, channel, created_at, updated_at)
                   VALUES ('H-' || nextval('incident_ref_seq'), $1, $2, 'queued', 'medical', 'medical', 1,
                           $3, $4, 'ws', now() - make_interval(secs => $5), now() - make_interval(secs => $5))
                   RETURNING id""", resident.account_id, name, lat, near(0)["lon"], float(age)))
    finally:
        await conn.close()
    offer = await responder.push("offer", timeout=5)
    assert offer["incident"]["id"] == ids["good"]
    poisoned = await resident.push("incident.updated", incident_is(ids["poisoned"], "escalated"), timeout=5)
    assert poisoned["incident"]["status"] == "escalated"


# ---------------------------------------------------------------- the live index lost by Redis

async def test_after_redis_lost_the_live_index_reports_wait_for_the_rebuild_instead_of_escalating(hl):
    responders = await on_duty(hl, 3)
    crowd = [await hl.resident() for _ in range(3)]
    redis = aioredis.from_url(hl.env["HELPLINE_REDIS_URL"])
    try:   # what a Redis restart without persistence leaves: none of this deployment's keys
        keys = [k async for k in redis.scan_iter(match=hl.prefix + "*", count=1000)]
        assert keys
        await redis.delete(*keys)
    finally:
        await redis.aclose()
    incs = [(await c.ok("help.request", request_id="x", category="medical", **near(0)))["incident"]
            for c in crowd]
    assert all(i["status"] in ("queued", "offered") for i in incs), [i["status"] for i in incs]
    got = await asyncio.gather(*(r.push("offer", timeout=10) for r in responders))
    assert {o["incident"]["id"] for o in got} == {i["id"] for i in incs}
    for c, i in zip(crowd, incs, strict=True):
        await c.no_push("incident.updated", incident_is(i["id"], "escalated"), wait=0.2)
