"""Incidents a dispatcher opens for a caller (contract §8), the rules without I/O.

    incident.create   where it is: coordinates, else a gazetteer place, else an address in words
                      (then it is escalated `no_position` and incident.locate finishes it);
                      who it is for: the caller's phone (the resident account an SMS from that
                      number maps to) or, without one, an account of this call alone
    duplicates        open incidents from the same phone, and open incidents of the same category
                      within DUPLICATE_RADIUS_M created in the last DUPLICATE_WINDOW_S
    incident.link     the call joins an incident being handled: both open, not the same one; the
                      linked incident is closed with disposition `duplicate`
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from infra.errors import BadRequest, Conflict

CHANNELS = ("phone", "walk_in")
DUPLICATE_RADIUS_M = 300.0
DUPLICATE_WINDOW_S = 15 * 60
DUPLICATE_MAX = 10
ADDRESS_MAX = 300
CALLER_NAME_MAX = 100
FINAL = ("resolved", "cancelled")


@dataclass(frozen=True)
class Where:
    """Where an incident is, as the call-taker gave it."""

    lat: float | None
    lon: float | None
    place_id: str | None
    address: str          # words ("" if none): kept on the incident and shown to the responder


def where(lat: float | None, lon: float | None, place_id: str | None, address: str | None) -> Where:
    """Coordinates win over a place, a place over words; BadRequest if none is given."""
    words = " ".join((address or "").split())
    if len(words) > ADDRESS_MAX:
        raise BadRequest(f"address: at most {ADDRESS_MAX} characters")
    if (lat is None) != (lon is None):
        raise BadRequest("lat and lon go together")
    pid = (place_id or "").strip() or None
    if lat is None and pid is None and not words:
        raise BadRequest("where is it? give lat and lon, a place_id from places.search, or an address")
    return Where(lat, lon, pid if lat is None else None, words)


def check_channel(channel: str) -> None:
    if channel not in CHANNELS:
        raise BadRequest(f"channel must be one of {', '.join(CHANNELS)}")


def note_for(note: str, address: str, place_label: str | None) -> str:
    """The incident's note: where in words first (what a responder reads on the way), then the note."""
    lines = [x for x in (place_label, address, note.strip()) if x]
    return "\n".join(dict.fromkeys(lines))


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class Seen:
    """What the duplicate rule knows of an open incident."""

    id: str
    reporter_id: str
    category: str
    lat: float | None
    lon: float | None
    created_at: datetime
    status: str


def why_duplicate(new: Seen, other: Seen, same_phone: bool) -> tuple[list[str], float | None]:
    """(reasons, distance in metres or None) that `other` may be the same emergency as `new`; no reasons:
    it is not. `same_phone`: the caller gave a phone, so that the same reporter means the same number."""
    if other.id == new.id or other.status in FINAL:
        return [], None
    reasons: list[str] = []
    if same_phone and other.reporter_id == new.reporter_id:
        reasons.append("same_phone")
    dist = None
    if None not in (new.lat, new.lon, other.lat, other.lon):
        assert new.lat is not None and new.lon is not None and other.lat is not None and other.lon is not None
        dist = distance_m(new.lat, new.lon, other.lat, other.lon)
        if (other.category == new.category and dist <= DUPLICATE_RADIUS_M
                and new.created_at - other.created_at <= timedelta(seconds=DUPLICATE_WINDOW_S)
                and other.created_at - new.created_at <= timedelta(seconds=DUPLICATE_WINDOW_S)):
            reasons.append("nearby")
    return reasons, dist


def box(lat: float, lon: float, radius_m: float = DUPLICATE_RADIUS_M) -> tuple[float, float, float, float]:
    """(lat_min, lat_max, lon_min, lon_max) around a point: a cheap first cut for the SQL."""
    dlat = radius_m / 111_000
    dlon = radius_m / (111_000 * max(0.01, math.cos(math.radians(lat))))
    return lat - dlat, lat + dlat, lon - dlon, lon + dlon


def check_link(incident_id: str, duplicate_of: str, status: str, other_status: str) -> None:
    if incident_id == duplicate_of:
        raise BadRequest("an incident cannot be a duplicate of itself")
    if status in FINAL:
        raise Conflict(f"incident is already {status}")
    if other_status in FINAL:
        raise Conflict(f"the incident to attach to is already {other_status}")
