"""Typed client commands of mediation (contract §3 and the extensions in docs/mediation.md)."""
from __future__ import annotations

from typing import Annotated

import msgspec

from handlers.messages import Id, Msg
from mediation.rules import MAX_AGREEMENT, MAX_BODY, MAX_OTHER_PARTIES

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Room = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class OtherParty(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    phone: Annotated[str, msgspec.Meta(max_length=32)] | None = None


class CaseOpen(Msg, kw_only=True):
    """A resident files with `other_parties`; a mediator or clerk opens a case for visitors with `parties`."""
    category: Annotated[str, msgspec.Meta(max_length=32)]
    summary: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
    other_parties: Annotated[list[OtherParty], msgspec.Meta(min_length=1, max_length=MAX_OTHER_PARTIES)] | None = None
    parties: Annotated[list[OtherParty], msgspec.Meta(max_length=MAX_OTHER_PARTIES)] | None = None   # issue 13
    name: Annotated[str, msgspec.Meta(max_length=100)] | None = None    # extension: the filer's shown name
    request_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None   # extension: idempotency


class CaseAddParty(Msg, kw_only=True):
    """Extension: the filer or the case's mediator names one more party."""
    case_id: Id
    name: Name
    phone: Annotated[str, msgspec.Meta(max_length=32)] | None = None


class CaseJoin(Msg, kw_only=True):
    join_code: Annotated[str, msgspec.Meta(min_length=4, max_length=32)]


class CaseRef(Msg, kw_only=True):
    case_id: Id


class CaseInvite(Msg, kw_only=True):
    case_id: Id
    account_id: Id


class ChatSubscribe(Msg, kw_only=True):
    case_id: Id
    room: Room
    after_seq: Annotated[int, msgspec.Meta(ge=0)] = 0


class ChatUnsubscribe(Msg, kw_only=True):
    case_id: Id
    room: Room


class ChatSend(Msg, kw_only=True):
    case_id: Id
    room: Room
    client_msg_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_BODY)]


class Propose(Msg, kw_only=True):
    case_id: Id
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_AGREEMENT)]


class Sign(Msg, kw_only=True):
    case_id: Id
    agreement_id: Id | None = None    # extension: refuse if the proposal has changed since it was read


class CaseClose(Msg, kw_only=True):
    case_id: Id
    outcome: Annotated[str, msgspec.Meta(max_length=16)]
    note: Annotated[str, msgspec.Meta(max_length=1000)] | None = None


class CaseExtend(Msg, kw_only=True):
    """Issue 15: the case's mediator moves due_at once, with a reason (days and reason checked by the rules,
    so that a bad value is told by its field)."""
    case_id: Id
    days: int
    reason: Annotated[str, msgspec.Meta(max_length=2000)]


class CaseFeedback(Msg, kw_only=True):
    """Issue 15: a party of a closed case answers how satisfied they are, once."""
    case_id: Id
    score: int
    comment: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
