"""The incident lifecycle and matching rule, without I/O."""
from __future__ import annotations

from collections.abc import Set as AbstractSet
from datetime import UTC, datetime, timedelta
from typing import TypedDict

import pytest

from dispatch import lifecycle as lc
from infra.errors import BadRequest, Conflict, Forbidden

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def inc(status: str = "queued", attempts: int = 0, responder: str | None = None, position: bool = True) -> lc.Incident:
    return lc.Incident(id="i1", status=lc.Status(status), reporter_id="res", responder_id=responder,
                       offer_attempts=attempts, has_position=position)


def cand(rid: str, km: float, status: str = "available", online: bool = True) -> lc.Candidate:
    return lc.Candidate(rid, km, status, online)


def step(i: lc.Incident, cands: list[lc.Candidate], before: AbstractSet[str] = frozenset(),
         max_offers: int = 3) -> lc.Decision:
    return lc.next_step(i, cands, set(before), radius_km=10, max_offers=max_offers, now=NOW, offer_timeout_s=20)


def test_offers_the_nearest_eligible_candidate():
    d = step(inc(), [cand("far", 5), cand("near", 1), cand("busy", 0.1, "busy"), cand("gone", 0.2, online=False),
                     cand("offered", 0.3, "offered"), cand("out", 11)])
    assert d == lc.MakeOffer("near", 1, NOW + timedelta(seconds=20))


def test_skips_responders_already_offered_this_incident():
    d = step(inc("offered", attempts=1), [cand("a", 1), cand("b", 2)], before={"a"})
    assert isinstance(d, lc.MakeOffer) and d.responder_id == "b" and d.attempt == 2


def test_escalates_without_candidates_after_max_offers_or_without_position():
    assert step(inc(), []) == lc.Escalate("no_candidate")
    assert step(inc("offered", attempts=3), [cand("x", 1)]) == lc.Escalate("max_offers")
    assert step(inc(position=False), [cand("x", 1)]) == lc.Escalate("no_position")
    assert isinstance(step(inc("offered", attempts=2), [cand("x", 1)]), lc.MakeOffer)


def test_a_position_rougher_than_the_radius_counts_as_none():
    rough = lc.Incident(id="i", status=lc.Status.QUEUED, reporter_id="r", responder_id=None, offer_attempts=0,
                        has_position=True, accuracy_m=50_000)
    assert step(rough, [cand("x", 1)]) == lc.Escalate("no_position")
    fine = lc.Incident(id="i", status=lc.Status.QUEUED, reporter_id="r", responder_id=None, offer_attempts=0,
                       has_position=True, accuracy_m=9_000)
    assert isinstance(step(fine, [cand("x", 1)]), lc.MakeOffer)


def test_ties_break_by_id_for_a_stable_order():
    d = step(inc(), [cand("b", 1), cand("a", 1)])
    assert isinstance(d, lc.MakeOffer) and d.responder_id == "a"


def test_no_offer_for_an_incident_that_is_not_waiting():
    for status in ("assigned", "escalated", "resolved", "cancelled"):
        with pytest.raises(Conflict):
            step(inc(status), [cand("a", 1)])


def test_accept_only_own_open_unexpired_offer():
    lc.check_accept(inc("offered"), "pending", "r1", "r1", offer_expired=False)
    with pytest.raises(Forbidden):
        lc.check_accept(inc("offered"), "pending", "r1", "r2", offer_expired=False)
    with pytest.raises(Conflict):
        lc.check_accept(inc("offered"), "pending", "r1", "r1", offer_expired=True)
    with pytest.raises(Conflict):
        lc.check_accept(inc("offered"), "withdrawn", "r1", "r1", offer_expired=False)
    with pytest.raises(Conflict):
        lc.check_accept(inc("assigned", responder="r9"), "pending", "r1", "r1", offer_expired=False)


