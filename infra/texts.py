"""The write side of the SMS outbox, as the domains see it: a port, so no domain imports another.

The sms package implements `TextQueue`; dispatch and mediation receive one and call `enqueue`
inside the transaction of the change that causes the text, so the text is stored exactly when
the change commits and is lost with it when it rolls back. Sending is the sms package's worker.

A domain either passes finished wording, or (mediation; dispatch's supervisor texts) a `Template`:
a key of the sms package's one catalogue of texts plus the fields to fill in. The keys are listed here
because both sides must agree on them; the wording lives only in sms/texts.py.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from infra.db import Conn


class CaseText(StrEnum):
    """Mediation's texts to parties who take part by SMS (fields in brackets)."""

    INVITATION = "case.invitation"    # ref, category, filer, code, public_url
    VISIT = "case.visit"              # ref, category, code, public_url: a case opened for visitors at the counter
    TAKEN = "case.taken"              # ref, mediator
    PROPOSAL = "case.proposal"        # ref, text, code, public_url
    SETTLED = "case.settled"          # ref, sha256
    CLOSED = "case.closed"            # ref, status
    CHAT = "case.chat"                # ref, sender, body
    FEEDBACK = "case.feedback"        # ref: the case closed; how satisfied is the party (reply 1-5)


class IncidentText(StrEnum):
    """Dispatch's texts to staff (fields in brackets)."""

    SUPERVISOR = "incident.supervisor"  # ref, category, minutes, more, public_url: an escalation nobody took


@dataclass(frozen=True)
class Template:
    key: CaseText | IncidentText
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OfferNotice:
    """An offer made (dispatch) that is to reach its responder by phone too (the sms package's offer hook
    texts it and/or queues a call, inside the offer's transaction). `channels`: what dispatch decided
    (dispatch.offers.channels: "sms", "voice"); `distance_km`: from the responder at offer time."""

    offer_id: str
    responder_id: str
    incident: Mapping[str, Any]       # the incident in wire shape (contract §3)
    expires_at: datetime
    distance_km: float | None
    channels: tuple[str, ...]


class TextQueue(Protocol):
    async def enqueue(self, conn: Conn, to: str, body: str | Template, *, kind: str = "notice",
                      incident_id: str | None = None, case_id: str | None = None,
                      ttl_s: float | None = None, offer_id: str | None = None) -> int:
        """Queue a text inside the caller's open transaction; it goes out once that commits.

        `offer_id`: the text (kind "offer") or call (kind "call") is about that offer: at most one of each
        kind per offer, and none is sent once the offer has ended. Returns the outbox id. Raises on a
        database error (so the caller's change rolls back)."""
        ...
