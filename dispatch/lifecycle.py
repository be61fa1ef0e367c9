"""The incident lifecycle and the matching rule, as pure code.

Nothing here does I/O. The service (dispatch/service.py) loads the state,
asks these functions what happens, and carries out the answer in one
transaction. Every rule about *when* an incident moves lives here (offers and
their deadlines in dispatch/offers.py, responders in dispatch/roster.py, who
may read an incident in dispatch/access.py):

    queued ──offer──▶ offered ──accept──▶ assigned ─▶ en_route ─▶ on_scene ─▶ resolved
       │                │  ▲                  │           │
       │   decline/expire/disconnect: next offer, or escalated after max_offers
       ▼                ▼  │                  ▼           ▼
    escalated ◀─────────┘  └── (dispatcher assigns)    cancelled (reporter or dispatcher)

A responder leaving duty with a job in hand (assigned, en_route, on_scene) hands it back: it is queued and
matched over without them (`check_hand_back`). An escalation always says truly why (ESCALATION_REASONS).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from dispatch.offers import TIER_ORDER, OfferState, Plan, Tier
from dispatch.roster import ResponderStatus
from infra.errors import BadRequest, Conflict, Forbidden


class Status(StrEnum):
    QUEUED = "queued"
    OFFERED = "offered"
    ASSIGNED = "assigned"
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    RESOLVED = "resolved"
    ESCALATED = "escalated"
    CANCELLED = "cancelled"


FINAL = frozenset({Status.RESOLVED, Status.CANCELLED})
OPEN = frozenset(Status) - FINAL
UNASSIGNED = frozenset({Status.QUEUED, Status.OFFERED, Status.ESCALATED})
WAITING = frozenset({Status.QUEUED, Status.OFFERED})          # for the next offer
RELOCATABLE = frozenset({Status.QUEUED, Status.ESCALATED})    # no offer out, no responder
WORKING = frozenset({Status.ASSIGNED, Status.EN_ROUTE, Status.ON_SCENE})

# what a responder may report, from where: one step at a time, so that a hurried tap on "resolved" right after
# accepting cannot tell a resident "closed" while no one has arrived (a dispatcher's incident.close still can)
PROGRESS: dict[Status, frozenset[Status]] = {
    Status.EN_ROUTE: frozenset({Status.ASSIGNED}),
    Status.ON_SCENE: frozenset({Status.EN_ROUTE}),
    Status.RESOLVED: frozenset({Status.ON_SCENE}),
}
# the one step a responder may report next, from each working status
NEXT_STEP: dict[Status, Status] = {frm: to for to, froms in PROGRESS.items() for frm in froms}

# dispatcher dispositions for incident.close, and the status each leads to
DISPOSITIONS: dict[str, Status] = {
    "resolved": Status.RESOLVED,
    "handled_by_phone": Status.RESOLVED,
    "referred": Status.RESOLVED,
    "false_alarm": Status.CANCELLED,
    "duplicate": Status.CANCELLED,
    "cancelled": Status.CANCELLED,
}


@dataclass(frozen=True)
class Incident:
    """What the rules need to know of an incident."""

    id: str
    status: Status
    reporter_id: str
    responder_id: str | None
    offer_attempts: int
    has_position: bool
    accuracy_m: float | None = None
    plan: Plan | None = None     # frozen at the report; None only for an incident not yet reported


@dataclass(frozen=True)
class Candidate:
    responder_id: str
    distance_km: float
    status: str          # a ResponderStatus, or "unknown" before the claim (plan_first_offer)
    online: bool = True
    pageable: bool = False   # on duty with a phone (and offers by SMS not off): reachable while off line
    tier: str = Tier.RADIUS  # a Tier: a worker of the incident's grid or community is asked before the rest

    @property
    def reachable(self) -> bool:
        """Whether an offer can reach them now: an open connection, or a phone to text and call."""
        return self.online or self.pageable


@dataclass(frozen=True)
class MakeOffer:
    responder_id: str
    attempt: int
    expires_at: datetime


@dataclass(frozen=True)
class Escalate:
    reason: str          # see ESCALATION_REASONS


Decision = MakeOffer | Escalate

# Why an incident waits for a dispatcher (the `reason` of its `escalated` event, and its view's
# `escalation_reason`). The pages word each one; none may claim what did not happen: "no responder nearby"
# is said only when nobody was asked at all.
NOBODY_ELSE_AFTER: dict[str, str] = {   # no one else free in range, after the previous try ended like this
    "declined": "declined",             # the responder asked said no
    "off_duty": "declined",             # ... or went off duty holding the offer
    "expired": "no_answer",             # the responder asked did not answer in time
    "disconnected": "no_answer",        # ... or their app went away before answering
    "preempted": "preempted",           # the responder asked was taken for a more urgent incident
    "handed_back": "handed_back",       # the responder who had it handed it back (signed out, went off duty)
}
NO_CANDIDATE = "no_candidate"           # no free responder with the skill in range, and nobody was asked
NOBODY_ELSE = frozenset({NO_CANDIDATE, *NOBODY_ELSE_AFTER.values()})
ESCALATION_REASONS = NOBODY_ELSE | {
    "max_offers",      # the plan's number of responders were asked; none took it
    "no_position",     # no position, or one too rough for "nearest" to mean anything
    "bad_position",    # a stored position the live index cannot hold (dispatch/sweeps.py)
    "flood_hold",      # held for a dispatcher's look as a possible flood (dispatch/store.py)
}


def nobody_else(after: str | None) -> str:
    """The escalation reason when no one else can be asked, given how the previous try ended (None: there
    was none, or it is not known, e.g. an incident the orphan sweep matches)."""
    return NOBODY_ELSE_AFTER.get(after or "", NO_CANDIDATE)


# The live index (Redis GEO, web Mercator) holds no position nearer a pole than this: a report there could
# never be matched, so positions beyond it are refused at every edge, and one already stored is escalated.
GEO_LAT_LIMIT = 85.05112878
GEO_LON_LIMIT = 180.0


def position_problem(lat: float | None, lon: float | None) -> str | None:
    """Why the live index cannot hold this position (naming the field), or None if it can (or there is none)."""
    if lat is None or lon is None:
        return None
    if not -GEO_LAT_LIMIT <= lat <= GEO_LAT_LIMIT:     # also false for NaN
        return f"lat must be within ±{GEO_LAT_LIMIT}"
    if not -GEO_LON_LIMIT <= lon <= GEO_LON_LIMIT:
        return f"lon must be within ±{GEO_LON_LIMIT}"
    return None


def check_position(lat: float | None, lon: float | None) -> None:
    problem = position_problem(lat, lon)
    if problem is not None:
        raise BadRequest(problem)


def waits_for_presence(decision: object, fresh: bool) -> bool:
    """Right after the live index was rebuilt (a Redis restart), responders' presence may not be back yet:
    "no one online nearby" is then no reason to escalate; the incident waits queued for the sweeper."""
    return fresh and isinstance(decision, Escalate) and decision.reason in NOBODY_ELSE


# An off-line responder (reached by SMS or a call: seconds to notice, unlock, read) counts as this much farther
# than one with the page open: at similar distances the one looking at the page is asked first, while a
# responder by SMS who is clearly nearer still is (contract §7, issue 12; docs/protocol.md "Matching")
OFFLINE_PENALTY_KM = 1.0


def reach_km(c: Candidate) -> float:
    """The distance a candidate is ranked by: their own, plus OFFLINE_PENALTY_KM when off line."""
    return c.distance_km + (0.0 if c.online else OFFLINE_PENALTY_KM)


def in_range(c: Candidate, radius_km: float) -> bool:
    """A worker of the incident's grid or community is a candidate wherever they are (or without a position:
    on duty by SMS); anyone else only within the radius."""
    return c.tier != Tier.RADIUS or c.distance_km <= radius_km


def rank(candidates: list[Candidate], already_offered: set[str], radius_km: float) -> list[Candidate]:
    """Eligible candidates, best first: available, reachable (on line, or pageable by phone), in range, not
    offered this incident before; by tier (the incident's grid, its community, the radius: dispatch/tiers.py),
    then by reach_km (on-line responders first at similar distances)."""
    ok = [c for c in candidates
          if c.status == ResponderStatus.AVAILABLE and c.reachable and in_range(c, radius_km)
          and c.responder_id not in already_offered]
    return sorted(ok, key=lambda c: (TIER_ORDER[c.tier], reach_km(c), c.responder_id))


def next_step(inc: Incident, candidates: list[Candidate], already_offered: set[str], *,
              radius_km: float, max_offers: int, now: datetime, offer_timeout_s: float,
              after: str | None = None) -> Decision:
    """After a report, or after an offer ended unanswered: offer the next candidate or escalate.
    `after`: how the previous try ended (an offer's end reason, or "handed_back"), so that an escalation
    says truly why no one is coming (`nobody_else`)."""
    return _step(inc, rank(candidates, already_offered, radius_km), radius_km=radius_km, max_offers=max_offers,
                 now=now, offer_timeout_s=offer_timeout_s, after=after)


def _step(inc: Incident, ranked: list[Candidate], *, radius_km: float, max_offers: int, now: datetime,
          offer_timeout_s: float, after: str | None = None) -> Decision:
    """`next_step` with the candidates already ranked (`rank`)."""
    if inc.status not in WAITING:
        raise Conflict(f"incident is {inc.status}, not waiting for an offer")
    if not inc.has_position or (inc.accuracy_m is not None and inc.accuracy_m > radius_km * 1000):
        return Escalate("no_position")   # none, or so rough (e.g. a city centre) that "nearest" means nothing
    if inc.offer_attempts >= max_offers:
        return Escalate("max_offers")
    if not ranked:
        return Escalate(nobody_else(after))
    return MakeOffer(ranked[0].responder_id, inc.offer_attempts + 1,
                     now + timedelta(seconds=offer_timeout_s))


def next_offer(inc: Incident, candidates: list[Candidate], already_offered: set[str], now: datetime,
               after: str | None = None) -> Decision:
    """`next_step` by the incident's own frozen plan: the configuration of the day plays no part."""
    if inc.plan is None:
        raise ValueError("an incident in flight always has its plan")
    p = inc.plan
    return next_step(inc, candidates, already_offered, radius_km=p.radius_km, max_offers=p.max_offers,
                     now=now, offer_timeout_s=p.offer_timeout_s, after=after)


PREEMPTING_PRIORITY = 1   # only the most urgent incidents take a responder from another's pending offer

# The channels a free device token reports through: the flood gate counts them by client address, and a
# report from them is untrusted unless its reporter is (docs/security.md, "Dispatch: help floods").
GATED_CHANNELS = frozenset({"ws", "http"})


def trusted_report(channel: str, verified: bool, known: bool) -> bool:
    """Whether a report comes from someone the flood gate trusts: an OTP-verified resident, a known one (an
    earlier incident of theirs was assigned and not closed as a false alarm), or a channel a device token
    cannot use (SMS: a carrier-delivered number)."""
    return channel not in GATED_CHANNELS or verified or known


def may_preempt(priority: int, trusted: bool, held_priority: int, held_trusted: bool) -> bool:
    """Whether an incident no available responder can take may withdraw another incident's pending offer:
    a priority-1 incident takes it from any lower priority (a larger number); a trusted report takes it from
    an untrusted report of the same or a lower priority, so a flood of unverified reports cannot tie up the
    responders real people need. Neither can be turned back: the untrusted report cannot take it again
    (only a priority-1 report preempts without trust, and only a lower priority than its own)."""
    if priority == PREEMPTING_PRIORITY and held_priority > priority:
        return True
    return trusted and not held_trusted and held_priority >= priority


def preemption_target(priority: int, candidates: list[Candidate], held_priority: dict[str, int],
                      already_offered: set[str], radius_km: float, *, trusted: bool = False,
                      untrusted_held: frozenset[str] = frozenset()) -> Candidate | None:
    """For an incident no available responder can take: the nearest online responder in range holding a
    pending offer this incident may preempt (`may_preempt`), or None.
    `held_priority`: the priority of the incident each offered candidate's pending offer is for;
    `trusted`: whether this report is trusted; `untrusted_held`: the candidates whose pending offer is
    for an untrusted report."""
    ok = [c for c in candidates
          if c.status == ResponderStatus.OFFERED and c.online and c.distance_km <= radius_km
          and c.responder_id not in already_offered and c.responder_id in held_priority
          and may_preempt(priority, trusted, held_priority[c.responder_id], c.responder_id not in untrusted_held)]
    return min(ok, key=lambda c: (c.distance_km, c.responder_id)) if ok else None


@dataclass(frozen=True)
class OfferFirstAvailable:
    """Offer the first of these responders (nearest first) that is still available when claimed;
    if none is, escalate with "no_candidate"."""
    responder_ids: tuple[str, ...]
    attempt: int
    expires_at: datetime


def plan_first_offer(inc: Incident, candidates: list[Candidate], *, radius_km: float, max_offers: int,
                     now: datetime, offer_timeout_s: float) -> OfferFirstAvailable | Escalate:
    """`next_step` for a new incident, with the responders' statuses left to the claim.

    The report and its first offer are then one statement: the database claims the first
    responder of the list whose status is `available` at that moment. Choosing that way gives
    the same responder `next_step` would choose with those statuses in hand (a property test
    holds the two together), without reading the statuses first.
    """
    avail = ResponderStatus.AVAILABLE    # (the constructor, not dataclasses.replace: a few times cheaper per candidate)
    assumed = [c if c.status == avail else Candidate(c.responder_id, c.distance_km, avail, c.online, c.pageable, c.tier)
               for c in candidates]
    ranked = rank(assumed, set(), radius_km)
    decision = _step(inc, ranked, radius_km=radius_km, max_offers=max_offers, now=now,
                     offer_timeout_s=offer_timeout_s)
    if isinstance(decision, Escalate):
        return decision
    return OfferFirstAvailable(tuple(c.responder_id for c in ranked), decision.attempt, decision.expires_at)


def check_accept(inc: Incident, offer_state: str, offer_responder: str, responder_id: str,
                 offer_expired: bool) -> None:
    """Raise unless this responder may take the incident with this offer now."""
    if offer_responder != responder_id:
        raise Forbidden("this offer is not yours")
    if offer_state != OfferState.PENDING or offer_expired or inc.status != Status.OFFERED:
        raise Conflict("the offer is no longer open")


def check_progress(inc: Incident, actor_id: str, target: str) -> Status:
    try:
        to = Status(target)
    except ValueError:
        raise BadRequest(f"status must be one of {', '.join(PROGRESS)}") from None
    if to not in PROGRESS:
        raise BadRequest(f"status must be one of {', '.join(PROGRESS)}")
    if inc.responder_id != actor_id:
        raise Forbidden("you are not this incident's responder")
    if inc.status not in PROGRESS[to]:
        nxt = NEXT_STEP.get(inc.status)
        hint = f"; the next step is {nxt}" if nxt is not None else ""
        raise Conflict(f"cannot go from {inc.status} to {to}{hint}")
    return to


HANDED_BACK = "handed_back"     # incidents.flags: a responder who had it gave it back to dispatch
HAND_BACK_REASONS = {"signed_out": "responder_signed_out", "off_duty": "responder_off_duty"}


def check_hand_back(inc: Incident, responder_id: str) -> None:
    """A responder leaving duty with a job in hand gives it back: only their own, only while they work it.
    The incident starts matching over (a fresh count of offers, like a dispatcher's relocate), without them."""
    if inc.responder_id != responder_id:
        raise Conflict("this incident is no longer yours")
    if inc.status not in WORKING:
        raise Conflict(f"incident is {inc.status}; there is nothing to hand back")


def check_cancel(inc: Incident, actor_id: str) -> None:
    if inc.reporter_id != actor_id:
        raise Forbidden("only the reporter may cancel this incident")
    if inc.status in FINAL:
        raise Conflict(f"incident is already {inc.status}")


def check_assign(inc: Incident, responder_status: str | None) -> None:
    """A dispatcher may assign any open, not-yet-assigned incident to an on-duty responder who is free."""
    if inc.status not in UNASSIGNED:
        raise Conflict(f"incident is {inc.status}; it already has a responder or is closed")
    if responder_status is None or responder_status == ResponderStatus.OFF_DUTY:
        raise Conflict("that responder is not on duty")
    if responder_status == ResponderStatus.BUSY:
        raise Conflict("that responder is busy with another incident")


def check_relocate(inc: Incident) -> None:
    """A dispatcher may (re)place an incident only while no responder is asked or assigned: matching
    starts over from there, its offer count from zero."""
    if inc.status not in RELOCATABLE:
        raise Conflict(f"incident is {inc.status}; only queued or escalated incidents can be relocated")


NOTE_MAX = 4000     # the note keeps its latest characters


def note_text(text: str) -> str:
    """A follow-up as it is added to a note (an empty one is refused before anything is looked up)."""
    text = text.strip()
    if not text:
        raise BadRequest("empty note")
    return text


def check_note(inc: Incident, actor_id: str) -> None:
    """Only the reporter adds to their own report (incident.note); whether it is still open: append_note."""
    if inc.reporter_id != actor_id:
        raise Forbidden("only the reporter may add to this incident")


def append_note(inc: Incident, note: str | None, text: str) -> str:
    """The whole note after a follow-up is added to an open incident."""
    if inc.status in FINAL:
        raise Conflict(f"incident is already {inc.status}")
    return ((note + "\n" + text) if note else text)[-NOTE_MAX:]


def check_close(inc: Incident, disposition: str) -> Status:
    if disposition not in DISPOSITIONS:
        raise BadRequest(f"disposition must be one of {', '.join(DISPOSITIONS)}")
    if inc.status in FINAL:
        raise Conflict(f"incident is already {inc.status}")
    return DISPOSITIONS[disposition]


REFERABLE_CATEGORY = "dispute"
REFERRING_STAFF = frozenset({"dispatcher", "admin"})


def check_refer(inc: Incident, category: str, actor_id: str, actor_role: str, case_id: str | None) -> bool:
    """incident.refer (issue 15): True if the incident is already referred (the same case answers); raise
    unless the actor (dispatch staff, or the incident's responder) may refer it into mediation now: a
    `dispute` incident still open, else conflict."""
    if actor_role not in REFERRING_STAFF and not (actor_role == "responder" and inc.responder_id == actor_id):
        raise Forbidden("only dispatchers, admins and the incident's responder refer it")
    if case_id is not None:
        return True
    if category != REFERABLE_CATEGORY:
        raise Conflict(f"only {REFERABLE_CATEGORY} incidents are referred into mediation; this one is {category}")
    if inc.status in FINAL:
        raise Conflict(f"incident is already {inc.status}")
    return False
