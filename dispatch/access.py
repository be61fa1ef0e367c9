"""Who may read an incident, and who is told when it changes. Pure.

    reader                          incident.events / GET /api/incidents/{id}   told of each change
    its reporter                    yes                                         incident.updated
    its (assigned) responder        yes, audited                                incident.updated
    the responder offered it        yes, audited, while the offer is pending    offer, offer.withdrawn
    dispatchers, admins             yes, audited                                incident.updated (queue)
    anyone else                     forbidden                                   —

The reporter's phone (when known: an SMS reporter, an OTP-verified resident) is in no incident view but
the one its assigned responder gets while the job is open (assigned, en_route, on_scene), so that they
can call: not the responder only offered it, not after it ends, not other readers (`with_phone`).

Areas (issue 14): a dispatcher with `accounts.area_limited` sees and acts on only the incidents of their
area (the grids they belong to, descendants included): their queue is limited whatever they ask, and an
incident command on one outside it is forbidden (`check_area`); an incident with no grid is outside every
area. An admin is never limited. `queue.watch` with `grids` narrows anyone's queue the same way (`visible`).

docs/authorization.md holds the whole matrix the tests check.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from dispatch.lifecycle import WORKING
from infra.errors import Forbidden
from infra.identity import Account, Role

STAFF = frozenset({Role.DISPATCHER, Role.ADMIN})


class Reader(StrEnum):
    REPORTER = "reporter"
    RESPONDER = "responder"
    OFFERED = "offered"
    STAFF = "staff"


@dataclass(frozen=True)
class Parties:
    """The accounts an incident concerns."""

    reporter_id: str
    responder_id: str | None
    offered_id: str | None = None     # the responder a pending offer asks, if any


def reader_of(inc: Parties, who: Account) -> Reader:
    """How `who` may read the incident and its event log; Forbidden if not at all."""
    if inc.reporter_id == who.id:
        return Reader.REPORTER
    if who.role in STAFF:
        return Reader.STAFF
    if inc.responder_id is not None and inc.responder_id == who.id:
        return Reader.RESPONDER
    if inc.offered_id is not None and inc.offered_id == who.id:
        return Reader.OFFERED
    raise Forbidden("not your incident")


def audited(reader: Reader) -> bool:
    """Every read of a resident's incident by someone else is recorded (docs/security.md)."""
    return reader != Reader.REPORTER


def told(inc: Parties) -> list[str]:
    """The accounts pushed `incident.updated` (besides the dispatchers' queue channel)."""
    return [inc.reporter_id] + ([inc.responder_id] if inc.responder_id else [])


def sees_phone(responder_id: str | None, status: str, who_id: str | None) -> bool:
    """Whether `who_id` may see the reporter's phone: the assigned responder, while they work the job."""
    return who_id is not None and responder_id == who_id and status in WORKING


def with_phone(inc: dict[str, Any], phone: str | None, who_id: str | None) -> dict[str, Any]:
    """The incident view as `who_id` may see it: with `reporter.phone` if sees_phone, else unchanged."""
    responder = inc["responder"]["id"] if inc["responder"] else None
    if not phone or not sees_phone(responder, inc["status"], who_id):
        return inc
    return {**inc, "reporter": {**inc["reporter"], "phone": phone}}


@dataclass(frozen=True)
class Area:
    """A staff account's area: whether they are limited to it, and its grid codes (account_grids)."""

    limited: bool
    codes: frozenset[str]


UNLIMITED = Area(False, frozenset())
# a queue filter: an incident is in it when its grid path meets every one of these sets of codes (the grids
# asked for in queue.watch, the dispatcher's area); no sets: every incident
Filter = tuple[frozenset[str], ...]


def area_of(role: str, area_limited: bool, codes: frozenset[str]) -> Area:
    """Only a dispatcher is ever limited: an admin sees all whatever the flag says."""
    return Area(area_limited and role == Role.DISPATCHER, codes)


def visible(grid_path: list[str] | tuple[str, ...] | None, sets: Filter) -> bool:
    """Whether an incident in the grid with this path (None: in no grid) passes the filter."""
    if not sets:
        return True
    path = set(grid_path or ())
    return all(s & path for s in sets)


def queue_filter(area: Area, asked: list[str] | None) -> Filter:
    """The filter of a queue.watch: the grids asked for (descendants included), within the area if limited."""
    sets = []
    if asked:
        sets.append(frozenset(asked))
    if area.limited:
        sets.append(area.codes)
    return tuple(sets)


def check_area(area: Area, grid_path: list[str] | tuple[str, ...] | None) -> None:
    """Forbidden unless the incident (its grid's path) lies in an area-limited dispatcher's area."""
    if area.limited and not visible(grid_path, (area.codes,)):
        raise Forbidden("this incident is outside your area")
