"""Mediation by grid (issue 14): which cases are a mediator's "area", in what order they are listed, and
who is told of a new case first. Pure.

A mediator belongs to grids (account_grids, `helpline user set NAME --grids CODE,…`). Their area is the
community of each grid they belong to, with everything under it: a mediator of grid G sees every case of
G's community as theirs, not only G's (a community's mediators share its cases). Belonging to a
community, street or district makes that whole unit the area.

    area_roots    the codes that make up the area: a grid's parent (its community), any other level itself
    in_area       a case lies in the area when its grid's path (district … its own code) holds a root
    within        a `cases.watch grids` filter: the case's path holds one of the codes (descendants included)
    listed        cases.watch's order: "your area" first, then the rest, each in the order given

New cases are offered first to their community's mediators: while a case that nobody has taken yet,
filed in an area some mediator belongs to, is younger than the head start (`mediation.area_first_s`),
its pushes on the cases channel carry what is left of it (`area_first`, head_start_left); they reach
the watching mediators of that area at once and every other watching mediator when the head start ends
(push_delay). A case whose area has no mediator, or no grid, reaches everyone at once. The listing is never held back: a
cases.watch read shows every open case, the area's first.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from infra.errors import BadRequest

T = TypeVar("T")

COMMUNITY_CHILD = "grid"       # the level whose area is its parent (the community), not itself


@dataclass(frozen=True)
class Membership:
    """One grid an account belongs to: its code, level and parent."""
    code: str
    level: str
    parent: str | None


@dataclass(frozen=True)
class Where:
    """Where a new case lies, as `case.open` gives it: a position (`lat`, `lon`) or a grid code, or neither."""
    lat: float | None = None
    lon: float | None = None
    grid: str | None = None

    def check(self) -> None:
        """Raise bad_request naming the field: half a position, or a position and a code together."""
        if (self.lat is None) != (self.lon is None):
            raise BadRequest(f"{'lon' if self.lon is None else 'lat'}: a position needs both lat and lon")
        if self.grid is not None and self.lat is not None:
            raise BadRequest("grid: give a position (lat, lon) or a grid code, not both")
        if self.grid is not None and not self.grid.strip():
            raise BadRequest("grid: must not be empty")


def area_roots(grids: Iterable[Membership]) -> frozenset[str]:
    """The codes whose subtrees make up the area (empty: the account belongs to no grid)."""
    return frozenset((g.parent or g.code) if g.level == COMMUNITY_CHILD else g.code for g in grids)


def in_area(path: Sequence[str] | None, roots: frozenset[str]) -> bool:
    """Whether a case whose grid has this path (None: no grid) lies in the area."""
    return bool(path) and not roots.isdisjoint(path or ())


def within(path: Sequence[str] | None, codes: frozenset[str] | None) -> bool:
    """Whether a case passes a `grids` filter (None: no filter; a case without a grid never passes one)."""
    return codes is None or in_area(path, codes)


def listed(cases: Iterable[T], path: Callable[[T], Sequence[str] | None], roots: frozenset[str]
           ) -> list[tuple[T, bool]]:
    """(case, in_area) pairs: the area's cases first, then the rest, each group in the order given."""
    marked = [(c, in_area(path(c), roots)) for c in cases]
    return [m for m in marked if m[1]] + [m for m in marked if not m[1]]


def head_start_left(untaken: bool, staffed: bool, age_s: float, head_start_s: float) -> float:
    """What is left of the area's head start on a case (`area_first` on its push; 0: none): a case nobody
    has taken, in an area some mediator belongs to (`staffed`), younger than the head start."""
    return max(head_start_s - max(age_s, 0.0), 0.0) if untaken and staffed else 0.0


def push_delay(area_first: float, in_area: bool) -> float:
    """Seconds to hold a case's push for one watching mediator: what is left of the head start of the
    case's area's mediators (`area_first`), unless this mediator is of that area."""
    return 0.0 if in_area else max(area_first, 0.0)
