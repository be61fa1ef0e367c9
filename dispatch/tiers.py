"""Tiered matching (issue 14, contract §9), as pure code: who is asked first for an incident with a grid.

    tier        who                                                   in range
    grid        on-duty workers of the incident's own grid            wherever they are, with or without a
    community   on-duty workers of any grid of its community, or of   position (a grid worker on duty by SMS
                the community itself                                  has none): they belong to the area
    radius      everyone else on duty with the skill                  within the plan's radius, as before

`lifecycle.rank` orders candidates by tier, then by reach (nearest first, on-line before off-line at
similar distances). The live index (Redis GEO) finds the radius tier; the members of the grid and its
community come from PostgreSQL (dispatch/roster_store.grid_members) with their presence from Redis, and
`merge` puts the two together. An incident outside every grid (grid null) has the radius tier alone.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from dispatch.intake_rules import distance_m
from dispatch.lifecycle import Candidate
from dispatch.offers import Tier

NO_POSITION_KM = math.inf    # a member without a position (on duty by SMS) ranks last within their tier


@dataclass(frozen=True)
class Member:
    """An on-duty responder with the skill who belongs to the incident's grid or community."""

    responder_id: str
    codes: frozenset[str]        # the grids they belong to that lie in the incident's community (or are its grid)
    status: str
    lat: float | None
    lon: float | None
    has_phone: bool


def tier_of(member: Member, grid_code: str) -> Tier:
    """grid if they belong to the incident's own grid, else community (grid_members returns no one else)."""
    return Tier.GRID if grid_code in member.codes else Tier.COMMUNITY


def distance_km(member: Member, lat: float | None, lon: float | None) -> float:
    if member.lat is None or member.lon is None or lat is None or lon is None:
        return NO_POSITION_KM
    return distance_m(lat, lon, member.lat, member.lon) / 1000.0


def merge(nearby: Iterable[Candidate], members: Iterable[Member], grid_code: str, lat: float | None,
          lon: float | None, online: Mapping[str, bool], paging: bool) -> list[Candidate]:
    """The candidates of an incident in grid `grid_code` at (lat, lon): those the live index found nearby,
    the members of its grid and community marked with their tier (added when the index did not find them:
    too far, or no position), each once. `online`: whether each member has a connection open (members the
    index found keep the index's word); `paging`: whether offers by SMS are on (dispatch.offer_sms)."""
    by_id = {m.responder_id: m for m in members}
    out: list[Candidate] = []
    for c in nearby:
        m = by_id.pop(c.responder_id, None)
        out.append(c if m is None else replace(c, tier=tier_of(m, grid_code)))
    for m in by_id.values():
        out.append(Candidate(m.responder_id, distance_km(m, lat, lon), m.status,
                             online=online.get(m.responder_id, False), pageable=paging and m.has_phone,
                             tier=tier_of(m, grid_code)))
    return out


def tiers_of(candidates: Iterable[Candidate]) -> dict[str, str]:
    """{responder id: tier} of the candidates asked from outside the radius tier (the report's offer records
    the tier of whichever of them is claimed; anyone else came from the radius)."""
    return {c.responder_id: str(c.tier) for c in candidates if c.tier != Tier.RADIUS}


def offer_distance(c: Candidate) -> float | None:
    """The distance an offer's text names: none for a member without a position."""
    return None if math.isinf(c.distance_km) else c.distance_km
