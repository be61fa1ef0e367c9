"""Which incidents ring on the dispatch console, who has said "I'm on it", and when supervisors are texted.
Pure code: the page (web/static/js/alarm-state.js) rings by the same rule, from `acknowledged_by`.

An incident needs a dispatcher's attention for one of two reasons (`Attention`):

    escalated                    no responder took it: a dispatcher must act
    new priority 1 (urgent)      queued or offered, not yet in a responder's hands

and rings until a dispatcher acknowledges it (`incident.ack`). An acknowledgement is recorded with the
incident's status at that moment and covers the reason it was made for: one made while the incident was
escalated covers the escalation; any acknowledgement covers a new priority-1 incident. So a P1 someone
took while it was still being offered rings again if it escalates later (now a dispatcher must act),
while an escalated incident someone took stays quiet, whatever it does next.

    status        priority 1          priority 2+
    queued        rings (new P1)      quiet
    offered       rings (new P1)      quiet
    escalated     rings               rings
    assigned ...  quiet               quiet

Each dispatcher appears once in `acknowledged_by`; acknowledging again is a no-op unless the incident
now rings for a reason their earlier acknowledgement does not cover (then it is renewed).

Supervisors: an escalated incident no acknowledgement covers, escalated for `supervisor_after_s` or
more, is texted to the supervisors once per escalation (`supervisor_due`). When one is due, the other
escalated incidents nobody took are named in the same text (`supervisor_batch`), so a flood of
escalations costs each supervisor one text, not one per incident.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from dispatch.lifecycle import FINAL, Status
from infra.errors import Conflict

URGENT_PRIORITY = 1                                   # a new incident of this priority (or lower number) rings
NEW = frozenset({Status.QUEUED, Status.OFFERED})      # not yet in a responder's hands


class Attention(StrEnum):
    ESCALATED = "escalated"
    NEW_URGENT = "new_urgent"


@dataclass(frozen=True)
class Ack:
    """One dispatcher's "I'm on it": who, when, and the incident's status then."""

    account_id: str
    name: str
    at: str          # ISO 8601
    status: str      # the incident's status when acknowledged

    def as_data(self) -> dict[str, str]:
        return {"id": self.account_id, "name": self.name, "at": self.at, "status": self.status}

    @staticmethod
    def of(data: dict[str, str]) -> Ack:
        return Ack(str(data["id"]), str(data.get("name") or ""), str(data["at"]), str(data["status"]))


def attention(status: str, priority: int) -> Attention | None:
    """Why the incident asks for a dispatcher now, or None."""
    if status == Status.ESCALATED:
        return Attention.ESCALATED
    if status in NEW and priority <= URGENT_PRIORITY:
        return Attention.NEW_URGENT
    return None


def covers(ack: Ack, why: Attention) -> bool:
    """Whether this acknowledgement answers this reason to ring."""
    return why == Attention.NEW_URGENT or ack.status == Status.ESCALATED


def rings(status: str, priority: int, acks: Iterable[Ack]) -> bool:
    """Whether the console rings for this incident."""
    why = attention(status, priority)
    return why is not None and not any(covers(a, why) for a in acks)


def acknowledge(status: str, priority: int, acks: Sequence[Ack], new: Ack) -> list[Ack] | None:
    """The acknowledgements after `new` (the incident's status is `status`), or None when nothing changes
    (this dispatcher's acknowledgement already covers what the incident rings for). Conflict once it is over."""
    if status in FINAL:
        raise Conflict(f"the incident is {status}: there is nothing left to take on")
    mine = [a for a in acks if a.account_id == new.account_id]
    if mine:
        why = attention(status, priority)
        if why is None or any(covers(a, why) for a in mine):
            return None
    return [a for a in acks if a.account_id != new.account_id] + [new]


@dataclass(frozen=True)
class Escalation:
    """An escalated incident as the supervisor sweep sees it (under its row lock)."""

    incident_id: str
    status: str
    acks: tuple[Ack, ...]
    escalated_at: datetime     # its latest escalation
    alerted: bool              # supervisors were texted about this escalation already


def unattended(e: Escalation) -> bool:
    """Escalated, no acknowledgement covers it, supervisors not yet told of this escalation."""
    return e.status == Status.ESCALATED and not e.alerted and not any(
        covers(a, Attention.ESCALATED) for a in e.acks)


def supervisor_due(e: Escalation, now: datetime, after_s: float) -> bool:
    """Whether supervisors must be texted about this escalation now (after_s <= 0: never)."""
    return after_s > 0 and unattended(e) and now - e.escalated_at >= timedelta(seconds=after_s)


def supervisor_batch(escalations: Iterable[Escalation], now: datetime, after_s: float) -> list[Escalation]:
    """What one supervisor text names: nothing unless one is due; then every unattended escalation, the
    longest waiting first (those not yet due are told early rather than in a text of their own later)."""
    pending = [e for e in escalations if unattended(e)]
    if after_s <= 0 or not any(supervisor_due(e, now, after_s) for e in pending):
        return []
    return sorted(pending, key=lambda e: e.escalated_at)
