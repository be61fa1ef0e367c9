"""Staff intake's pure rules (dispatch/intake_rules.py): where an incident is, and the duplicate rule."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatch import intake_rules as r
from infra.errors import BadRequest, Conflict

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def seen(id_: str = "b", reporter: str = "y", category: str = "fire", dlat: float = 0.0, age_s: float = 0,
         status: str = "escalated", lat: float | None = 31.23) -> r.Seen:
    return r.Seen(id_, reporter, category, None if lat is None else lat + dlat, None if lat is None else 121.47,
                  T0 - timedelta(seconds=age_s), status)


NEW = seen("a", "x")


def test_where_prefers_coordinates_then_place_then_words():
    assert r.where(31.2, 121.4, "p1", " 老街  15号 ") == r.Where(31.2, 121.4, None, "老街 15号")
    assert r.where(None, None, "p1", "") == r.Where(None, None, "p1", "")
    assert r.where(None, None, None, "Market") == r.Where(None, None, None, "Market")
    for bad in ((None, None, None, "  "), (31.2, None, None, "x"), (None, None, None, "x" * 301)):
        with pytest.raises(BadRequest):
            r.where(*bad)


def test_note_puts_where_first_without_repeats():
    assert r.note_for("chest pain", "gate 3", "Clinic, 1 Road") == "Clinic, 1 Road\ngate 3\nchest pain"
    assert r.note_for("", "", None) == ""


def test_same_phone_is_a_duplicate_anywhere_any_category():
    far = seen(reporter="x", category="police", dlat=0.5, age_s=3600)
    assert r.why_duplicate(NEW, far, same_phone=True)[0] == ["same_phone"]
    assert r.why_duplicate(NEW, far, same_phone=False)[0] == []


def test_nearby_same_category_within_300m_and_15min():
    reasons, dist = r.why_duplicate(NEW, seen(dlat=0.0025, age_s=14 * 60), same_phone=True)
    assert reasons == ["nearby"] and dist is not None and 270 < dist < 290
    assert r.why_duplicate(NEW, seen(dlat=0.0028), same_phone=True)[0] == []        # 311 m
    assert r.why_duplicate(NEW, seen(age_s=16 * 60), same_phone=True)[0] == []      # too old
    assert r.why_duplicate(NEW, seen(category="medical"), same_phone=True)[0] == []
    assert r.why_duplicate(NEW, seen(status="resolved"), same_phone=True)[0] == []
    assert r.why_duplicate(NEW, seen(lat=None), same_phone=True) == ([], None)
    assert r.why_duplicate(NEW, seen("a"), same_phone=True)[0] == []                # itself
    both = r.why_duplicate(NEW, seen(reporter="x"), same_phone=True)[0]
    assert both == ["same_phone", "nearby"]


def test_box_holds_the_radius():
    lat_min, lat_max, lon_min, lon_max = r.box(31.23, 121.47)
    assert r.distance_m(31.23, 121.47, lat_max, 121.47) == pytest.approx(300, rel=0.01)
    assert r.distance_m(31.23, 121.47, 31.23, lon_max) == pytest.approx(300, rel=0.01)
    assert lat_min < 31.23 < lat_max and lon_min < 121.47 < lon_max


def test_link_rules():
    r.check_link("a", "b", "escalated", "assigned")
    with pytest.raises(BadRequest):
        r.check_link("a", "a", "escalated", "escalated")
    with pytest.raises(Conflict):
        r.check_link("a", "b", "cancelled", "assigned")
    with pytest.raises(Conflict):
        r.check_link("a", "b", "queued", "resolved")
    with pytest.raises(BadRequest):
        r.check_channel("sms")
