"""Cases followed up (issue 15): the event log's kinds, deadlines and overdue, the one extension, and the
parties' satisfaction answers, as pure code. Nothing here does I/O; the service asks and carries out.

Deadlines, set when a case is filed:

    take_by = filed + mediation.take_within_h     applies while no mediator holds the case
    due_at  = filed + mediation.due_days          applies until the case is closed

    open case ──(now past a deadline that applies: the sweep, once)──▶ overdue
    overdue ──(taken, and due_at not passed)──▶ in time        (the take deadline no longer applies)
    overdue ──(case.extend moves due_at past now)──▶ in time
    a closed case is never overdue

An overdue case is marked once (cases.overdue_since): the sweep looks only at cases without the mark, so
a case that is in time again and then passes a deadline again is marked again (a new `overdue` event).

Extension: the case's mediator, once per case, 1-MAX_EXTEND_DAYS days, with a reason; due_at moves by
that many days from where it was.

Who reads the event log (case.events): the case's own mediator and admins; nobody else (not a party,
not an agency, not another mediator).

Satisfaction: when a case closes (settled, failed, referred, withdrawn) every party who had joined is
asked once (a row per party). A party of that closed case answers once with a score 1-5 and an
optional comment; a second answer is a conflict and leaves the first. A party sees only their own
answer; nobody else's view of the case shows any.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from infra.errors import BadRequest, Conflict, Forbidden
from infra.identity import Account
from mediation.rules import FINAL, Case, Feedback, Role, Status

MAX_EXTEND_DAYS = 90
MAX_REASON = 1000
MAX_COMMENT = 1000
SCORES = range(1, 6)


class Event(StrEnum):
    """The kinds of the case event log (case_events.kind), each written in the transaction of its change."""

    OPENED = "opened"
    JOINED = "joined"
    PARTY_ADDED = "party_added"
    TAKEN = "taken"
    INVITED = "invited"          # an agency
    PROPOSED = "proposed"        # an agreement text
    SIGNED = "signed"
    SETTLED = "settled"          # the last signature (no actor)
    CLOSED = "closed"            # the mediator closed it as failed
    REFERRED = "referred"        # the mediator closed it as referred to another body
    WITHDRAWN = "withdrawn"      # the filer withdrew it
    OVERDUE = "overdue"          # the sweep (no actor): data.reason `take` or `due`
    EXTENDED = "extended"        # data: days, reason, due_at (the new one), previous_due_at


class Overdue(StrEnum):
    """Which deadline an open case has passed."""

    TAKE = "take"     # no mediator took it by take_by
    DUE = "due"       # not closed by due_at


def deadlines(filed: datetime, due_days: float, take_within_h: float) -> tuple[datetime, datetime]:
    """(due_at, take_by) of a case filed at `filed`."""
    return filed + timedelta(days=due_days), filed + timedelta(hours=take_within_h)


def take_applies(case: Case) -> bool:
    """Whether the take deadline applies: an open case no mediator holds."""
    return case.mediator is None and case.status not in FINAL


def overdue_reason(case: Case, now: datetime) -> Overdue | None:
    """The deadline the case has passed at `now` (due first), or None while it is in time or closed."""
    if case.status in FINAL:
        return None
    if case.due_at is not None and now >= case.due_at:
        return Overdue.DUE
    if take_applies(case) and case.take_by is not None and now >= case.take_by:
        return Overdue.TAKE
    return None


def is_overdue(case: Case) -> bool:
    """What the case object says: marked by the sweep and still open."""
    return case.overdue_since is not None and case.status not in FINAL


def overdue_after_take(case: Case, now: datetime) -> datetime | None:
    """The overdue mark once a mediator takes the case: kept only if due_at has passed too."""
    if case.overdue_since is None or case.due_at is None or now < case.due_at:
        return None
    return case.overdue_since


def close_event(outcome: Status) -> Event:
    """The log's kind for a case the mediator closes."""
    return Event.REFERRED if outcome == Status.REFERRED else Event.CLOSED


# ------------------------------------------------------------------ reading the log

def check_events(case: Case, actor: Account) -> None:
    if actor.role == "admin" or case.role_of(actor) == Role.MEDIATOR:
        return
    raise Forbidden("only the case's mediator and admins read its event log")


# ------------------------------------------------------------------ extension

@dataclass(frozen=True)
class Extension:
    due_at: datetime
    overdue_since: datetime | None     # the mark after the extension (None: in time again)
    reason: str


def extend(case: Case, actor: Account, days: int, reason: str, now: datetime) -> Extension:
    if case.role_of(actor) != Role.MEDIATOR:
        raise Forbidden("only the case's mediator may extend its deadline")
    if not 1 <= days <= MAX_EXTEND_DAYS:
        raise BadRequest(f"days must be 1-{MAX_EXTEND_DAYS}")
    reason = reason.strip()
    if not reason:
        raise BadRequest("reason: say why the deadline is extended (it goes into the case's event log)")
    if len(reason) > MAX_REASON:
        raise BadRequest(f"reason must be at most {MAX_REASON} characters")
    if case.status in FINAL:
        raise Conflict(f"case is {case.status}")
    if case.extended_at is not None:
        raise Conflict("this case's deadline has already been extended once")
    assert case.due_at is not None
    due = case.due_at + timedelta(days=days)
    after = replace(case, due_at=due)
    return Extension(due, case.overdue_since if overdue_reason(after, now) else None, reason)


# ------------------------------------------------------------------ satisfaction

def ask(case: Case) -> list[tuple[str, str]]:
    """(party account id, how they are asked) for each party who had joined, when the case closes."""
    return [(p.account_id, "sms" if p.via == "sms" else "ws") for p in case.joined if p.account_id]


def check_feedback(case: Case, actor: Account, score: int, comment: str | None) -> str | None:
    """Raise unless the actor may answer now; the comment as stored (trimmed; None when empty)."""
    if case.role_of(actor) != Role.PARTY:
        raise Forbidden("only a party of this case answers its satisfaction question")
    if score not in SCORES:
        raise BadRequest("score must be 1-5")
    text = (comment or "").strip()
    if len(text) > MAX_COMMENT:
        raise BadRequest(f"comment must be at most {MAX_COMMENT} characters")
    if case.status not in FINAL:
        raise Conflict(f"case is {case.status}; parties are asked once it is closed")
    mine = next((f for f in case.feedback if f.party_id == actor.id), None)
    if mine is None:
        raise Conflict("you were not asked about this case")
    if mine.answered:
        raise Conflict("you have already answered; the first answer stands")
    return text or None


def sms_pending(f: Feedback, now: datetime, window_days: float) -> bool:
    """Whether a bare 1-5 from the party's phone still answers this question."""
    return f.asked_via == "sms" and not f.answered and now - f.asked_at <= timedelta(days=window_days)
