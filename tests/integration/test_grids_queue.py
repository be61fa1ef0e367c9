"""Watching an area (issue 14): queue.watch `grids` limits the snapshot and the live updates; an unknown code
is refused by name; a dispatcher limited to their area sees and acts on only it; an admin sees all."""
from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from handlers.help import QueueFeed
from testkit.client import Client, http
from testkit.geo import near
from testkit.squares import insert_grids, join
from testkit.stack import query

IN_G1, IN_G2, IN_G3, OUTSIDE = near(0), near(0, 0.008), near(0, 0.030), {"lat": 39.9, "lon": 116.4}


async def report(resident: Client, at: dict[str, float]) -> dict[str, Any]:
    inc: dict[str, Any] = (await resident.ok("help.request", request_id=uuid.uuid4().hex, category="other",
                                             **at))["incident"]
    return inc


def grid_of(m: dict[str, Any]) -> str | None:
    g = m["incident"]["grid"]
    return g["code"] if g else None


async def test_queue_watch_with_grids_limits_the_snapshot_and_the_live_updates(hl):
    await insert_grids(hl.database_url)
    resident = await hl.resident()
    g1, g2, out = await report(resident, IN_G1), await report(resident, IN_G2), await report(resident, OUTSIDE)
    east, community, everyone = [await hl.user("dispatcher") for _ in range(3)]
    snap = await east.ok("queue.watch", grids=["G2"])
    assert [i["id"] for i in snap["incidents"]] == [g2["id"]]
    snap = await community.ok("queue.watch", grids=["C1"])             # a community: its grids included
    assert {i["id"] for i in snap["incidents"]} == {g1["id"], g2["id"]}
    snap = await everyone.ok("queue.watch")
    assert {i["id"] for i in snap["incidents"]} == {g1["id"], g2["id"], out["id"]}
    for r in (await hl.resident(), await hl.resident()):
        await report(r, IN_G1)
        await report(r, IN_G2)
    # live: the watcher of G2 hears only G2's incidents, the community's watcher both, the rest everything
    await east.push("incident.updated", lambda m: grid_of(m) == "G2")
    for c in (community, everyone):
        await c.push("incident.updated", lambda m: grid_of(m) == "G2")
        await c.push("incident.updated", lambda m: grid_of(m) == "G1")
    await east.no_push("incident.updated", lambda m: grid_of(m) != "G2")
    await community.no_push("incident.updated", lambda m: grid_of(m) not in ("G1", "G2"))
    # responders are not filtered
    medic = await hl.user("responder", skills=["medical"])
    await medic.ok("duty.start", **IN_G3)
    await east.push("responder.updated", lambda m: m["responder"]["id"] == medic.account_id)
    # an incident shown that moves out of the filter is told once more (its new grid), then no longer
    disp = await hl.user("dispatcher")
    words = (await disp.ok("incident.create", request_id=uuid.uuid4().hex, category="other", channel="phone",
                           caller={"name": "Mr Zhou"}, address="by the river"))["incident"]
    await disp.ok("incident.locate", incident_id=words["id"], **IN_G2)
    await east.push("incident.updated", lambda m: m["incident"]["id"] == words["id"] and grid_of(m) == "G2")
    await disp.ok("incident.close", incident_id=g2["id"], disposition="false_alarm")
    await east.push("incident.updated", lambda m: m["incident"]["id"] == g2["id"]
                    and m["incident"]["status"] == "cancelled")


async def test_an_unknown_grid_code_is_refused_by_name(hl):
    await insert_grids(hl.database_url)
    disp = await hl.user("dispatcher")
    err = await disp.error("queue.watch", "bad_request", grids=["G1", "NOPE-7"])
    assert "grids" in err["message"] and "NOPE-7" in err["message"] and "G1" not in err["message"]
    await disp.error("queue.watch", "bad_request", grids=[""])
    await disp.ok("queue.watch", grids=["D1"])


async def test_an_area_limited_dispatcher_sees_and_acts_only_in_their_area_and_an_admin_sees_all(hl):
    await insert_grids(hl.database_url)
    resident = await hl.resident()
    mine, theirs, nowhere = await report(resident, IN_G2), await report(resident, IN_G1), await report(resident,
                                                                                                        OUTSIDE)
    username = f"dispatcher-{uuid.uuid4().hex[:8]}"
    did = await hl.add_user(username, "dispatcher", name="Area Li")
    await join(hl.database_url, did, "G2", area_limited=True)
    token = await hl.login(username)
    limited = await hl.connect(token)
    snap = await limited.ok("queue.watch")                           # limited whatever they ask
    assert [i["id"] for i in snap["incidents"]] == [mine["id"]]
    assert (await limited.ok("queue.watch", grids=["C1"]))["incidents"] == snap["incidents"]
    assert (await limited.ok("queue.watch", grids=["G1"]))["incidents"] == []
    medic = await hl.user("responder", skills=["general"])
    await medic.ok("duty.start", **IN_G3)
    for inc in (theirs, nowhere):                                   # outside: forbidden, nothing changes
        iid = inc["id"]
        await limited.error("incident.assign", "forbidden", incident_id=iid, responder_id=medic.account_id)
        await limited.error("incident.close", "forbidden", incident_id=iid, disposition="resolved")
        await limited.error("incident.locate", "forbidden", incident_id=iid, **IN_G2)
        await limited.error("incident.ack", "forbidden", incident_id=iid)
        await limited.error("incident.events", "forbidden", incident_id=iid)
        await limited.error("incident.link", "forbidden", incident_id=iid, duplicate_of=mine["id"])
        await limited.error("incident.link", "forbidden", incident_id=mine["id"], duplicate_of=iid)
        st, body = await http("GET", f"{hl.base}/api/incidents/{iid}", token=token)
        assert st == 403 and body["error"]["code"] == "forbidden"
    admin = await hl.user("admin")
    assert (await admin.ok("incident.events", incident_id=theirs["id"]))["incident"]["status"] == "escalated"
    # inside: fine
    assert (await limited.ok("incident.events", incident_id=mine["id"]))["incident"]["id"] == mine["id"]
    st, _ = await http("GET", f"{hl.base}/api/incidents/{mine['id']}", token=token)
    assert st == 200
    await limited.ok("incident.ack", incident_id=mine["id"])
    got = await limited.ok("incident.assign", incident_id=mine["id"], responder_id=medic.account_id)
    assert got["incident"]["status"] == "assigned"
    # live: the limited dispatcher hears only their area
    await limited.ok("queue.watch")
    await report(resident, IN_G1)
    later = await report(resident, IN_G2)
    await limited.push("incident.updated", lambda m: m["incident"]["id"] == later["id"])
    await limited.no_push("incident.updated", lambda m: grid_of(m) != "G2")
    # an admin flagged area_limited (by mistake) still sees all
    aname = f"admin-{uuid.uuid4().hex[:8]}"
    aid = await hl.add_user(aname, "admin")
    await join(hl.database_url, aid, "G2", area_limited=True)
    boss = await hl.connect(await hl.login(aname))
    assert len((await boss.ok("queue.watch"))["incidents"]) >= 4
    await boss.ok("incident.close", incident_id=theirs["id"], disposition="resolved")


