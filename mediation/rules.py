"""The mediation case lifecycle, room access and agreement rules, as pure code.

Nothing here does I/O. The service loads a `Case`, asks these functions what
may happen, and carries out the answer in one transaction. Every rule about a
case lives here:

    filed ──take──▶ in_mediation ──propose──▶ agreement_proposed ──last signature──▶ settled
                        │      ▲                   │  │
                        │      └─── (propose again: earlier signatures no longer count)
                        ▼                          ▼
                 failed | referred  (the case's mediator closes)
    withdrawn: the filer, from any status before a final one

A case for visitors (issue 13) is opened by a mediator or a clerk at the counter: it has no filer
among its parties (every party is named and joins with a code) and records its opener. A clerk may
name more parties of such a case and see it only until a mediator takes it; nothing else.

Participants: the parties (the filer and those who joined with a join code),
the case's mediator, and invited agencies. Rooms: `joint` for every
participant; `caucus:<party_account_id>` for the case's mediator and that one
party, nobody else (not other parties, agencies, other mediators or staff).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from infra.errors import BadRequest, Conflict, Forbidden, NotFound
from infra.identity import Account


class Status(StrEnum):
    FILED = "filed"
    IN_MEDIATION = "in_mediation"
    AGREEMENT_PROPOSED = "agreement_proposed"
    SETTLED = "settled"
    FAILED = "failed"
    REFERRED = "referred"
    WITHDRAWN = "withdrawn"


FINAL = frozenset({Status.SETTLED, Status.FAILED, Status.REFERRED, Status.WITHDRAWN})
OPEN = frozenset(Status) - FINAL
MEDIATING = frozenset({Status.IN_MEDIATION, Status.AGREEMENT_PROPOSED})
SIGNED_STATES = frozenset({Status.AGREEMENT_PROPOSED, Status.SETTLED})   # where a signature can stand
CATEGORIES = ("neighbour", "family", "labour", "property", "consumer", "other")
OUTCOMES = {"settled": Status.SETTLED, "failed": Status.FAILED, "referred": Status.REFERRED}

JOINT = "joint"
CAUCUS = "caucus:"
MAX_OTHER_PARTIES = 10
MIN_VISITOR_PARTIES = 2          # a dispute brought to the counter is between at least two people
OPENERS = frozenset({"mediator", "clerk"})   # who opens cases for visitors
MAX_BODY = 4000
MAX_AGREEMENT = 20000


class Role(StrEnum):
    """What an account is in one case."""

    PARTY = "party"
    MEDIATOR = "mediator"
    AGENCY = "agency"


@dataclass(frozen=True)
class Person:
    id: str
    name: str


@dataclass(frozen=True)
class Opener:
    """The staff account that opened a case for visitors, with the role it had then."""

    id: str
    name: str
    role: str


@dataclass(frozen=True)
class Party:
    """A party slot: 0 is the filer; the others are named by the filer and joined with their code."""

    slot: int
    name: str
    account_id: str | None = None     # None until joined
    phone: str | None = None          # E.164, as given by the filer or from the account
    join_code: str | None = None      # None for the filer
    via: str = "ws"                   # how they joined: ws | sms
    joined_at: datetime | None = None

    @property
    def joined(self) -> bool:
        return self.account_id is not None


@dataclass(frozen=True)
class Signature:
    party_id: str
    name: str
    via: str
    signed_at: datetime


@dataclass(frozen=True)
class Agreement:
    id: str
    text: str
    sha256: str
    proposed_at: datetime
    sign_code: str
    signatures: tuple[Signature, ...] = ()

    @property
    def signed_by(self) -> frozenset[str]:
        return frozenset(s.party_id for s in self.signatures)


@dataclass(frozen=True)
class Feedback:
    """One party's satisfaction question after the case closed, and their answer once given
    (mediation/followup.py)."""

    party_id: str
    asked_via: str                 # ws: the page's prompt; sms: one text
    asked_at: datetime
    score: int | None = None
    comment: str | None = None
    answered_at: datetime | None = None

    @property
    def answered(self) -> bool:
        return self.score is not None


@dataclass(frozen=True)
class Case:
    id: str
    ref_no: str
    status: Status
    category: str
    summary: str
    filer_id: str
    created_at: datetime
    updated_at: datetime
    mediator: Person | None = None
    parties: tuple[Party, ...] = ()
    agencies: tuple[Person, ...] = ()
    agreement: Agreement | None = None
    version: int = 1
    closed_at: datetime | None = None
    outcome_note: str | None = None
    settled_sha256: str | None = None
    opened_by: Opener | None = None   # a case opened for visitors; None when a party filed it
    # followed up (issue 15, mediation/followup.py)
    due_at: datetime | None = None
    take_by: datetime | None = None
    overdue_since: datetime | None = None
    extended_at: datetime | None = None
    feedback: tuple[Feedback, ...] = ()

    @property
    def joined(self) -> tuple[Party, ...]:
        return tuple(p for p in self.parties if p.joined)

    def party(self, account_id: str) -> Party | None:
        return next((p for p in self.parties if p.account_id == account_id), None)

    @property
    def participant_ids(self) -> list[str]:
        ids = [p.account_id for p in self.joined if p.account_id]
        if self.mediator:
            ids.append(self.mediator.id)
        return ids + [a.id for a in self.agencies]

    def role_of(self, actor: Account) -> Role | None:
        if actor.role == "resident" and self.party(actor.id) is not None:
            return Role.PARTY
        if actor.role == "mediator" and self.mediator is not None and self.mediator.id == actor.id:
            return Role.MEDIATOR
        if actor.role == "agency" and any(a.id == actor.id for a in self.agencies):
            return Role.AGENCY
        return None


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------ rooms

@dataclass(frozen=True)
class Room:
    name: str
    party_id: str | None = None      # the party of a caucus; None for joint


def parse_room(room: str) -> Room:
    """`joint` or `caucus:<uuid>`; anything else is a bad request."""
    if room == JOINT:
        return Room(JOINT)
    if room.startswith(CAUCUS):
        pid = room[len(CAUCUS):].lower()
        if _is_uuid(pid):
            return Room(CAUCUS + pid, pid)
    raise BadRequest("room must be 'joint' or 'caucus:<party account id>'")


def check_read(case: Case, actor: Account, room: Room) -> None:
    """Raise unless the actor may read (and subscribe to) the room.

    Someone outside the case is refused before anything about the room is told;
    the case's mediator asking for the caucus of a non-party is told not_found.
    """
    role = case.role_of(actor)
    if role is None:
        raise Forbidden("you are not a participant of this case")
    if room.party_id is None:
        return
    if role == Role.MEDIATOR:
        if case.party(room.party_id) is None:
            raise NotFound("no such party in this case")
        return
    if role == Role.PARTY and room.party_id == actor.id:
        return
    raise Forbidden("a caucus is only for the mediator and that party")


def check_write(case: Case, actor: Account, room: Room, body: str) -> None:
    check_read(case, actor, room)
    if case.status in FINAL:
        raise Conflict(f"case is {case.status}; the rooms are closed")
    check_body(body)


def check_body(body: str) -> None:
    if not (1 <= len(body) <= MAX_BODY) or not body.strip():
        raise BadRequest(f"body must be 1-{MAX_BODY} characters, not only spaces")


# ------------------------------------------------------------------ lifecycle

@dataclass(frozen=True)
class OtherParty:
    name: str
    phone: str | None = None


def check_open(actor: Account, category: str, summary: str, others: list[OtherParty]) -> None:
    if actor.role != "resident":
        raise Forbidden("only residents file cases")
    if category not in CATEGORIES:
        raise BadRequest(f"category must be one of {', '.join(CATEGORIES)}")
    if not summary.strip():
        raise BadRequest("summary must not be empty")
    if not 1 <= len(others) <= MAX_OTHER_PARTIES:
        raise BadRequest(f"name 1-{MAX_OTHER_PARTIES} other parties")
    if any(not o.name.strip() for o in others):
        raise BadRequest("every other party needs a name")


def check_open_for_visitors(actor: Account, category: str, summary: str, parties: list[OtherParty]) -> None:
    """Raise unless the actor may open this case for people at the counter (names not yet checked for
    phone numbers, phones not yet normalised: the service does that next)."""
    if actor.role not in OPENERS:
        raise Forbidden("only mediators and clerks open cases for visitors")
    if category not in CATEGORIES:
        raise BadRequest(f"category must be one of {', '.join(CATEGORIES)}")
    if not summary.strip():
        raise BadRequest("summary must not be empty")
    if not MIN_VISITOR_PARTIES <= len(parties) <= MAX_OTHER_PARTIES:
        raise BadRequest(f"parties: name {MIN_VISITOR_PARTIES}-{MAX_OTHER_PARTIES} people"
                         " (a dispute is between at least two)")
    for i, p in enumerate(parties):
        if not p.name.strip():
            raise BadRequest(f"parties[{i}].name: every party needs a name")


def check_distinct_phones(parties: list[OtherParty]) -> None:
    """One number stands for one party: a phone joins a case once (normalised phones)."""
    seen: dict[str, int] = {}
    for i, p in enumerate(parties):
        if p.phone is None:
            continue
        if p.phone in seen:
            raise BadRequest(f"parties[{i}].phone: the same number as parties[{seen[p.phone]}];"
                             " each number can stand for one party only (leave it out for one of them)")
        seen[p.phone] = i


def is_opener(case: Case, actor: Account) -> bool:
    """Whether the actor opened this case for visitors and it still stands with them: a clerk (or
    mediator) until a mediator takes the case."""
    return (case.opened_by is not None and case.opened_by.id == actor.id and actor.role in OPENERS
            and case.mediator is None)


def check_join(case: Case, slot: Party, actor: Account) -> bool:
    """True if the actor already holds this slot (a repeated join); raise if they may not take it."""
    if slot.account_id == actor.id:
        return True
    if actor.role != "resident":
        raise Forbidden("only residents join cases as parties")
    if case.status in FINAL:
        raise Conflict(f"case is {case.status}")
    if slot.joined:
        raise Conflict("this join code has already been used")
    if case.party(actor.id) is not None:
        raise Conflict("you are already a party to this case")
    return False


def check_add_party(case: Case, actor: Account, name: str) -> None:
    """Raise unless the actor may name one more party now: the filer, the case's mediator, or the staff
    member who opened it for visitors (until a mediator takes it), on an open case with fewer than
    MAX_OTHER_PARTIES named parties."""
    if (not (actor.role == "resident" and actor.id == case.filer_id) and case.role_of(actor) != Role.MEDIATOR
            and not is_opener(case, actor)):
        raise Forbidden("only the filer or the case's mediator may add a party")
    if case.status in FINAL:
        raise Conflict(f"case is {case.status}")
    if not name.strip():
        raise BadRequest("name: every party needs a name")
    if sum(1 for p in case.parties if p.slot > 0) >= MAX_OTHER_PARTIES:
        raise Conflict(f"a case names at most {MAX_OTHER_PARTIES} other parties")


def may_claim(case: Case, slot: Party, actor: Account) -> bool:
    """Whether a verified resident whose phone is the number given for this slot takes it by that phone.

    Only a slot nobody has joined, of an open case the actor is not yet a party of: the phone stands in
    for the join code that was texted to it. A joined party is never moved to another account, whoever
    holds it (docs/security.md, "Back into a case")."""
    return (actor.role == "resident" and slot.slot > 0 and not slot.joined and case.status not in FINAL
            and case.party(actor.id) is None)


def take(case: Case, actor: Account) -> Status | None:
    """The status after a mediator takes the case; None if they already hold it."""
    if actor.role != "mediator":
        raise Forbidden("only mediators take cases")
    if case.mediator is not None:
        if case.mediator.id == actor.id and case.status not in FINAL:
            return None
        raise Conflict("the case already has a mediator")
    if case.status != Status.FILED:
        raise Conflict(f"case is {case.status}")
    return Status.IN_MEDIATION


def _mediator(case: Case, actor: Account) -> None:
    if case.role_of(actor) != Role.MEDIATOR:
        raise Forbidden("only the case's mediator may do this")


def check_invite(case: Case, actor: Account, target: Person, target_role: str | None) -> bool:
    """True if the agency is already invited; raise unless the mediator may invite it."""
    _mediator(case, actor)
    if target_role is None:
        raise NotFound("no such account")
    if target_role != "agency":
        raise BadRequest("only agency accounts can be invited")
    if any(a.id == target.id for a in case.agencies):
        return True
    if case.status in FINAL:
        raise Conflict(f"case is {case.status}")
    return False


@dataclass(frozen=True)
class Proposal:
    text: str
    sha256: str
    status: Status


def propose(case: Case, actor: Account, text: str) -> Proposal:
    """A new agreement text; signatures of earlier proposals no longer count."""
    _mediator(case, actor)
    if case.status not in MEDIATING:
        raise Conflict(f"case is {case.status}")
    if not text.strip() or len(text) > MAX_AGREEMENT:
        raise BadRequest(f"agreement text must be 1-{MAX_AGREEMENT} characters")
    if len(case.joined) < 2:
        raise Conflict("no other party has joined yet")
    return Proposal(text, sha256_text(text), Status.AGREEMENT_PROPOSED)


@dataclass(frozen=True)
class SignDecision:
    already: bool        # this party had signed this proposal: nothing changes
    settles: bool        # this was the last signature: the case is settled
    sha256: str


def sign(case: Case, actor: Account, agreement_id: str | None) -> SignDecision:
    """A party signs the current proposal; `agreement_id` (when given) must be the current one."""
    if case.role_of(actor) != Role.PARTY:
        raise Forbidden("only a party signs the agreement")
    ag = case.agreement
    if agreement_id is not None and ag is not None and agreement_id != ag.id:
        raise Conflict("that proposal has been replaced; read the new text before signing")
    if ag is not None and actor.id in ag.signed_by and case.status in SIGNED_STATES:
        return SignDecision(True, False, ag.sha256)
    if case.status != Status.AGREEMENT_PROPOSED or ag is None:
        raise Conflict(f"case is {case.status}; there is no agreement to sign")
    needed = {p.account_id for p in case.joined}
    settles = needed <= (ag.signed_by | {actor.id})
    return SignDecision(False, settles, ag.sha256)


def close(case: Case, actor: Account, outcome: str) -> Status | None:
    """The mediator closes the case; None if it is already in that outcome."""
    _mediator(case, actor)
    to = OUTCOMES.get(outcome)
    if to is None:
        raise BadRequest(f"outcome must be one of {', '.join(OUTCOMES)}")
    if case.status == to:
        return None
    if to == Status.SETTLED:
        raise Conflict("a case is settled when every party has signed the agreement")
    if case.status not in MEDIATING:
        raise Conflict(f"case is {case.status}")
    return to


def check_agreement_read(case: Case, actor: Account) -> None:
    """Raise unless the actor may have the settled agreement as a document (the PDF for judicial
    confirmation): the case's participants (parties, its mediator, invited agencies) and admins.
    Someone else is refused before the case's status is told; a case not settled is a conflict."""
    if case.role_of(actor) is None and actor.role != "admin":
        raise Forbidden("only the case's parties, its mediator, its agencies and admins read its agreement")
    if case.status != Status.SETTLED or case.agreement is None:
        raise Conflict(f"case is {case.status}; only a settled agreement is issued as a document")


def withdraw(case: Case, actor: Account) -> Status | None:
    """The filer withdraws; None if already withdrawn."""
    if actor.id != case.filer_id or case.opened_by is not None:
        raise Forbidden("only the filer may withdraw the case")
    if case.status == Status.WITHDRAWN:
        return None
    if case.status in FINAL:
        raise Conflict(f"case is already {case.status}")
    return Status.WITHDRAWN


def _is_uuid(s: str) -> bool:
    parts = s.split("-")
    return ([len(p) for p in parts] == [8, 4, 4, 4, 12]
            and all(c in "0123456789abcdef" for p in parts for c in p))
