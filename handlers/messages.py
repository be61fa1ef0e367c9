"""Typed client commands of contract §3 (help and dispatch), decoded once at the edge."""
from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Ref = Annotated[str, msgspec.Meta(max_length=64)]
# what the live index (Redis GEO) can hold: nearer a pole a report could never be matched (docs/protocol.md)
Lat = Annotated[float, msgspec.Meta(ge=-85.05112878, le=85.05112878)]
Lon = Annotated[float, msgspec.Meta(ge=-180, le=180)]
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
Id = Annotated[str, msgspec.Meta(pattern=UUID_PATTERN)]
RequestId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Note = Annotated[str, msgspec.Meta(max_length=1000)]
Skill = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_-]*$")]


class Envelope(msgspec.Struct):
    """Every frame: its type and (for commands) its ref; other fields are read by the type's struct."""

    type: str
    ref: Ref | None = None


class Hello(msgspec.Struct):
    type: str
    token: str


class Msg(msgspec.Struct, kw_only=True):
    type: str
    ref: Ref


class HelpFields(msgspec.Struct, kw_only=True):
    """help.request's fields: the WebSocket command and the body of POST /api/help alike."""

    request_id: RequestId
    category: Annotated[str, msgspec.Meta(max_length=32)]
    lat: Lat
    lon: Lon
    accuracy_m: Annotated[float, msgspec.Meta(ge=0, le=1_000_000)] | None = None
    note: Note = ""


class HelpRequest(HelpFields, kw_only=True):
    type: str
    ref: Ref


class IncidentRef(Msg, kw_only=True):
    incident_id: Id


class DutyStart(Msg, kw_only=True):
    lat: Lat
    lon: Lon
    skills: Annotated[list[Skill], msgspec.Meta(max_length=16)] | None = None


class Empty(Msg, kw_only=True):
    pass


class DutyEnd(Msg, kw_only=True):
    """duty.end; `hand_back` (why a responder with a job in hand leaves) gives the job back to dispatch."""

    hand_back: Literal["signed_out", "off_duty"] | None = None


class LocationUpdate(Msg, kw_only=True):
    lat: Lat
    lon: Lon


class OfferRef(Msg, kw_only=True):
    offer_id: Id


class Progress(Msg, kw_only=True):
    incident_id: Id
    status: Annotated[str, msgspec.Meta(max_length=16)]
    note: Note | None = None


class AddNote(Msg, kw_only=True):
    incident_id: Id
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]


class Assign(Msg, kw_only=True):
    incident_id: Id
    responder_id: Id


class Close(Msg, kw_only=True):
    incident_id: Id
    disposition: Annotated[str, msgspec.Meta(max_length=32)]


class Locate(Msg, kw_only=True):
    incident_id: Id
    lat: Lat
    lon: Lon


GridCode = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class QueueWatch(Msg, kw_only=True):
    """queue.watch; `grids` (extension, issue 14): only the incidents in these grids, descendants included."""

    grids: Annotated[list[GridCode], msgspec.Meta(max_length=500)] | None = None
