"""Exactly one responder ends up assigned, whatever races (contract §4)."""
from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from testkit.geo import near


async def invariants(database_url: str) -> None:
    """What must hold in PostgreSQL after any race."""
    conn = await asyncpg.connect(database_url)
    try:
        # at most one accepted offer per incident (since a responder last handed it back), and it names the
        # assigned responder
        bad = await conn.fetch("""
            SELECT i.id, i.responder_id, count(o.*) FILTER (WHERE o.state = 'accepted') AS accepted,
                   array_agg(o.responder_id) FILTER (WHERE o.state = 'accepted') AS who
            FROM incidents i LEFT JOIN offers o ON o.incident_id = i.id AND o.answered_at > coalesce(
                (SELECT max(e.at) FROM incident_events e WHERE e.incident_id = i.id AND e.kind = 'handed_back'),
                '-infinity') GROUP BY i.id
            HAVING count(o.*) FILTER (WHERE o.state = 'accepted') > 1""")
        assert not bad, bad
        # no responder works two incidents at once; busy exactly when working one
        two = await conn.fetch("SELECT responder_id FROM incidents WHERE status IN ('assigned','en_route','on_scene')"
                               " GROUP BY responder_id HAVING count(*) > 1")
        assert not two, two
        mismatch = await conn.fetch("""
            SELECT r.account_id, r.status FROM responders r WHERE (r.status = 'busy') <> EXISTS (
              SELECT 1 FROM incidents i WHERE i.responder_id = r.account_id
              AND i.status IN ('assigned','en_route','on_scene'))""")
        assert not mismatch, mismatch
        # 'offered' exactly when holding a pending offer
        off = await conn.fetch("""
            SELECT r.account_id FROM responders r WHERE (r.status = 'offered') <> EXISTS (
              SELECT 1 FROM offers o WHERE o.responder_id = r.account_id AND o.state = 'pending')""")
        assert not off, off
        # an offered incident has exactly one pending offer
        inc = await conn.fetch("""
            SELECT i.id FROM incidents i WHERE (i.status = 'offered') <> EXISTS (
              SELECT 1 FROM offers o WHERE o.incident_id = i.id AND o.state = 'pending')""")
        assert not inc, inc
    finally:
        await conn.close()


async def test_two_accepts_of_one_offer(hl):
    medic = await hl.user("responder", skills=["medical"])
    await medic.ok("duty.start", **near(0.001))
    second = await hl.connect(await hl.login(medic.welcome["account"]["username"]))
    resident = await hl.resident()
    await resident.ok("help.request", request_id="a", category="medical", **near(0))
    offer = await medic.push("offer")
    answers = await asyncio.gather(medic.call("offer.accept", offer_id=offer["offer_id"]),
                                   second.call("offer.accept", offer_id=offer["offer_id"]))
    assert sorted(a["type"] for a in answers) == ["error", "ok"]
    assert [a["code"] for a in answers if a["type"] == "error"] == ["conflict"]
    await invariants(hl.database_url)


async def test_accept_against_dispatcher_assign(hl):
    disp = await hl.user("dispatcher")
    for _ in range(5):
        a = await hl.user("responder", skills=["medical"])
        await a.ok("duty.start", **near(0.001))
        b = await hl.user("responder", skills=["medical"])
        await b.ok("duty.start", **near(0.05))
        resident = await hl.resident()
        inc = (await resident.ok("help.request", request_id=uuid.uuid4().hex, category="medical",
                                 **near(0)))["incident"]
        offer = await a.push("offer")
        answers = await asyncio.gather(
            a.call("offer.accept", offer_id=offer["offer_id"]),
            disp.call("incident.assign", incident_id=inc["id"], responder_id=b.account_id))
        assert sorted(x["type"] for x in answers) == ["error", "ok"], answers
        winner = a if answers[0]["type"] == "ok" else b
        st = await disp.ok("incident.events", incident_id=inc["id"])
        assert st["incident"]["responder"]["id"] == winner.account_id
        # free both for the next round
        for step in ("en_route", "on_scene", "resolved"):
            await winner.ok("incident.progress", incident_id=inc["id"], status=step)
        await a.ok("duty.end")
        await b.ok("duty.end")
    await invariants(hl.database_url)


