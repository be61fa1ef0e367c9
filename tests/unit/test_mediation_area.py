"""mediation/area.py without I/O: a mediator's area, the grids filter, "your area" first, the head start."""
from __future__ import annotations

import pytest

from infra.errors import BadRequest
from mediation.area import Membership, Where, area_roots, head_start_left, in_area, listed, push_delay, within

LOTUS_2 = ("D1", "S1", "C1", "G12")
PINE = ("D1", "S1", "C2")


def test_a_grid_makes_its_community_the_area_any_other_level_itself():
    assert area_roots([Membership("G11", "grid", "C1")]) == {"C1"}
    assert area_roots([Membership("C2", "community", "S1"), Membership("S9", "street", "D9")]) == {"C2", "S9"}
    assert area_roots([Membership("G0", "grid", None)]) == {"G0"}      # a grid without a parent: itself
    assert area_roots([]) == frozenset()


def test_in_area_means_the_cases_path_holds_a_root():
    assert in_area(LOTUS_2, frozenset({"C1"}))
    assert in_area(LOTUS_2, frozenset({"D1"}))
    assert not in_area(PINE, frozenset({"C1"}))
    assert not in_area(None, frozenset({"C1"}))          # a case without a grid is in nobody's area
    assert not in_area(LOTUS_2, frozenset())             # a mediator without grids has no area


def test_the_grids_filter_takes_descendants_and_refuses_cases_without_a_grid():
    assert within(LOTUS_2, None) and within(None, None)
    assert within(LOTUS_2, frozenset({"C1"})) and within(LOTUS_2, frozenset({"G12", "C2"}))
    assert not within(PINE, frozenset({"C1"}))
    assert not within(None, frozenset({"D1"}))


def test_listed_puts_the_area_first_and_keeps_the_order_within_each_group():
    cases = [("a", PINE), ("b", LOTUS_2), ("c", None), ("d", ("D1", "S1", "C1"))]
    out = listed(cases, lambda c: c[1], frozenset({"C1"}))
    assert [(c[0], mine) for c, mine in out] == [("b", True), ("d", True), ("a", False), ("c", False)]
    assert [mine for _, mine in listed(cases, lambda c: c[1], frozenset())] == [False] * 4


@pytest.mark.parametrize("untaken,staffed,age,left", [
    (True, True, 0, 60), (True, True, 45, 15), (True, True, 60, 0), (True, True, 600, 0),
    (False, True, 0, 0),          # taken: nothing to offer
    (True, False, 0, 0),          # nobody's area: everyone at once
    (True, True, -5, 60),         # a clock behind: never more than the head start
])
def test_head_start_left(untaken, staffed, age, left):
    assert head_start_left(untaken, staffed, age, 60) == left


def test_push_delay_holds_a_case_only_for_mediators_of_other_areas():
    assert push_delay(15.0, in_area=True) == 0
    assert push_delay(15.0, in_area=False) == 15
    assert push_delay(0.0, in_area=False) == 0


def test_where_names_the_field_that_is_wrong():
    Where().check()
    Where(31.2, 121.4).check()
    Where(grid="C1").check()
    for where, field in [(Where(lat=31.2), "lon"), (Where(lon=121.4), "lat"), (Where(31.2, 121.4, "C1"), "grid"),
                         (Where(grid=" "), "grid")]:
        with pytest.raises(BadRequest) as e:
            where.check()
        assert e.value.message.startswith(field)
