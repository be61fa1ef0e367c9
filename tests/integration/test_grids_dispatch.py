"""Incidents carry their grid (issue 14, contract §9): tagged at every intake and on locate, `grid` on the
wire everywhere an incident goes; tiered matching (the grid's workers, then the community's, then the radius);
a grid worker on duty by SMS without a position. The grids: testkit/squares.py."""
from __future__ import annotations

import json
import uuid
from typing import Any

from testkit.client import http, incident_is
from testkit.geo import near
from testkit.runtime import until
from testkit.squares import insert_grids, join
from testkit.stack import query as q
from testkit.twilio import sms_in

G1 = {"code": "G1", "name": "West", "path": ["D1", "S1", "C1", "G1"]}
G2 = {"code": "G2", "name": "East", "path": ["D1", "S1", "C1", "G2"]}
OUTSIDE = {"lat": 39.9, "lon": 116.4}          # Beijing: in no grid of the test city
GRID_PHONE = "+14155550177"


async def events(app: Any, incident_id: str) -> list[tuple[str, dict[str, Any]]]:
    rows = await q(app, "SELECT kind, data FROM incident_events WHERE incident_id = $1 ORDER BY id", incident_id)
    return [(r["kind"], json.loads(r["data"]) if isinstance(r["data"], str) else r["data"]) for r in rows]


async def test_a_report_is_tagged_with_its_grid_and_carries_it_everywhere(hl):
    await insert_grids(hl.database_url)
    disp = await hl.user("dispatcher")
    await disp.ok("queue.watch")
    token = await hl.device_token()
    resident = await hl.connect(token)
    inc = (await resident.ok("help.request", request_id="g1", category="medical", **near(0)))["incident"]
    assert inc["grid"] == G1                                            # the ack
    pushed = await disp.push("incident.updated", lambda m: m["incident"]["id"] == inc["id"])
    assert pushed["incident"]["grid"] == G1                             # the live update
    queue = await (await hl.user("dispatcher")).ok("queue.watch")
    assert [i["grid"] for i in queue["incidents"]] == [G1]              # the queue
    got = await resident.ok("incident.events", incident_id=inc["id"])
    assert got["incident"]["grid"] == G1
    assert got["events"][0]["data"]["grid"] == "G1"                     # the report's plan data names it
    assert got["events"][0]["data"]["tiers"] == ["grid", "community", "radius"]
    again = await hl.connect(token)                            # catch-up after a reconnect
    assert [i["grid"] for i in again.welcome["open_incidents"]] == [G1]
    (row,) = await q(hl, "SELECT grid_code FROM incidents WHERE id = $1", inc["id"])
    assert row["grid_code"] == "G1"


async def test_a_point_on_a_shared_edge_gets_exactly_one_grid_and_outside_gets_none(hl):
    await insert_grids(hl.database_url)
    resident = await hl.resident()
    edge = (await resident.ok("help.request", request_id="e", category="other", **near(0, 0.0063)))["incident"]
    assert edge["lon"] == 121.48 and edge["grid"] == G1                 # G1 | G2: the smaller code
    east = (await resident.ok("help.request", request_id="x", category="other", **near(0, 0.008)))["incident"]
    assert east["grid"] == G2
    far = (await resident.ok("help.request", request_id="o", category="other", **OUTSIDE))["incident"]
    assert far["grid"] is None
    data = dict(await events(hl, far["id"]))["reported"]
    assert data["grid"] is None and data["tiers"] == ["radius"]


async def test_http_help_and_a_call_takers_incident_are_tagged_and_locate_re_tags(hl):
    await insert_grids(hl.database_url)
    token = await hl.device_token()
    st, body = await http("POST", hl.base + "/api/help", token=token,
                          json={"request_id": "h1", "category": "other", **near(0, 0.008)})
    assert st == 201 and body["incident"]["grid"] == G2
    disp = await hl.user("dispatcher")
    with_coords = (await disp.ok("incident.create", request_id=uuid.uuid4().hex, category="other",
                                 channel="phone", caller={"name": "Mr Qian"}, **near(0.001)))["incident"]
    assert with_coords["grid"] == G1
    await q(hl, "INSERT INTO places (id, name, address, lat, lon, name_key, search) VALUES ('p1', 'Clinic',"
                " 'East Road 1', $1, $2, 'clinic', 'clinic | east road 1')", *near(0, 0.009).values())
    at_place = (await disp.ok("incident.create", request_id=uuid.uuid4().hex, category="other",
                              channel="walk_in", caller={"name": "Ms Sun"}, place_id="p1"))["incident"]
    assert at_place["grid"] == G2
    words = (await disp.ok("incident.create", request_id=uuid.uuid4().hex, category="other", channel="phone",
                           caller={"name": "Mr Zhou"}, address="somewhere by the river"))["incident"]
    assert words["grid"] is None and words["status"] == "escalated"
    await disp.ok("queue.watch")
    moved = (await disp.ok("incident.locate", incident_id=words["id"], **near(0, 0.008)))["incident"]
    assert moved["grid"] == G2
    pushed = await disp.push("incident.updated", lambda m: m["incident"]["id"] == words["id"]
                             and m["incident"]["grid"] is not None)
    assert pushed["incident"]["grid"] == G2
    back = (await disp.ok("incident.locate", incident_id=words["id"], **OUTSIDE))["incident"]
    assert back["grid"] is None                                         # moved out of every grid: untagged
    located = [d for k, d in await events(hl, words["id"]) if k == "located"]
    assert [d["grid"] for d in located] == ["G2", None]


