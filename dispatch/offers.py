"""Offers, their deadlines and the escalation plan, as pure code.

An offer asks one responder to take one incident before a deadline:

    pending ──accept──────────────▶ accepted
       ├────decline / off duty────▶ declined
       ├────deadline passed───────▶ expired      (any node's worker, dispatch/worker.py)
       └────cancelled / taken / ──▶ withdrawn
            disconnected

When is an offer due? When its `expires_at` (the moment it was made plus the
incident's frozen `offer_timeout_s`) is not after the database's clock: see
`is_due`. The escalation plan (radius, number of offers, offer timeout) is
frozen onto the incident when it is reported, so a configuration change never
alters an incident already in flight.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from infra.errors import Forbidden, NotFound


class OfferState(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


class Reason(StrEnum):
    """Why an offer ended (the `reason` of `offer.withdrawn` and of the offer row)."""

    ACCEPTED = "accepted"
    DECLINED = "declined"          # the responder said no
    OFF_DUTY = "off_duty"          # the responder went off duty holding it
    EXPIRED = "expired"
    CANCELLED = "cancelled"        # the incident ended (reporter or dispatcher)
    TAKEN = "taken"                # a dispatcher assigned the incident
    DISCONNECTED = "disconnected"  # the responder's last connection closed
    PREEMPTED = "preempted"        # the responder was wanted for a more urgent incident (contract §12)


# the state each way of ending leaves the offer in
ENDS: dict[Reason, OfferState] = {
    Reason.ACCEPTED: OfferState.ACCEPTED,
    Reason.DECLINED: OfferState.DECLINED,
    Reason.OFF_DUTY: OfferState.DECLINED,
    Reason.EXPIRED: OfferState.EXPIRED,
    Reason.CANCELLED: OfferState.WITHDRAWN,
    Reason.TAKEN: OfferState.WITHDRAWN,
    Reason.DISCONNECTED: OfferState.WITHDRAWN,
    Reason.PREEMPTED: OfferState.WITHDRAWN,
}


class Tier(StrEnum):
    """Which circle of responders an offer came from (issue 14): the incident's own grid's workers first,
    then its community's, then everyone within the radius (dispatch/tiers.py; the `tier` of the offer row
    and of the `offered` event)."""

    GRID = "grid"
    COMMUNITY = "community"
    RADIUS = "radius"


TIER_ORDER: dict[str, int] = {Tier.GRID: 0, Tier.COMMUNITY: 1, Tier.RADIUS: 2}


@dataclass(frozen=True)
class Plan:
    """The escalation plan of one incident: how far to look, how many responders to ask in turn,
    how long each may think. Frozen onto the incident when it is reported (as an on-call system
    freezes its escalation chain); every later decision about that incident reads it from there."""

    radius_km: float
    max_offers: int
    offer_timeout_s: float

    def deadline(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.offer_timeout_s)

    def as_data(self) -> dict[str, float | int]:
        """The plan as logged in the incident's `reported` event."""
        return {"radius_km": self.radius_km, "max_offers": self.max_offers, "offer_timeout_s": self.offer_timeout_s}


class PlanSettings(Protocol):
    """What a plan is frozen from (the `dispatch` section of the configuration)."""

    radius_km: float
    max_offers: int
    offer_timeout_s: float


def freeze(settings: PlanSettings) -> Plan:
    """The plan a report made now gets."""
    return Plan(float(settings.radius_km), int(settings.max_offers), float(settings.offer_timeout_s))


def is_due(expires_at: datetime, now: datetime) -> bool:
    """An offer is due (may be expired by a worker, can no longer be accepted) from its deadline on."""
    return expires_at <= now


@dataclass(frozen=True)
class Offer:
    """What the rules need to know of an offer."""

    id: str
    incident_id: str
    responder_id: str
    state: OfferState
    expires_at: datetime


def check_own(offer: Offer | None, responder_id: str) -> Offer:
    """The offer, if it exists and was made to this responder (else NotFound/Forbidden)."""
    if offer is None:
        raise NotFound("no such offer")
    if offer.responder_id != responder_id:
        raise Forbidden("this offer is not yours")
    return offer


def may_end(offer: Offer, now: datetime, *, only_if_due: bool) -> bool:
    """Whether the offer can still be ended this way: it is pending and, for the deadline worker, due.

    False means someone else already handled it (the answer for a stale or duplicate timer)."""
    return offer.state == OfferState.PENDING and (not only_if_due or is_due(offer.expires_at, now))


class OfferSms(StrEnum):
    """dispatch.offer_sms: when an offer also goes out by SMS (to a responder with a phone)."""

    OFFLINE = "offline"    # only when none of their connections is open at offer time (the default)
    ALWAYS = "always"      # every offer, connected or not
    NEVER = "never"        # never (and then off-line responders are no candidates: nothing would reach them)


class Channel(StrEnum):
    """How an offer reaches its responder (the `channels` of the `offered` event, the metrics' label)."""

    WS = "ws"          # the `offer` push on their open connection(s)
    SMS = "sms"        # a text (sms/offers.py), through the outbox inside the offer's transaction
    VOICE = "voice"    # a phone call (TwiML <Gather>), placed by the outbox's call worker
    PUSH = "push"      # Web Push: sent after commit by the push sender, which observes the published offer;
    #                    it is not decided here (issue 12, push part) and joins the label set of the metrics


# the channels an offer hook carries out inside the offer's transaction
REMOTE = frozenset({Channel.SMS, Channel.VOICE})


def channels(*, online: bool, has_phone: bool, priority: int, offer_sms: str,
             voice_priority: int) -> tuple[Channel, ...]:
    """The channels an offer goes out on, decided at offer time (contract §7):

        ws     while a connection of theirs is open
        sms    with a phone: when off line (`offline`), or always (`always`); never with `never`
        voice  with a phone, off line, and the incident's priority <= dispatch.voice_priority
               (a smaller number is more urgent); not with `never`
    """
    out = [Channel.WS] if online else []
    if has_phone and offer_sms != OfferSms.NEVER:
        if offer_sms == OfferSms.ALWAYS or not online:
            out.append(Channel.SMS)
        if not online and priority <= voice_priority:
            out.append(Channel.VOICE)
    return tuple(out)


def tells_responder(reason: Reason) -> bool:
    """Whether the responder gets `offer.withdrawn`: not when they declined it themselves."""
    return reason != Reason.DECLINED