@pytest.mark.config(dispatch_offer_timeout_s=0.3, dispatch_tick_s=0.05)
async def test_accept_against_expiry(hl):
    """Accepts sent around the deadline: each either wins (assigned to them) or is refused, never both."""
    outcomes = {"ok": 0, "error": 0}
    for i in range(12):
        medic = await hl.user("responder", skills=["medical"])
        await medic.ok("duty.start", **near(0.001))
        resident = await hl.resident()
        inc = (await resident.ok("help.request", request_id=f"e{i}", category="medical", **near(0)))["incident"]
        offer = await medic.push("offer")
        await asyncio.sleep(0.22 + 0.02 * (i % 6))   # straddle the 0.3 s deadline
        ans = await medic.call("offer.accept", offer_id=offer["offer_id"])
        outcomes[ans["type"]] += 1
        st = await resident.ok("incident.events", incident_id=inc["id"])
        if ans["type"] == "ok":
            assert st["incident"]["responder"]["id"] == medic.account_id
        else:
            assert ans["code"] == "conflict"
            assert st["incident"]["responder"] is None or st["incident"]["responder"]["id"] != medic.account_id
        await medic.close()
        await invariants(hl.database_url)
    assert outcomes["ok"] + outcomes["error"] == 12


async def test_surge_of_requests_against_few_responders(hl):
    responders = []
    for i in range(6):
        r = await hl.user("responder", skills=["medical"])
        await r.ok("duty.start", **near(0.001 * (i + 1)))
        responders.append(r)
    residents = [await hl.resident() for _ in range(20)]
    answers = await asyncio.gather(*[
        r.call("help.request", request_id="s", category="medical", **near(0)) for r in residents])
    assert all(a["type"] == "ok" for a in answers)
    statuses = [a["incident"]["status"] for a in answers]
    assert statuses.count("offered") == 6 and statuses.count("escalated") == 14
    # everyone accepts what they got, concurrently
    offers = [await r.push("offer") for r in responders]
    accepted = await asyncio.gather(*[r.call("offer.accept", offer_id=o["offer_id"])
                                      for r, o in zip(responders, offers)])
    assert all(a["type"] == "ok" for a in accepted)
    assert len({a["incident"]["id"] for a in accepted}) == 6
    await invariants(hl.database_url)


async def test_concurrent_resends_of_one_request_make_one_incident_and_claim_no_one_twice(hl):
    """A report and its first offer are one statement; racing re-sends of its request_id (from several
    connections of one resident) must neither make two incidents nor leave a responder claimed for
    nothing."""
    responders = []
    for i in range(3):
        r = await hl.user("responder", skills=["medical"])
        await r.ok("duty.start", **near(0.001 * (i + 1)))
        responders.append(r)
    token = await hl.device_token()
    sockets = [await hl.connect(token) for _ in range(4)]
    answers = await asyncio.gather(*[c.call("help.request", request_id="same", category="medical", **near(0))
                                     for c in sockets for _ in range(2)])   # within the account's limit (10)
    assert all(a["type"] == "ok" for a in answers), answers
    assert len({a["incident"]["id"] for a in answers}) == 1
    conn = await asyncpg.connect(hl.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM incidents") == 1
        assert await conn.fetchval("SELECT count(*) FROM offers") == 1
        assert await conn.fetchval("SELECT count(*) FROM responders WHERE status = 'offered'") == 1
        kinds = [r["kind"] for r in await conn.fetch("SELECT kind FROM incident_events ORDER BY id")]
        assert kinds == ["reported", "offered"]
    finally:
        await conn.close()
    await invariants(hl.database_url)
