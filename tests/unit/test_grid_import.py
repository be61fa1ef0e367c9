"""grids/importing.py: which features of a grids file go in, which are bad and why, and the paths."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from grids import importing as im
from grids import rules
from grids.rules import Level
from testkit import city

REPO = Path(__file__).resolve().parents[2]


def square(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def feat(code: str, level: str, parent: str | None, geometry: dict[str, Any], name: str | None = None) -> Any:
    return {"type": "Feature", "properties": {"code": code, "name": name or f"{code} 名", "level": level,
                                              "parent": parent}, "geometry": geometry}


# a district 0..4 x 0..2; a street on its west half; a community on the street's south half; two grids
# sharing the edge x = 1
CITY = [feat("D", "district", None, square(0, 0, 4, 2)),
        feat("S", "street", "D", square(0, 0, 2, 2)),
        feat("C", "community", "S", square(0, 0, 2, 1)),
        feat("G1", "grid", "C", square(0, 0, 1, 1)),
        feat("G2", "grid", "C", square(1, 0, 2, 1))]


def stored(grids: list[im.Grid]) -> dict[str, im.Stored]:
    return {g.code: im.Stored(g.code, g.level, g.parent, g.path, g.geometry) for g in grids}


def errors(plan: im.Plan) -> dict[int, str]:
    return {e.index: e.message for e in plan.errors}


def test_a_good_file_goes_in_whole_with_paths_and_boxes() -> None:
    plan = im.plan(CITY, {})
    assert plan.errors == [] and plan.repath == {}
    got = {g.code: g for g in plan.grids}
    assert [g.code for g in plan.grids] == ["D", "S", "C", "G1", "G2"]
    assert got["G2"].path == ("D", "S", "C", "G2") and got["G2"].parent == "C" and got["G2"].level is Level.GRID
    assert got["G2"].bbox == (1, 0, 2, 1) and got["D"].path == ("D",)
    assert got["G1"].name == "G1 名" and got["G1"].geometry == square(0, 0, 1, 1)


def test_parents_after_children_in_the_file_are_judged_first() -> None:
    plan = im.plan(list(reversed(CITY)), {})
    assert plan.errors == []
    assert [g.code for g in plan.grids] == ["D", "S", "C", "G2", "G1"]   # by level, then the file's order


def test_a_district_parent_may_be_null_absent_or_empty() -> None:
    absent = {"type": "Feature", "properties": {"code": "A", "name": "A", "level": "district"},
              "geometry": square(0, 0, 1, 1)}
    plan = im.plan([absent, feat("B", "district", "", square(1, 0, 2, 1)), feat("C", "street", "", square(0, 0, 1, 1))],
                   {})
    assert [g.code for g in plan.grids] == ["A", "B"] and errors(plan) == {2: "a street needs a parent"}


def test_a_geometry_is_stored_closed_and_two_dimensional() -> None:
    open_ring = {"type": "Polygon", "coordinates": [[[0, 0, 7], [1, 0, 7], [1, 1, 7], [0, 1, 7]]]}
    (g,) = im.plan([feat("D", "district", None, open_ring)], {}).grids
    assert g.geometry == {"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0],
                                                              [0.0, 0.0]]]}


BOWTIE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}


@pytest.mark.parametrize(("bad", "message"), [
    ("not a feature", "not a Feature"),
    ({"type": "Feature", "geometry": square(0, 0, 1, 1)}, "properties must be an object"),
    (feat("X", "grid", "C", {"type": "Point", "coordinates": [0.5, 0.5]}),
     "geometry must be a Polygon or MultiPolygon, not Point"),
    (feat("X", "grid", "C", {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}),
     "Polygon coordinates are malformed"),
    (feat("X", "grid", "C", {"type": "Polygon", "coordinates": [[["a", 0], [1, 1], [1, 0], [0, 0]]]}),
     "Polygon coordinates are malformed"),
    (feat("X", "grid", "C", {"type": "Polygon", "coordinates": []}), "geometry is empty"),
    (feat("X", "grid", "C", BOWTIE), "invalid geometry: Self-intersection[0.5 0.5]"),
    (feat("X", "district", None, square(179, 0, 181, 1)), "coordinates must be [lon, lat]"),
    (feat("X", "grid", "nowhere", square(0, 0, 1, 1)), "unknown parent nowhere (neither in this file nor loaded)"),
    (feat("X", "grid", "G1", square(0, 0, 0.5, 0.5)), "parent G1 is a grid, not above a grid"),
    (feat("X", "street", "C", square(0, 0, 0.5, 0.5)), "parent C is a community, not above a street"),
    (feat("X", "grid", "C", square(1.5, 0.5, 2.5, 1)), "not inside its parent C"),
    (feat("X", "district", "D", square(0, 0, 1, 1)), "a district has no parent (parent is D)"),
    (feat("X", "street", None, square(0, 0, 1, 1)), "a street needs a parent"),
    (feat("X", "ward", "D", square(0, 0, 1, 1)), "level must be one of district, street, community, grid, not 'ward'"),
    (feat("X", "grid", "C", square(0, 0, 1, 1), name="   "), "name is missing or empty"),
    ({"type": "Feature", "properties": {"code": 310101, "name": "n", "level": "district", "parent": None},
      "geometry": square(0, 0, 1, 1)}, "code must be text"),
    (feat("a b", "district", None, square(0, 0, 1, 1)), "code: 1-64 letters, digits"),
])
def test_each_bad_feature_is_reported_by_index_and_skipped(bad: Any, message: str) -> None:
    plan = im.plan([*CITY[:3], bad, *CITY[3:]], {})
    got = errors(plan)
    assert list(got) == [3] and got[3].startswith(message), got
    assert {g.code for g in plan.grids} == {"D", "S", "C", "G1", "G2"}


def test_a_duplicate_keeps_the_first_and_its_children_follow_it() -> None:
    plan = im.plan([*CITY, feat("C", "community", "S", square(0, 1, 2, 2))], {})
    assert errors(plan) == {5: "duplicate code C (feature 2 has it)"}
    (c,) = [g for g in plan.grids if g.code == "C"]
    assert c.bbox == (0, 0, 2, 1)


def test_a_feature_whose_parent_is_bad_is_bad_too_down_the_tree() -> None:
    bad_street = feat("S", "street", "D", BOWTIE)
    plan = im.plan([CITY[0], bad_street, *CITY[2:]], {})
    got = errors(plan)
    assert got[1].startswith("invalid geometry")
    assert got[2] == "parent S is bad (feature 1)"
    assert got[3] == got[4] == "parent C is bad (feature 2)"
    assert [g.code for g in plan.grids] == ["D"]


def test_a_shared_border_may_stray_by_the_tolerance_not_more() -> None:
    tiny = im.TOLERANCE_DEG / 10
    ok = im.plan([*CITY, feat("G3", "grid", "C", square(0, 0, 2 + tiny, 0.5))], {})
    assert ok.errors == []
    out = im.plan([*CITY, feat("G3", "grid", "C", square(0, 0, 2 + 1e-4, 0.5))], {})
    assert errors(out) == {5: "not inside its parent C"}


def test_a_parent_already_loaded_gives_the_path() -> None:
    loaded = stored(im.plan(CITY[:3], {}).grids)
    plan = im.plan([feat("G9", "grid", "C", square(0.5, 0.5, 1.5, 1))], loaded)
    assert plan.errors == [] and plan.grids[0].path == ("D", "S", "C", "G9")
    outside = im.plan([feat("G9", "grid", "C", square(0.5, 1.5, 1.5, 2))], loaded)
    assert errors(outside) == {0: "not inside its parent C"}


def test_moving_a_grid_recomputes_the_paths_of_its_loaded_descendants() -> None:
    two = [*CITY, feat("D2", "district", None, square(4, 0, 8, 2))]
    loaded = stored(im.plan(two, {}).grids)
    # the street and its community move east into D2; the grids under them are not in the file
    moved = [feat("S", "street", "D2", square(4, 0, 6, 2)), feat("C", "community", "S", square(4, 0, 6, 1))]
    plan = im.plan(moved, loaded)
    # the loaded grids are no longer inside the community's new shape: the community is refused
    assert errors(plan) == {1: "G1, a loaded grid under it, would no longer be inside it"}
    assert plan.repath == {"C": ("D2", "S", "C"), "G1": ("D2", "S", "C", "G1"), "G2": ("D2", "S", "C", "G2")}
    # a street whose shape still holds its community, under a new district: everything below follows
    wide = [feat("D2", "district", None, square(0, 0, 8, 3)), feat("S", "street", "D2", square(0, 0, 2, 2))]
    plan = im.plan(wide, stored(im.plan(two, {}).grids))
    assert plan.errors == []
    assert [g.path for g in plan.grids] == [("D2",), ("D2", "S")]
    assert plan.repath == {"C": ("D2", "S", "C"), "G1": ("D2", "S", "C", "G1"), "G2": ("D2", "S", "C", "G2")}


def test_a_new_level_must_stay_above_the_loaded_children() -> None:
    loaded = stored(im.plan(CITY, {}).grids)
    plan = im.plan([feat("C", "grid", "S", square(0, 0, 2, 1))], loaded)
    assert errors(plan) == {0: "G1, a loaded grid under it, would not be below a grid"}


@pytest.mark.parametrize(("data", "message"), [(b"{not json", "not JSON"), (b"\xff\xfe", "not UTF-8"),
                                               (b'{"type": "Feature"}', "must be a FeatureCollection"),
                                               (b"[]", "must be a FeatureCollection")])
def test_a_file_that_is_not_a_feature_collection_is_refused_whole(data: bytes, message: str) -> None:
    with pytest.raises(im.FileError, match=message):
        im.read(data)


def test_the_shipped_sample_city_is_good_tiles_exactly_and_holds_every_sample_place() -> None:
    feats = im.read((REPO / "data" / "city-sample.geojson").read_bytes())
    assert feats == json.loads(city.to_geojson(city.features()))["features"]     # it is the generator's output
    plan = im.plan(feats, {})
    assert plan.errors == []
    levels = [g.level for g in plan.grids]
    assert levels.count(Level.DISTRICT) >= 3 and levels.count(Level.GRID) >= 36
    cands = [rules.Candidate(rules.GridRef(g.code, g.name, g.path), g.geometry) for g in plan.grids]
    with open(REPO / "data" / "places-sample.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            got = rules.innermost(cands, float(row["lat"]), float(row["lon"]))
            assert got is not None and len(got.path) == 4, row     # every sample place lies in a grid
    home = rules.innermost(cands, 31.2304, 121.4737)
    assert home is not None and len(home.path) == 4


def test_the_generator_makes_about_as_many_grids_as_asked() -> None:
    for n in (10, 48, 500, 5000):
        d, s, c, g = city.branching(n)
        assert 0.7 * n <= d * s * c * g <= 1.3 * n, (n, d, s, c, g)
    feats = city.features(500)
    plan = im.plan(feats, {})
    assert plan.errors == [] and len(plan.grids) == len(feats)
