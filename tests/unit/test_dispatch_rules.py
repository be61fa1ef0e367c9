"""Dispatch rules beyond the incident lifecycle, without I/O: offers and their deadlines, the frozen
escalation plan, the responder roster, and who may read an incident."""
from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from dispatch import access, offers, roster
from dispatch import lifecycle as lc
from dispatch.offers import OfferState, Plan, Reason
from dispatch.roster import ResponderStatus as RS
from infra.errors import BadRequest, Conflict, Forbidden, NotFound
from infra.identity import Account

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def offer(state: OfferState = OfferState.PENDING, expires_in: float = 10, to: str = "r1") -> offers.Offer:
    return offers.Offer("o1", "i1", to, state, NOW + timedelta(seconds=expires_in))


def incident(plan: Plan, attempts: int, status: str = "offered") -> lc.Incident:
    return lc.Incident("i1", lc.Status(status), "res", None, attempts, True, None, plan)


# ------------------------------------------------------------------ offers and deadlines

def test_an_offer_is_due_from_its_deadline_on():
    assert not offers.is_due(NOW + timedelta(seconds=1), NOW)
    assert offers.is_due(NOW, NOW)
    assert offers.is_due(NOW - timedelta(seconds=1), NOW)


def test_only_a_pending_offer_ends_and_the_worker_only_ends_due_ones():
    assert offers.may_end(offer(), NOW, only_if_due=False)
    assert not offers.may_end(offer(), NOW, only_if_due=True)          # a stale or early timer does nothing
    assert offers.may_end(offer(expires_in=0), NOW, only_if_due=True)
    for state in (OfferState.ACCEPTED, OfferState.DECLINED, OfferState.EXPIRED, OfferState.WITHDRAWN):
        assert not offers.may_end(offer(state, expires_in=-5), NOW, only_if_due=True)


def test_each_way_of_ending_leaves_its_state_and_only_a_decline_is_not_announced():
    assert offers.ENDS[Reason.DECLINED] == offers.ENDS[Reason.OFF_DUTY] == OfferState.DECLINED
    assert offers.ENDS[Reason.EXPIRED] == OfferState.EXPIRED
    assert {offers.ENDS[r] for r in (Reason.CANCELLED, Reason.TAKEN, Reason.DISCONNECTED)} == {OfferState.WITHDRAWN}
    assert set(offers.ENDS) == set(Reason)
    assert [r for r in Reason if not offers.tells_responder(r)] == [Reason.DECLINED]


def test_own_offer_only():
    assert offers.check_own(offer(), "r1").id == "o1"
    with pytest.raises(Forbidden):
        offers.check_own(offer(), "r2")
    with pytest.raises(NotFound):
        offers.check_own(None, "r1")


# ------------------------------------------------------------------ the frozen escalation plan

def test_the_plan_is_frozen_from_the_settings_of_the_moment():
    class Settings:  # whole numbers, as a hand-written configuration has them
        radius_km: float = 7
        max_offers: int = 2
        offer_timeout_s: float = 15
    plan = offers.freeze(Settings())
    assert plan == Plan(7.0, 2, 15.0)
    assert plan.deadline(NOW) == NOW + timedelta(seconds=15)
    assert plan.as_data() == {"radius_km": 7.0, "max_offers": 2, "offer_timeout_s": 15.0}


def test_later_offers_follow_the_incidents_own_plan():
    near, far = lc.Candidate("a", 1, "available"), lc.Candidate("b", 8, "available")
    three = Plan(radius_km=10, max_offers=3, offer_timeout_s=20)
    one = Plan(radius_km=5, max_offers=1, offer_timeout_s=60)
    # the second and third offers of an incident reported under max_offers=3, whatever the config says now
    assert lc.next_offer(incident(three, 1), [near, far], set(), NOW) == lc.MakeOffer(
        "a", 2, NOW + timedelta(seconds=20))
    assert isinstance(lc.next_offer(incident(three, 2), [near], set(), NOW), lc.MakeOffer)
    assert lc.next_offer(incident(three, 3), [near], set(), NOW) == lc.Escalate("max_offers")
    # and the opposite: reported under max_offers=1, radius 5 km, 60 s to answer
    assert lc.next_offer(incident(one, 1), [near], set(), NOW) == lc.Escalate("max_offers")
    assert lc.next_offer(incident(one, 0, "queued"), [far], set(), NOW) == lc.Escalate("no_candidate")
    first = lc.next_offer(incident(one, 0, "queued"), [near], set(), NOW)
    assert isinstance(first, lc.MakeOffer) and first.expires_at == NOW + timedelta(seconds=60)


def test_an_incident_in_flight_always_has_a_plan():
    with pytest.raises(ValueError):
        lc.next_offer(lc.Incident("i", lc.Status.QUEUED, "r", None, 0, True), [], set(), NOW)


# ------------------------------------------------------------------ relocating and notes