class _Ctx:
    """What QueueFeed needs of a connection: closed, and deliver (the payload as received)."""

    closed = False

    def __init__(self) -> None:
        self.got: list[str] = []

    def deliver(self, payload: str) -> None:
        self.got.append(payload)


def test_the_filter_reads_only_the_push_it_passes_on():
    """A filtered watch costs one decode of three fields per push: no database, no re-encoding (the payload
    passed on is the very string received); benchmarks in docs/benchmarks.md."""
    ctx = _Ctx()
    feed = QueueFeed(ctx, (frozenset({"C1"}),), set())      # type: ignore[arg-type]
    inside = '{"type":"incident.updated","incident":{"id":"a","status":"queued","grid":{"code":"G1",' \
             '"name":"West","path":["D1","S1","C1","G1"]},"note":"x"}}'
    outside = '{"type":"incident.updated","incident":{"id":"b","status":"queued","grid":null}}'
    moved = '{"type":"incident.updated","incident":{"id":"a","status":"queued","grid":{"code":"G3",' \
            '"name":"R","path":["D1","S1","C2","G3"]}}}'
    responder = '{"type":"responder.updated","responder":{"id":"r"}}'
    for p in (inside, outside, responder, moved, moved, "not json"):
        feed.deliver(p)
    assert ctx.got == [inside, responder, moved] and ctx.got[0] is inside and feed.shown == set()


@pytest.mark.config(push_allow_http_endpoints="true")
async def test_an_area_limited_dispatchers_push_alerts_are_of_their_area_only(hl, pushsvc):
    await insert_grids(hl.database_url)
    subs = {}
    for who, code in (("east", "G2"), ("west", "G1"), ("everyone", None)):
        name = f"dispatcher-{who}-{uuid.uuid4().hex[:6]}"
        did = await hl.add_user(name, "dispatcher", name=name)
        if code is not None:
            await join(hl.database_url, did, code, area_limited=True)
        subs[who] = pushsvc.subscriber()
        st, _ = await http("POST", hl.base + "/api/push/subscribe", token=await hl.login(name),
                           json=subs[who].json("en"))
        assert st == 201
    resident = await hl.resident()
    inc = await report(resident, IN_G2)                     # nobody on duty: escalated at once
    assert inc["status"] == "escalated"
    for who in ("east", "everyone"):
        assert (await subs[who].next())["payload"]["incident_id"] == inc["id"]
    out = await report(resident, OUTSIDE)
    assert (await subs["everyone"].next())["payload"]["incident_id"] == out["id"]
    await asyncio.sleep(0.3)
    assert subs["west"].received == [] and subs["east"].received == []


async def test_the_grids_map_of_an_area_limited_dispatcher_holds_their_area_only(hl):
    """GET /api/grids: a dispatcher limited to C1 gets C1 and its grids (with their counts), not the district
    above it nor the other community's grids; unlimited staff and an admin flagged by mistake get every grid."""
    await insert_grids(hl.database_url)
    resident = await hl.resident()
    for at in (IN_G1, IN_G2, IN_G3):
        await report(resident, at)
    codes = {r["code"] for r in await query(hl, "SELECT code FROM grids")}
    under_c1 = {r["code"] for r in await query(hl, "SELECT code FROM grids WHERE path && ARRAY['C1']")}
    assert under_c1 and "C1" in under_c1 and under_c1 < codes

    async def grids_of(role: str, *joined: str, limited: bool | None = None) -> dict[str, int]:
        name = f"{role}-{uuid.uuid4().hex[:8]}"
        aid = await hl.add_user(name, role)
        if joined:
            await join(hl.database_url, aid, *joined, area_limited=limited)
        st, body = await http("GET", hl.base + "/api/grids", token=await hl.login(name))
        assert st == 200, body
        return {f["properties"]["code"]: f["properties"]["open"] for f in body["features"]}

    limited = await grids_of("dispatcher", "C1", limited=True)
    assert set(limited) == under_c1
    everything = await grids_of("dispatcher")
    assert set(everything) == codes
    assert {c: everything[c] for c in under_c1} == limited           # the same counts for what they see
    assert set(await grids_of("dispatcher", "C1")) == codes           # a member, not limited: all
    assert set(await grids_of("admin", "C1", limited=True)) == codes  # an admin is never limited
