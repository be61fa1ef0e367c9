"""Cases followed up without I/O (mediation/followup.py): deadlines and overdue, the one extension, who reads
the event log, the satisfaction question and who sees an answer."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from infra.errors import BadRequest, Conflict, Forbidden
from infra.identity import Account
from mediation import followup as f
from mediation import views
from mediation.rules import Case, Feedback, Party, Status
from tests.unit.test_mediation_rules import (
    FILER,
    MED,
    NOW,
    OTHER,
    admin,
    agency,
    case,
    filer,
    mediator,
    mediator2,
    other,
    third,
)

DUE, TAKE = f.deadlines(NOW, 30, 24)


def timed(status: str = "filed", *, with_mediator: bool = False, overdue_since: datetime | None = None) -> Case:
    return replace(case(status, with_mediator=with_mediator), due_at=DUE, take_by=TAKE, overdue_since=overdue_since)


def test_deadlines_from_filing() -> None:
    assert DUE == NOW + timedelta(days=30) and TAKE == NOW + timedelta(hours=24)
    due, take = f.deadlines(NOW, 0.5, 0.001)        # short values, as a test configuration gives
    assert due == NOW + timedelta(hours=12) and take == NOW + timedelta(seconds=3.6)


def test_overdue_reason_follows_the_deadline_that_applies() -> None:
    c = timed()
    assert f.overdue_reason(c, TAKE - timedelta(seconds=1)) is None
    assert f.overdue_reason(c, TAKE) == f.Overdue.TAKE
    taken = timed("in_mediation", with_mediator=True)
    assert f.overdue_reason(taken, TAKE + timedelta(hours=1)) is None      # the take deadline no longer applies
    assert f.overdue_reason(taken, DUE) == f.Overdue.DUE
    assert f.overdue_reason(c, DUE) == f.Overdue.DUE                       # due is named first
    for final in ("settled", "failed", "referred", "withdrawn"):
        assert f.overdue_reason(timed(final), DUE + timedelta(days=1)) is None


def test_the_case_object_says_overdue_only_when_marked_and_open() -> None:
    marked = timed(overdue_since=TAKE)
    assert f.is_overdue(marked) and not f.is_overdue(timed())
    assert not f.is_overdue(replace(marked, status=Status.FAILED))
    v = views.case_view(marked, views.Viewer.STAFF)
    assert v["overdue"] is True and v["due_at"] == "2026-12-27T12:00:00Z" and v["take_by"] == "2026-11-28T12:00:00Z"
    taken = views.case_view(timed("in_mediation", with_mediator=True), views.Viewer.STAFF)
    assert taken["take_by"] is None and taken["overdue"] is False


def test_a_take_clears_an_overdue_mark_unless_due_has_passed_too() -> None:
    late = timed(overdue_since=TAKE)
    assert f.overdue_after_take(late, TAKE + timedelta(hours=1)) is None
    assert f.overdue_after_take(late, DUE + timedelta(hours=1)) == TAKE
    assert f.overdue_after_take(timed(), DUE) is None


def test_close_event_names_a_referral() -> None:
    assert f.close_event(Status.REFERRED) == f.Event.REFERRED and f.close_event(Status.FAILED) == f.Event.CLOSED


def test_event_log_is_for_the_case_mediator_and_admins() -> None:
    c = timed("in_mediation", with_mediator=True)
    f.check_events(c, mediator)
    f.check_events(c, admin)
    for who in (mediator2, filer, other, agency, Account(MED, "dispatcher"), Account(MED, "clerk")):
        with pytest.raises(Forbidden):
            f.check_events(c, who)


def test_extend_once_with_a_reason_by_the_case_mediator() -> None:
    c = timed("in_mediation", with_mediator=True, overdue_since=DUE)
    x = f.extend(c, mediator, 10, "  waiting for the surveyor ", DUE + timedelta(days=1))
    assert x.due_at == DUE + timedelta(days=10) and x.overdue_since is None and x.reason == "waiting for the surveyor"
    still = f.extend(c, mediator, 1, "one day", DUE + timedelta(days=2))
    assert still.overdue_since == DUE                               # still past the new due_at: stays marked
    for days in (0, 91, -1):
        with pytest.raises(BadRequest, match="days"):
            f.extend(c, mediator, days, "why", NOW)
    with pytest.raises(BadRequest, match="reason"):
        f.extend(c, mediator, 5, "   ", NOW)
    with pytest.raises(Conflict, match="once"):
        f.extend(replace(c, extended_at=NOW), mediator, 5, "again", NOW)
    with pytest.raises(Conflict):
        f.extend(replace(c, status=Status.FAILED), mediator, 5, "closed", NOW)
    for who in (mediator2, filer, admin, agency):
        with pytest.raises(Forbidden):
            f.extend(c, who, 5, "not mine", NOW)


def test_every_joined_party_is_asked_how_they_were_reached() -> None:
    c = replace(case("failed"), parties=(Party(0, "Ann", FILER), Party(1, "Bo", OTHER, via="sms", join_code="X"),
                                         Party(2, "Cy", None, join_code="Y")))
    assert f.ask(c) == [(FILER, "ws"), (OTHER, "sms")]          # Cy never joined: nobody to ask


def test_feedback_once_from_a_party_of_a_closed_case() -> None:
    asked = (Feedback(FILER, "ws", NOW), Feedback(OTHER, "sms", NOW))
    c = replace(case("failed"), feedback=asked)
    assert f.check_feedback(c, filer, 4, "  fair  ") == "fair"
    assert f.check_feedback(c, filer, 1, "   ") is None
    for score in (0, 6, -3):
        with pytest.raises(BadRequest, match="score"):
            f.check_feedback(c, filer, score, None)
    for who in (third, mediator, agency, admin):
        with pytest.raises(Forbidden):
            f.check_feedback(c, who, 3, None)
    with pytest.raises(Conflict, match="closed"):
        f.check_feedback(replace(c, status=Status.IN_MEDIATION), filer, 3, None)
    answered = replace(c, feedback=(replace(asked[0], score=5, answered_at=NOW), asked[1]))
    with pytest.raises(Conflict, match="first answer stands"):
        f.check_feedback(answered, filer, 2, None)
    with pytest.raises(Conflict, match="not asked"):
        f.check_feedback(replace(c, feedback=()), filer, 3, None)


def test_an_answer_is_shown_to_its_party_alone() -> None:
    c = replace(case("failed"), feedback=(Feedback(FILER, "ws", NOW, 5, "good", NOW), Feedback(OTHER, "ws", NOW)))
    assert views.view_for(c, FILER, "resident")["feedback"]["score"] == 5
    assert views.view_for(c, OTHER, "resident")["feedback"] == {
        "asked_at": "2026-11-27T12:00:00Z", "score": None, "comment": None, "answered_at": None}
    for aid, role in ((MED, "mediator"), ("x", "mediator"), ("y", "agency"), ("z", "admin")):
        assert views.view_for(c, aid, role)["feedback"] is None
    assert views.case_view(c, views.Viewer.STAFF)["feedback"] is None
    assert "good" not in str(views.view_for(c, OTHER, "resident"))


def test_a_bare_digit_answers_by_sms_only_while_pending() -> None:
    q = Feedback(OTHER, "sms", NOW)
    assert f.sms_pending(q, NOW + timedelta(days=13), 14)
    assert not f.sms_pending(q, NOW + timedelta(days=15), 14)
    assert not f.sms_pending(replace(q, score=3, answered_at=NOW), NOW, 14)
    assert not f.sms_pending(replace(q, asked_via="ws"), NOW, 14)