def test_only_queued_or_escalated_incidents_are_relocated():
    plan = Plan(10, 3, 20)
    for status in lc.Status:
        inc = incident(plan, 0, status)
        if status in (lc.Status.QUEUED, lc.Status.ESCALATED):
            lc.check_relocate(inc)
        else:
            with pytest.raises(Conflict):
                lc.check_relocate(inc)


def test_notes_are_appended_to_open_incidents_and_keep_their_tail():
    plan = Plan(10, 3, 20)
    assert lc.note_text("  more  ") == "more"
    with pytest.raises(BadRequest):
        lc.note_text("   ")
    assert lc.append_note(incident(plan, 0, "queued"), "", "x") == "x"
    assert lc.append_note(incident(plan, 0, "queued"), "a", "b") == "a\nb"
    assert len(lc.append_note(incident(plan, 0, "queued"), "a" * 5000, "b")) == lc.NOTE_MAX
    with pytest.raises(Conflict):
        lc.append_note(incident(plan, 0, "resolved"), "a", "b")


# ------------------------------------------------------------------ the roster

def test_duty_start_makes_an_off_duty_responder_available_and_keeps_any_other_state():
    assert roster.start_duty(None) == roster.start_duty(RS.OFF_DUTY) == RS.AVAILABLE
    for s in (RS.AVAILABLE, RS.OFFERED, RS.BUSY):
        assert roster.start_duty(s) == s
    assert roster.skills_after(["a"], None) == ["a"]
    assert roster.skills_after(["a"], ["c", "b", "c"]) == ["b", "c"]


def test_duty_end_only_when_on_duty_and_not_busy():
    roster.check_end_duty(RS.AVAILABLE)
    roster.check_end_duty(RS.OFFERED)
    for s in (None, RS.OFF_DUTY, RS.BUSY):
        with pytest.raises(Conflict):
            roster.check_end_duty(s)
    assert roster.MAY_END_DUTY == {RS.AVAILABLE, RS.OFFERED}
    with pytest.raises(Conflict):
        roster.check_located(False)


def test_an_assignee_holding_an_offer_is_free_this_one_taken_another_preempted():
    assert roster.as_assignee(RS.OFFERED, holds_this_offer=True) == RS.AVAILABLE
    assert roster.as_assignee(RS.OFFERED, holds_this_offer=False) == RS.AVAILABLE   # preempted (§12)
    assert roster.as_assignee(RS.BUSY, False) == RS.BUSY and roster.as_assignee(None, False) is None


# ------------------------------------------------------------------ who may read an incident

@pytest.mark.parametrize("who,reader", [
    (Account("res", "resident"), access.Reader.REPORTER),
    (Account("med", "responder"), access.Reader.RESPONDER),
    (Account("d", "dispatcher"), access.Reader.STAFF),
    (Account("a", "admin"), access.Reader.STAFF),
    (Account("other", "resident"), None),
    (Account("offered", "responder"), None),      # an offer carries the incident; the log is not theirs
    (Account("m", "mediator"), None),
    (Account("g", "agency"), None),
])
def test_who_may_read_an_incident(who, reader):
    parties = access.Parties("res", "med")
    if reader is None:
        with pytest.raises(Forbidden):
            access.reader_of(parties, who)
    else:
        assert access.reader_of(parties, who) == reader
        assert access.audited(reader) == (reader != access.Reader.REPORTER)


def test_the_responder_a_pending_offer_asks_may_read_it_audited_and_no_one_else_by_it():
    parties = access.Parties("res", None, "off")
    assert access.reader_of(parties, Account("off", "responder")) == access.Reader.OFFERED
    assert access.audited(access.Reader.OFFERED)
    with pytest.raises(Forbidden):
        access.reader_of(parties, Account("other", "responder"))


def test_positions_the_live_index_cannot_hold_are_named():
    from dispatch import lifecycle as lc

    assert lc.position_problem(85.05, 180) is None and lc.position_problem(None, None) is None
    assert "lat" in (lc.position_problem(85.06, 0) or "") and "lat" in (lc.position_problem(float("nan"), 0) or "")
    assert "lon" in (lc.position_problem(0, 180.5) or "")
    assert lc.waits_for_presence(lc.Escalate("no_candidate"), True)
    assert not lc.waits_for_presence(lc.Escalate("no_candidate"), False)
    assert not lc.waits_for_presence(lc.Escalate("max_offers"), True)


def test_reporter_and_responder_are_told_of_changes():
    assert access.told(access.Parties("res", None)) == ["res"]
    assert access.told(access.Parties("res", "med")) == ["res", "med"]


# ------------------------------------------------------------------ SQL lists come from the enums; pure cores stay pure

def test_status_lists_in_sql_are_built_from_the_enums():
    from dispatch import store

    assert store.FINAL_SQL == "'resolved','cancelled'"
    assert store.WORKING_SQL == "'assigned','en_route','on_scene'"


def test_the_pure_cores_import_no_io_library():
    code = ("import sys; import dispatch.lifecycle, dispatch.offers, dispatch.roster, dispatch.access;"
            "bad = {'aiohttp', 'redis', 'asyncpg', 'twilio'} & {m.split('.')[0] for m in sys.modules};"
            "print(sorted(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
