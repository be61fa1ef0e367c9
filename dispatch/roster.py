"""The responder roster, as pure code: who is on duty and free to be offered an incident.

    off_duty ──duty.start──▶ available ──offer──▶ offered ──accept / assign──▶ busy
        ▲ ▲                    │  ▲                  │                          │
        │ └──────duty.end──────┘  └─offer ended──────┘                          │
        │                         └───────────── incident resolved / closed ────┘
        └──────────────── duty.end with hand_back: the job goes back to dispatch ───┘

A responder holds at most one offer and one incident at a time; only `available`
responders are offered anything (lifecycle.rank).
"""
from __future__ import annotations

from enum import StrEnum

from infra.errors import Conflict


class ResponderStatus(StrEnum):
    OFF_DUTY = "off_duty"
    AVAILABLE = "available"
    OFFERED = "offered"
    BUSY = "busy"


ON_DUTY = frozenset(ResponderStatus) - {ResponderStatus.OFF_DUTY}
# what duty.end may leave from (an offer held is passed on first)
MAY_END_DUTY = frozenset({ResponderStatus.AVAILABLE, ResponderStatus.OFFERED})


def status_of(value: str | None) -> ResponderStatus | None:
    return ResponderStatus(value) if value is not None else None


def start_duty(status: ResponderStatus | None) -> ResponderStatus:
    """duty.start again while on duty only updates position and skills: an offer or an incident stays."""
    if status is None or status == ResponderStatus.OFF_DUTY:
        return ResponderStatus.AVAILABLE
    return status


def check_end_duty(status: ResponderStatus | None, hand_back: bool = False) -> None:
    """duty.end: a busy responder leaves only by saying so (`hand_back`), and then hands the job back
    (dispatch/handback.py); a plain duty.end while busy is refused, so no job is dropped by a stray tap."""
    if status is None or status == ResponderStatus.OFF_DUTY:
        raise Conflict("you are not on duty")
    if status == ResponderStatus.BUSY and not hand_back:
        raise Conflict("finish your current incident (or ask a dispatcher) before going off duty,"
                       " or hand it back to dispatch (duty.end with hand_back)")


def check_located(updated: bool) -> None:
    """location.update is for responders on duty (the update touched no row otherwise)."""
    if not updated:
        raise Conflict("start duty before sending your location")


def skills_after(old: list[str], new: list[str] | None) -> list[str]:
    """duty.start without skills keeps the ones the responder had."""
    return sorted(set(new)) if new is not None else list(old)


def as_assignee(status: ResponderStatus | None, holds_this_offer: bool) -> ResponderStatus | None:
    """The status a dispatcher's assign is judged by (lifecycle.check_assign).

    A responder holding an offer is as good as available: this incident's own offer is withdrawn as
    `taken`; another incident's as `preempted` (contract §12: a dispatcher's choice wins over a pending
    offer, and that other incident goes back to matching)."""
    if status == ResponderStatus.OFFERED:
        return ResponderStatus.AVAILABLE
    return status
