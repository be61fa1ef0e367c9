"""Areas without I/O (dispatch/access.py): who is limited, what a queue filter lets through, and the
refusal of an incident outside an area-limited dispatcher's area."""
from __future__ import annotations

import pytest

from dispatch import access
from infra.errors import Forbidden

G1 = ["D1", "S1", "C1", "G1"]
G3 = ["D1", "S1", "C2", "G3"]


def test_only_a_dispatcher_is_ever_limited():
    assert access.area_of("dispatcher", True, frozenset({"C1"})).limited
    assert not access.area_of("admin", True, frozenset({"C1"})).limited
    assert not access.area_of("dispatcher", False, frozenset({"C1"})).limited


def test_a_filter_takes_descendants_and_every_set_must_be_met():
    assert access.visible(G1, ())                                     # no filter: everything
    assert access.visible(None, ())
    assert access.visible(G1, (frozenset({"C1"}),))                    # a community holds its grids
    assert not access.visible(G3, (frozenset({"C1"}),))
    assert not access.visible(None, (frozenset({"D1"}),))             # in no grid: in no filter
    both = (frozenset({"G1", "G3"}), frozenset({"C2"}))               # asked for, within the area
    assert access.visible(G3, both) and not access.visible(G1, both)


def test_queue_filter_of_a_watch():
    limited = access.Area(True, frozenset({"C2"}))
    assert access.queue_filter(access.UNLIMITED, None) == ()
    assert access.queue_filter(access.UNLIMITED, []) == ()
    assert access.queue_filter(access.UNLIMITED, ["G1"]) == (frozenset({"G1"}),)
    assert access.queue_filter(limited, None) == (frozenset({"C2"}),)   # limited whatever they ask
    assert access.queue_filter(limited, ["G1"]) == (frozenset({"G1"}), frozenset({"C2"}))
    assert access.queue_filter(access.Area(True, frozenset()), None) == (frozenset(),)   # no area: nothing


def test_check_area():
    area = access.Area(True, frozenset({"C1"}))
    access.check_area(area, G1)
    access.check_area(access.Area(False, frozenset({"C1"})), G3)
    for path in (G3, None):
        with pytest.raises(Forbidden, match="outside your area"):
            access.check_area(area, path)
