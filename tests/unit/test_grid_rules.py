"""grids/rules.py: which grid holds a point (innermost, edges, outside)."""
from __future__ import annotations

from typing import Any

import pytest

from grids import rules


def square(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def cand(code: str, path: tuple[str, ...], geo: dict[str, Any]) -> rules.Candidate:
    return rules.Candidate(rules.GridRef(code, code.upper(), path), geo)


D = cand("d", ("d",), square(0, 0, 2, 1))
A = cand("a", ("d", "a"), square(0, 0, 1, 1))     # west half
B = cand("b", ("d", "b"), square(1, 0, 2, 1))     # east half, sharing the edge lon = 1


def test_the_innermost_grid_wins_over_its_parent() -> None:
    got = rules.innermost([D, A, B], lat=0.5, lon=0.25)
    assert got is not None and got.code == "a" and got.path == ("d", "a")


def test_a_point_on_a_shared_edge_gets_exactly_one_grid_the_smallest_code() -> None:
    assert rules.innermost([D, B, A], lat=0.5, lon=1.0) == A.ref
    assert rules.innermost([D, A, B], lat=0.5, lon=1.0) == A.ref


def test_an_interior_beats_an_edge_at_the_same_depth() -> None:
    # "c" only touches the point with its edge; "b" holds it inside
    c = cand("a0", ("d", "a0"), square(1.5, 0.5, 3, 1))
    assert rules.innermost([B, c], lat=0.5, lon=1.5) == B.ref


def test_outside_every_grid_is_none() -> None:
    assert rules.innermost([D, A, B], lat=5.0, lon=5.0) is None
    assert rules.innermost([], lat=0.5, lon=0.5) is None


def test_a_multipolygon_and_a_hole() -> None:
    ring = {"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]],
                                                [[1, 1], [3, 1], [3, 3], [1, 3], [1, 1]]]}
    multi = {"type": "MultiPolygon", "coordinates": [square(10, 10, 11, 11)["coordinates"],
                                                     square(20, 20, 21, 21)["coordinates"]]}
    r, m = cand("r", ("r",), ring), cand("m", ("m",), multi)
    assert rules.innermost([r], lat=2, lon=2) is None          # in the hole
    assert rules.innermost([r], lat=0.5, lon=0.5) == r.ref
    assert rules.innermost([m], lat=20.5, lon=20.5) == m.ref


@pytest.mark.parametrize("name", ["district", "street", "community", "grid"])
def test_levels_round_trip(name: str) -> None:
    assert rules.Level.parse(name).wire == name


def test_an_unknown_level_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'ward'"):
        rules.Level.parse("ward")