async def _responder(hl: Any, name: str, at: dict[str, float], *codes: str) -> Any:
    r = await hl.user("responder", name=name, skills=["medical"])
    if codes:
        await join(hl.database_url, r.account_id, *codes)
    await r.ok("duty.start", **at)
    return r


async def test_the_grids_own_worker_first_then_the_community_then_the_radius(hl):
    await insert_grids(hl.database_url)
    nearest = await _responder(hl, "Passer-by", near(0.001))                    # ~110 m, no grid
    neighbour = await _responder(hl, "East worker", near(0, 0.008), "G2")       # ~760 m, same community
    own = await _responder(hl, "West worker", near(0.012), "G1")               # ~1.3 km, this grid
    resident = await hl.resident()
    inc = (await resident.ok("help.request", request_id="t", category="medical", **near(0)))["incident"]
    first = await own.push("offer", lambda m: m["incident"]["id"] == inc["id"])
    assert first["incident"]["grid"] == G1                             # the offer's incident too
    await nearest.no_push("offer", wait=0.2)
    await own.ok("offer.decline", offer_id=first["offer_id"])
    second = await neighbour.push("offer", lambda m: m["incident"]["id"] == inc["id"])
    await neighbour.ok("offer.decline", offer_id=second["offer_id"])
    third = await nearest.push("offer", lambda m: m["incident"]["id"] == inc["id"])
    await nearest.ok("offer.accept", offer_id=third["offer_id"])
    await resident.push("incident.updated", incident_is(inc["id"], "assigned"))
    offered = [d for k, d in await events(hl, inc["id"]) if k == "offered"]
    assert [(d["responder_id"], d["tier"]) for d in offered] == [
        (own.account_id, "grid"), (neighbour.account_id, "community"), (nearest.account_id, "radius")]
    rows = await q(hl, "SELECT responder_id::text AS r, tier FROM offers WHERE incident_id = $1 ORDER BY attempt",
                   inc["id"])
    assert [(r["r"], r["tier"]) for r in rows] == [(own.account_id, "grid"), (neighbour.account_id, "community"),
                                                   (nearest.account_id, "radius")]


async def test_a_worker_of_another_community_is_asked_by_radius_and_outside_every_grid_only_radius(hl):
    await insert_grids(hl.database_url)
    other = await _responder(hl, "Riverside worker", near(0.001, 0.030), "G3")   # C2: not this community
    nearest = await _responder(hl, "Passer-by", near(0.002))
    resident = await hl.resident()
    inc = (await resident.ok("help.request", request_id="r", category="medical", **near(0)))["incident"]
    first = await nearest.push("offer", lambda m: m["incident"]["id"] == inc["id"])   # nearest first, as today
    await nearest.ok("offer.decline", offer_id=first["offer_id"])
    await other.push("offer", lambda m: m["incident"]["id"] == inc["id"])
    offered = [d["tier"] for k, d in await events(hl, inc["id"]) if k == "offered"]
    assert offered == ["radius", "radius"]


async def test_a_grid_worker_on_duty_by_sms_without_a_position_is_offered_by_membership(shl, fake):
    await insert_grids(shl.database_url)
    rid = await shl.add_user(f"responder-{uuid.uuid4().hex[:8]}", "responder", name="Grid worker Ma",
                             skills=["general"], phone=GRID_PHONE)
    st, xml = await sms_in(shl.base, GRID_PHONE, "ON")
    assert "no known position" in xml                      # not a grid worker yet: as before
    await join(shl.database_url, rid, "G1")
    st, xml = await sms_in(shl.base, GRID_PHONE, "ON")
    assert st == 200 and "on duty for your grid" in xml
    (r,) = await q(shl, "SELECT status, lat FROM responders WHERE account_id = $1", rid)
    assert r["status"] == "available" and r["lat"] is None
    resident = await shl.resident()
    # outside the grid and its community, the worker without a position is nobody's candidate
    elsewhere = (await resident.ok("help.request", request_id="s0", category="other",
                                   **near(0.001, 0.030)))["incident"]
    assert elsewhere["grid"]["code"] == "G3" and elsewhere["status"] == "escalated"
    inc = (await resident.ok("help.request", request_id="s", category="other", **near(0)))["incident"]
    assert inc["status"] == "offered" and inc["grid"] == G1
    (text,) = await until(lambda: [m for m in fake.to(GRID_PHONE) if inc["ref_no"] in m["Body"]],
                          what="the offer by SMS")
    assert "km" not in text["Body"]                        # no position of theirs: no distance named
    st, xml = await sms_in(shl.base, GRID_PHONE, "1")
    await resident.push("incident.updated", incident_is(inc["id"], "assigned"))
    offered = [d for k, d in await events(shl, inc["id"]) if k == "offered"]
    assert [(d["responder_id"], d["tier"], d["channels"]) for d in offered] == [(rid, "grid", ["sms"])]
