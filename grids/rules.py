"""Grid rules without I/O: levels, and which grid holds a point.

Point-in-polygon is shapely's (GEOS), never hand-written. A point lies in a grid when the grid's
polygon covers it (its boundary included). The innermost holding grid wins (the deepest level). On an
edge shared by two grids of the same level both cover the point; the one whose interior holds it is
taken if any, else the one with the smallest code: every point gets exactly one grid, the same one on
every node and every run.
"""
from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shapely import Point
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from infra.errors import BadRequest


class Level(enum.IntEnum):
    """Depth in the tree, district at the top."""
    DISTRICT = 1
    STREET = 2
    COMMUNITY = 3
    GRID = 4

    @property
    def wire(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, s: str) -> Level:
        try:
            return cls[s.upper()]
        except KeyError:
            raise ValueError(f"level must be one of district, street, community, grid, not {s!r}") from None


@dataclass(frozen=True)
class GridRef:
    """What an incident or case carries: `grid` {code, name, path} on the wire."""
    code: str
    name: str
    path: tuple[str, ...]     # codes from the district down, this one last

    def view(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "path": list(self.path)}


@dataclass(frozen=True)
class Candidate:
    """A grid whose bounding box holds the point (grids/store.py reads them), with its geometry."""
    ref: GridRef
    geometry: dict[str, Any]    # GeoJSON Polygon / MultiPolygon

    @property
    def depth(self) -> int:
        return len(self.ref.path)


def geometry_of(geojson: dict[str, Any]) -> BaseGeometry:
    return shape(geojson)


def innermost(candidates: Iterable[Candidate], lat: float, lon: float) -> GridRef | None:
    """The grid holding (lat, lon), by the rule in the module's doc; None outside every grid."""
    p = Point(lon, lat)
    best: tuple[int, int, str] | None = None     # (-depth, 0 interior / 1 edge, code): smallest wins
    found: GridRef | None = None
    for c in candidates:
        g = geometry_of(c.geometry)
        if not g.covers(p):
            continue
        key = (-c.depth, 0 if g.contains(p) else 1, c.ref.code)
        if best is None or key < best:
            best, found = key, c.ref
    return found


def check_account_grids(role: str, codes: Iterable[str]) -> None:
    """Who may belong to grids: every staff role (a grid worker, a community's mediator, a dispatcher's
    area, an agency's coverage, a front desk's community); never a resident."""
    if role == "resident" and any(True for _ in codes):
        raise BadRequest("grids: a resident belongs to no grid")