@pytest.mark.parametrize("frm,to,ok", [
    ("assigned", "en_route", True), ("assigned", "on_scene", False), ("assigned", "resolved", False),
    ("en_route", "on_scene", True), ("en_route", "resolved", False),
    ("on_scene", "resolved", True), ("on_scene", "en_route", False),
    ("resolved", "resolved", False), ("en_route", "en_route", False), ("cancelled", "on_scene", False),
])
def test_progress_moves_forward_only(frm, to, ok):
    i = inc(frm, responder="r1")
    if ok:
        assert lc.check_progress(i, "r1", to) == lc.Status(to)
    else:
        with pytest.raises(Conflict):
            lc.check_progress(i, "r1", to)


def test_a_skipped_step_names_the_next_one():
    for frm, nxt in (("assigned", "en_route"), ("en_route", "on_scene")):
        with pytest.raises(Conflict, match=f"next step is {nxt}"):
            lc.check_progress(inc(frm, responder="r1"), "r1", "resolved")
    assert lc.NEXT_STEP == {lc.Status.ASSIGNED: lc.Status.EN_ROUTE, lc.Status.EN_ROUTE: lc.Status.ON_SCENE,
                            lc.Status.ON_SCENE: lc.Status.RESOLVED}


def test_only_the_reporter_adds_a_note():
    lc.check_note(inc("assigned", responder="r1"), "res")
    for other in ("r1", "someone"):
        with pytest.raises(Forbidden):
            lc.check_note(inc("assigned", responder="r1"), other)


def test_progress_only_by_the_assigned_responder_and_to_known_states():
    with pytest.raises(Forbidden):
        lc.check_progress(inc("assigned", responder="r1"), "r2", "en_route")
    for bad in ("assigned", "flying", "escalated"):
        with pytest.raises(BadRequest):
            lc.check_progress(inc("assigned", responder="r1"), "r1", bad)


def test_cancel_by_reporter_while_open():
    lc.check_cancel(inc("assigned"), "res")
    with pytest.raises(Forbidden):
        lc.check_cancel(inc("assigned"), "someone")
    with pytest.raises(Conflict):
        lc.check_cancel(inc("resolved"), "res")


def test_assign_needs_unassigned_incident_and_free_responder():
    lc.check_assign(inc("escalated"), "available")
    lc.check_assign(inc("offered"), "available")
    with pytest.raises(Conflict):
        lc.check_assign(inc("assigned", responder="x"), "available")
    for status in ("busy", "off_duty", None):
        with pytest.raises(Conflict):
            lc.check_assign(inc("escalated"), status)


def test_close_dispositions():
    assert lc.check_close(inc("escalated"), "false_alarm") == lc.Status.CANCELLED
    assert lc.check_close(inc("on_scene", responder="r"), "resolved") == lc.Status.RESOLVED
    with pytest.raises(BadRequest):
        lc.check_close(inc("escalated"), "whatever")
    with pytest.raises(Conflict):
        lc.check_close(inc("cancelled"), "resolved")


# ---------------------------------------------------------------- the first offer, planned without statuses
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_cand = st.builds(lc.Candidate,
                  responder_id=st.sampled_from([f"r{i}" for i in range(8)]),
                  distance_km=st.floats(0, 12, allow_nan=False),
                  status=st.sampled_from(["available", "offered", "busy", "off_duty"]),
                  online=st.booleans(),
                  # issue 14: a worker of the incident's grid or community, matched by tier wherever they are
                  tier=st.sampled_from(["grid", "community", "radius"]))


class Limits(TypedDict):
    radius_km: float
    max_offers: int
    now: datetime
    offer_timeout_s: float


@settings(max_examples=400, deadline=None)
@given(cands=st.lists(_cand, max_size=10, unique_by=lambda c: c.responder_id),
       has_position=st.booleans(), accuracy=st.one_of(st.none(), st.floats(1, 20000)))
