"""Tiered matching without I/O (dispatch/tiers.py, lifecycle.rank): the incident's grid's workers first,
then its community's, then everyone within the radius; members are candidates wherever they are."""
from __future__ import annotations

import math
from datetime import UTC, datetime

from dispatch import lifecycle as lc
from dispatch import tiers
from dispatch.offers import Plan, Tier
from dispatch.roster import ResponderStatus as RS

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
HOME = (31.2304, 121.4737)
PLAN = Plan(10.0, 3, 20.0)


def member(rid: str, *codes: str, at: tuple[float, float] | None = None, phone: bool = False,
           status: str = RS.AVAILABLE) -> tiers.Member:
    return tiers.Member(rid, frozenset(codes), status, at[0] if at else None, at[1] if at else None, phone)


def near(rid: str, km: float, online: bool = True) -> lc.Candidate:
    return lc.Candidate(rid, km, RS.AVAILABLE, online=online)


def first(candidates: list[lc.Candidate], offered: set[str] | None = None) -> str:
    inc = lc.Incident("i1", lc.Status.QUEUED, "res", None, 0, True, None, PLAN)
    d = lc.next_offer(inc, candidates, offered or set(), NOW)
    assert isinstance(d, lc.MakeOffer), d
    return d.responder_id


def test_the_grids_worker_before_a_nearer_community_worker_before_a_nearer_passer_by():
    merged = tiers.merge([near("passer", 0.1), near("east", 0.7), near("west", 1.3)],
                         [member("east", "G2"), member("west", "G1")], "G1", *HOME, {}, paging=True)
    assert {c.responder_id: c.tier for c in merged} == {"passer": Tier.RADIUS, "east": Tier.COMMUNITY,
                                                        "west": Tier.GRID}
    assert [c.responder_id for c in lc.rank(merged, set(), 10)] == ["west", "east", "passer"]
    assert first(merged) == "west"
    assert first(merged, {"west"}) == "east"
    assert first(merged, {"west", "east"}) == "passer"


def test_nearest_first_within_a_tier_and_on_line_before_off_line_at_similar_distances():
    merged = tiers.merge([near("a", 0.9), near("b", 0.4), near("c", 0.3, online=False)],
                         [member("a", "G1"), member("b", "G1"), member("c", "G1")], "G1", *HOME, {}, paging=True)
    assert [c.responder_id for c in lc.rank(merged, set(), 10)] == ["b", "a"]   # c: off line, no phone
    with_phone = [lc.Candidate("c", 0.3, RS.AVAILABLE, online=False, pageable=True, tier=Tier.GRID), *merged[:2]]
    assert [c.responder_id for c in lc.rank(with_phone, set(), 10)] == ["b", "a", "c"]   # +1 km off line


def test_a_member_the_index_did_not_find_is_added_with_their_distance_or_last_without_a_position():
    far = (HOME[0] + 0.2, HOME[1])                        # ~22 km: outside the 10 km radius
    merged = tiers.merge([near("passer", 0.1)],
                         [member("far", "G1", at=far), member("sms", "G1", phone=True),
                          member("quiet", "G1")], "G1", *HOME, {"far": True, "sms": False}, paging=True)
    by_id = {c.responder_id: c for c in merged}
    assert 21 < by_id["far"].distance_km < 23 and by_id["far"].online
    assert math.isinf(by_id["sms"].distance_km) and by_id["sms"].pageable and not by_id["sms"].online
    assert tiers.offer_distance(by_id["sms"]) is None and tiers.offer_distance(by_id["far"]) is not None
    # members are candidates wherever they are; "quiet" has neither a connection nor a phone: unreachable
    assert [c.responder_id for c in lc.rank(merged, set(), PLAN.radius_km)] == ["far", "sms", "passer"]
    no_sms = tiers.merge([], [member("sms", "G1", phone=True)], "G1", *HOME, {}, paging=False)
    assert lc.rank(no_sms, set(), 10) == []              # dispatch.offer_sms never: nothing would reach them


def test_a_radius_candidate_still_needs_the_radius():
    assert lc.rank([near("x", 10.5)], set(), 10) == []
    assert [c.responder_id for c in lc.rank([lc.Candidate("x", 10.5, RS.AVAILABLE, tier=Tier.COMMUNITY)],
                                            set(), 10)] == ["x"]


def test_tiers_recorded_for_the_report_and_the_first_offer_planned_by_tier():
    merged = tiers.merge([near("passer", 0.1)], [member("east", "G2", at=HOME)], "G1", *HOME, {"east": True},
                         paging=True)
    assert tiers.tiers_of(merged) == {"east": "community"}
    inc = lc.Incident("", lc.Status.QUEUED, "res", None, 0, True, None, PLAN)
    plan = lc.plan_first_offer(inc, merged, radius_km=10, max_offers=3, now=NOW, offer_timeout_s=20)
    assert isinstance(plan, lc.OfferFirstAvailable) and plan.responder_ids == ("east", "passer")


def test_tier_of_a_member():
    assert tiers.tier_of(member("m", "G1", "G2"), "G1") == Tier.GRID
    assert tiers.tier_of(member("m", "C1"), "G1") == Tier.COMMUNITY
