"""Issue 19 rules without I/O: a true escalation reason, a job handed back, who sees the reporter's phone."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from dispatch import access, roster
from dispatch import lifecycle as lc
from dispatch.roster import ResponderStatus as RS
from infra.errors import Conflict

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def inc(status: str = "offered", attempts: int = 1, responder: str | None = None,
        position: bool = True) -> lc.Incident:
    return lc.Incident(id="i1", status=lc.Status(status), reporter_id="res", responder_id=responder,
                       offer_attempts=attempts, has_position=position)


def step(i: lc.Incident, cands: list[lc.Candidate], after: str | None, before: frozenset[str] = frozenset(),
         max_offers: int = 3) -> lc.Decision:
    return lc.next_step(i, cands, set(before), radius_km=10, max_offers=max_offers, now=NOW, offer_timeout_s=20,
                        after=after)


@pytest.mark.parametrize(("after", "reason"), [
    (None, "no_candidate"),              # nobody was asked: only then "no responder nearby"
    ("declined", "declined"),
    ("off_duty", "declined"),
    ("expired", "no_answer"),
    ("disconnected", "no_answer"),
    ("preempted", "preempted"),
    ("handed_back", "handed_back"),
    ("something_new", "no_candidate"),   # an end the rule does not know claims nothing more
])
def test_nobody_else_says_how_the_last_try_ended(after: str | None, reason: str) -> None:
    # the responder who declined is nearby, in range, and still on duty: "no responder nearby" would be false
    declined_nearby = lc.Candidate("r1", 0.3, RS.AVAILABLE)
    assert step(inc(), [declined_nearby], after, before=frozenset({"r1"})) == lc.Escalate(reason)
    assert lc.nobody_else(after) == reason
    assert reason in lc.NOBODY_ELSE <= lc.ESCALATION_REASONS


def test_the_other_reasons_come_first_and_a_candidate_is_still_offered() -> None:
    assert step(inc(attempts=3), [], "declined") == lc.Escalate("max_offers")
    assert step(inc(position=False), [], "expired") == lc.Escalate("no_position")
    offer = step(inc(), [lc.Candidate("r2", 1.0, RS.AVAILABLE)], "declined", before=frozenset({"r1"}))
    assert isinstance(offer, lc.MakeOffer) and offer.responder_id == "r2"
    assert {"max_offers", "no_position", "bad_position", "flood_hold"} <= lc.ESCALATION_REASONS


def test_after_a_rebuild_any_nobody_else_waits_queued_rather_than_escalate() -> None:
    for reason in lc.NOBODY_ELSE:
        assert lc.waits_for_presence(lc.Escalate(reason), True)
        assert not lc.waits_for_presence(lc.Escalate(reason), False)
    assert not lc.waits_for_presence(lc.Escalate("max_offers"), True)


def test_only_the_working_responder_hands_a_job_back() -> None:
    for status in ("assigned", "en_route", "on_scene"):
        lc.check_hand_back(inc(status, responder="r1"), "r1")
        with pytest.raises(Conflict):
            lc.check_hand_back(inc(status, responder="r1"), "r2")
    for status in ("queued", "offered", "escalated", "resolved", "cancelled"):
        with pytest.raises(Conflict):
            lc.check_hand_back(inc(status, responder="r1"), "r1")
    assert set(lc.HAND_BACK_REASONS) == {"signed_out", "off_duty"}


def test_a_busy_responder_leaves_duty_only_by_handing_back() -> None:
    with pytest.raises(Conflict, match="hand it back"):
        roster.check_end_duty(RS.BUSY)
    roster.check_end_duty(RS.BUSY, hand_back=True)
    roster.check_end_duty(RS.AVAILABLE, hand_back=True)
    with pytest.raises(Conflict):
        roster.check_end_duty(RS.OFF_DUTY, hand_back=True)


def view(status: str, responder: str | None) -> dict[str, Any]:
    return {"id": "i1", "status": status, "reporter": {"id": "res", "name": ""},
            "responder": {"id": responder, "name": "Li"} if responder else None}


@pytest.mark.parametrize(("status", "responder", "who", "sees"), [
    ("assigned", "r1", "r1", True),
    ("en_route", "r1", "r1", True),
    ("on_scene", "r1", "r1", True),
    ("resolved", "r1", "r1", False),     # never after the job ends
    ("cancelled", "r1", "r1", False),
    ("offered", None, "r1", False),      # the responder only asked
    ("escalated", None, "r1", False),
    ("assigned", "r1", "r2", False),     # another responder
    ("assigned", "r1", "res", False),    # the reporter (it is their own phone, but no one needs it back)
    ("assigned", "r1", "disp", False),   # other readers: dispatchers get no phone in incident views
    ("assigned", "r1", None, False),     # a system change
])
def test_the_reporters_phone_goes_to_the_working_responder_only(status: str, responder: str | None,
                                                                who: str | None, sees: bool) -> None:
    v = view(status, responder)
    got = access.with_phone(v, "+8613800138000", who)
    assert ("phone" in got["reporter"]) is sees
    assert access.sees_phone(responder, status, who) is sees
    assert "phone" not in v["reporter"]                      # the shared view is never changed in place
    if sees:
        assert got["reporter"]["phone"] == "+8613800138000"
    assert access.with_phone(v, None, who) is v             # an unknown phone: nothing to add