def test_planned_first_offer_picks_whom_next_step_picks(cands, has_position, accuracy):
    """Claiming the first available responder of the plan's list = next_step with the statuses known."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    inc = lc.Incident("i", lc.Status.QUEUED, "rep", None, 0, has_position, accuracy)
    kw = Limits(radius_km=5.0, max_offers=3, now=now, offer_timeout_s=30)
    known = lc.next_step(inc, cands, set(), **kw)
    plan = lc.plan_first_offer(inc, [lc.Candidate(c.responder_id, c.distance_km, "unknown", c.online, tier=c.tier)
                                     for c in cands], **kw)
    status = {c.responder_id: c.status for c in cands}
    if isinstance(plan, lc.Escalate):
        assert known == plan
        return
    claimed = next((r for r in plan.responder_ids if status[r] == "available"), None)
    if claimed is None:
        assert known == lc.Escalate("no_candidate")
    else:
        assert known == lc.MakeOffer(claimed, plan.attempt, plan.expires_at)


def test_only_a_priority_1_incident_preempts_the_nearest_lower_priority_offer():
    pool = [cand("far", 2.0, "offered"), cand("near", 1.0, "offered"), cand("same", 0.5, "offered"),
            cand("busy", 0.1, "busy"), cand("gone", 0.2, "offered", online=False), cand("out", 20.0, "offered"),
            cand("asked", 0.3, "offered")]
    held = {"far": 3, "near": 2, "same": 1, "gone": 3, "out": 3, "asked": 3}
    got = lc.preemption_target(1, pool, held, {"asked"}, radius_km=10)
    assert got is not None and got.responder_id == "near"
    assert lc.preemption_target(2, pool, held, set(), radius_km=10) is None
    assert lc.preemption_target(1, pool, {"same": 1}, set(), radius_km=10) is None


def test_a_trusted_report_takes_a_responder_from_an_untrusted_report_of_the_same_or_lower_priority():
    pool = [cand("near", 1.0, "offered"), cand("mid", 1.5, "offered"), cand("far", 2.0, "offered"),
            cand("gone", 0.2, "offered", online=False), cand("out", 20.0, "offered"), cand("asked", 0.3, "offered")]
    held = {"near": 1, "mid": 2, "far": 3, "gone": 3, "out": 3, "asked": 3}
    untrusted = frozenset({"mid", "far", "gone", "out", "asked"})     # "near" holds a trusted report's offer
    got = lc.preemption_target(2, pool, held, {"asked"}, radius_km=10, trusted=True, untrusted_held=untrusted)
    assert got is not None and got.responder_id == "mid"              # not the more urgent report "near" holds
    got = lc.preemption_target(3, pool, held, {"asked"}, radius_km=10, trusted=True, untrusted_held=untrusted)
    assert got is not None and got.responder_id == "far"
    # an untrusted report takes no one below priority 1; a trusted one takes nothing from a trusted report
    assert lc.preemption_target(2, pool, held, set(), radius_km=10, untrusted_held=untrusted) is None
    assert lc.preemption_target(2, pool, held, set(), radius_km=10, trusted=True) is None
    # priority 1 trusted: an untrusted priority-1 offer as well as any lower priority
    got = lc.preemption_target(1, pool, {"near": 1}, set(), radius_km=10, trusted=True,
                               untrusted_held=frozenset({"near"}))
    assert got is not None and got.responder_id == "near"


@pytest.mark.parametrize("p", [1, 2, 3])
@pytest.mark.parametrize("q", [1, 2, 3])
def test_preemption_never_turns_back(p, q):
    """If report A (priority p, trusted) took B's (priority q, untrusted) responder, B cannot take it back."""
    if lc.may_preempt(p, True, q, False):
        assert not lc.may_preempt(q, False, p, True)


def test_trust_follows_the_flood_gate():
    assert not lc.trusted_report("ws", verified=False, known=False)
    assert not lc.trusted_report("http", verified=False, known=False)
    assert lc.trusted_report("ws", verified=True, known=False) and lc.trusted_report("http", verified=False, known=True)
    assert lc.trusted_report("sms", verified=False, known=False)
