"""Mediation by grid (issue 14): cases carry their grid; cases.watch by area and "your area" first.

Real PostgreSQL and Redis; the grids are written straight into the table (testkit/gridsql.py).
"""
from __future__ import annotations

from typing import Any

import pytest

from testkit.client import Client
from testkit.gridsql import CENTRES, OUTSIDE, belong, insert_city
from testkit.stack import query as q

VISITORS = [{"name": "Wang Fang"}, {"name": "Zhao Lei"}]


def case_is(cid: str) -> Any:
    return lambda m: m["case"]["id"] == cid


async def walk_in(staff: Client, summary: str, **where: Any) -> dict[str, Any]:
    case: dict[str, Any] = (await staff.ok("case.open", category="neighbour", summary=summary, parties=VISITORS,
                                           **where))["case"]
    return case


async def test_a_case_gets_its_grid_from_a_position_or_a_code(hl):
    await insert_city(hl.database_url)
    filer = await hl.user("resident", name="Ann")
    lat, lon = CENTRES["G12"]
    r = await filer.ok("case.open", category="neighbour", summary="Leaking pipe", lat=lat, lon=lon,
                       other_parties=[{"name": "Bo"}])
    assert r["case"]["grid"] == {"code": "G12", "name": "Lotus 2", "path": ["D1", "S1", "C1", "G12"]}
    # the grid stays with the case wherever it is sent: cases.mine, and the row
    mine = (await filer.ok("cases.mine"))["cases"]
    assert [c["grid"]["code"] for c in mine] == ["G12"]
    assert [r["grid_code"] for r in await q(hl, "SELECT grid_code FROM cases")] == ["G12"]

    clerk = await hl.user("clerk", name="Desk Qian")
    by_code = await walk_in(clerk, "Parking dispute", grid="C2")
    assert by_code["grid"] == {"code": "C2", "name": "Pine", "path": ["D1", "S1", "C2"]}
    outside = await walk_in(clerk, "Far away", lat=OUTSIDE[0], lon=OUTSIDE[1])
    assert outside["grid"] is None
    plain = await walk_in(clerk, "No place given")
    assert plain["grid"] is None

    med = await hl.user("mediator", name="Mediator Ma")
    watched = {c["summary"]: c["grid"] for c in (await med.ok("cases.watch"))["cases"]}
    assert watched == {"Leaking pipe": r["case"]["grid"], "Parking dispute": by_code["grid"],
                       "Far away": None, "No place given": None}
    # taken, the case still carries it (the mediator's own view)
    taken = (await med.ok("case.take", case_id=by_code["id"]))["case"]
    assert taken["grid"]["code"] == "C2"


async def test_bad_places_are_refused_naming_the_field_and_write_nothing(hl):
    await insert_city(hl.database_url)
    filer = await hl.user("resident", name="Ann")
    clerk = await hl.user("clerk", name="Desk Qian")
    base = dict(category="neighbour", summary="Noise", other_parties=[{"name": "Bo"}])
    e = await filer.error("case.open", "bad_request", grid="NOPE-9", **base)
    assert "grid" in e["message"] and "NOPE-9" in e["message"]
    e = await clerk.error("case.open", "bad_request", category="neighbour", summary="Noise", parties=VISITORS,
                          grid="NOPE-9")
    assert "NOPE-9" in e["message"]
    e = await filer.error("case.open", "bad_request", lat=31.23, **base)
    assert e["message"].startswith("lon")
    e = await filer.error("case.open", "bad_request", lat=31.23, lon=121.43, grid="G11", **base)
    assert e["message"].startswith("grid")
    e = await filer.error("case.open", "bad_request", lat=91, lon=121.43, **base)
    assert "lat" in e["message"]
    assert await q(hl, "SELECT id FROM cases") == []


async def test_cases_watch_with_grids_lists_those_grids_and_below(hl):
    await insert_city(hl.database_url)
    clerk = await hl.user("clerk", name="Desk Qian")
    for code in ("G11", "G12", "G21"):
        await walk_in(clerk, f"in {code}", grid=code)
    await walk_in(clerk, "nowhere")
    med = await hl.user("mediator", name="Mediator Ma")

    def summaries(r: dict[str, Any]) -> list[str]:
        return [c["summary"] for c in r["cases"]]

    assert summaries(await med.ok("cases.watch", grids=["C1"])) == ["in G11", "in G12"]
    assert summaries(await med.ok("cases.watch", grids=["G21", "G12"])) == ["in G12", "in G21"]
    assert summaries(await med.ok("cases.watch", grids=["D1"])) == ["in G11", "in G12", "in G21"]
    assert len((await med.ok("cases.watch"))["cases"]) == 4       # no filter: every open case
    e = await med.error("cases.watch", "bad_request", grids=["C1", "XX", "YY"])
    assert "XX" in e["message"] and "YY" in e["message"] and "C1" not in e["message"]

    # the live pushes follow the filter too: a case in C2 does not reach a mediator watching C1
    await med.ok("cases.watch", grids=["C1"])
    other = await walk_in(clerk, "later in G21", grid="G21")
    mine = await walk_in(clerk, "later in G11", grid="G11")
    await med.push("case.updated", case_is(mine["id"]))
    await med.no_push("case.updated", case_is(other["id"]))


@pytest.mark.config(mediation_area_first_s=0)
async def test_a_mediator_of_a_grid_sees_their_community_first_marked_in_area(hl):
    await insert_city(hl.database_url)
    clerk = await hl.user("clerk", name="Desk Qian")
    order = [("first, Pine", "G21"), ("second, Lotus 2", "G12"), ("third, nowhere", None),
             ("fourth, Lotus", "C1"), ("fifth, Pine", "C2")]
    for summary, code in order:
        await walk_in(clerk, summary, **({"grid": code} if code else {}))
    med = await hl.user("mediator", name="Grid mediator")
    await belong(hl.database_url, med.account_id, "G11")     # a grid of Lotus: all of Lotus is their area
    listed = [(c["summary"], c["in_area"]) for c in (await med.ok("cases.watch"))["cases"]]
    assert listed == [("second, Lotus 2", True), ("fourth, Lotus", True),
                      ("first, Pine", False), ("third, nowhere", False), ("fifth, Pine", False)]

    plain = await hl.user("mediator", name="Mediator without grids")
    listed = [(c["summary"], c["in_area"]) for c in (await plain.ok("cases.watch"))["cases"]]
    assert listed == [(s, False) for s, _ in order]

    # pushes are marked for each watcher
    new = await walk_in(clerk, "new in Lotus 1", grid="G11")
    assert (await med.push("case.updated", case_is(new["id"])))["case"]["in_area"] is True
    assert (await plain.push("case.updated", case_is(new["id"])))["case"]["in_area"] is False


@pytest.mark.config(mediation_area_first_s=60)
async def test_a_new_case_reaches_its_areas_mediators_first(hl):
    await insert_city(hl.database_url)
    clerk = await hl.user("clerk", name="Desk Qian")
    lotus = await hl.user("mediator", name="Lotus mediator")
    await belong(hl.database_url, lotus.account_id, "C1")
    pine = await hl.user("mediator", name="Pine mediator")
    await belong(hl.database_url, pine.account_id, "G21")
    anyone = await hl.user("mediator", name="City mediator")
    for m in (lotus, pine, anyone):
        await m.ok("cases.watch")

    case = await walk_in(clerk, "Dog barking", grid="G12")
    assert (await lotus.push("case.updated", case_is(case["id"])))["case"]["in_area"] is True
    # the others are told when the head start (60 s here) is over: not now
    for m in (pine, anyone):
        await m.no_push("case.updated", case_is(case["id"]))
    # ... but the list shows it to everyone, the area's cases first
    assert [(c["id"], c["in_area"]) for c in (await anyone.ok("cases.watch"))["cases"]] == [(case["id"], False)]
    # once a mediator takes it the head start is over: everyone watching is told at once
    await lotus.ok("case.take", case_id=case["id"])
    for m in (pine, anyone):
        taken = await m.push("case.updated", case_is(case["id"]))
        assert taken["case"]["status"] == "in_mediation" and taken["case"]["in_area"] is False

    # a case in an area no mediator belongs to, or without a grid, reaches everyone at once
    for where in ({"grid": "S1"}, {}):
        lone = await walk_in(clerk, "Fence", **where)
        for m in (lotus, pine, anyone):
            await m.push("case.updated", case_is(lone["id"]))
