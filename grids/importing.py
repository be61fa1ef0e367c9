"""Reading a grids file, without I/O: which features go in, which are bad and why, and every path.

A file is a GeoJSON FeatureCollection. Each feature is a Polygon or MultiPolygon with the properties

    code     unique in the file, 1-64 letters, digits, _ . : -       (the key a re-import updates by)
    name     1-200 characters ("和平街道 (Heping Subdistrict)")
    level    district | street | community | grid
    parent   the code of the grid it lies in (in this file or already loaded); null (absent, "") for a district

The tree: a district has no parent and every other level needs one, whose level is above its own
(a grid may hang directly under a street where a city has no communities; never under another grid).
A child lies inside its parent: the parent grown by TOLERANCE_DEG (about 0.1 m) must cover it, so that a
shared border drawn with different vertices or rounding still passes.

Each feature is judged alone and a bad one is reported by its index in `features` (0-based) and skipped:

    not a Feature, properties missing, a property missing or malformed
    geometry not a Polygon / MultiPolygon, malformed coordinates, outside lon -180..180 / lat -90..90
    invalid geometry (shapely's explain_validity: "Self-intersection[121.5 31.2]", "Ring Self-intersection")
    a code used by an earlier feature of the file (the first one is judged, the later ones are bad)
    a district with a parent; any other level without one
    an unknown parent (neither in the file nor loaded), a parent that is bad itself, a parent whose
      level is not above the feature's, a feature not inside its parent
    a loaded grid that would no longer fit under the feature it hangs from (the feature's new level is
      not above it, or the feature's new shape does not hold it)

The file's order does not matter: features are judged by level, districts first, so a parent is judged
before its children whatever the order in the file. `path` (codes from the district down, the grid's
own last) comes from the tree as it will be after the import; loaded grids under a feature that moved
(a new parent) get their new paths in `Plan.repath`. Loaded grids missing from the file stay as they are.
"""
from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import shapely
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.prepared import PreparedGeometry, prep
from shapely.validation import explain_validity

from grids.rules import Level
from infra import imports

CODE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
NAME_MAX = 200
TOLERANCE_DEG = 1e-6        # how far a child may stray over its parent's border (degrees: about 0.1 m)
GEOMETRIES = ("Polygon", "MultiPolygon")


class FileError(ValueError):
    """The file as a whole cannot be read (not UTF-8, not JSON, not a FeatureCollection)."""


@dataclass(frozen=True)
class Stored:
    """A grid already loaded, as an import needs to know it."""
    code: str
    level: Level
    parent: str | None
    path: tuple[str, ...]
    geometry: dict[str, Any]


@dataclass(frozen=True)
class Grid:
    """A feature that goes in, whole."""
    code: str
    name: str
    level: Level
    parent: str | None
    path: tuple[str, ...]
    geometry: dict[str, Any]                       # GeoJSON {"type", "coordinates"}: 2-D, rings closed
    bbox: tuple[float, float, float, float]        # min lon, min lat, max lon, max lat


@dataclass(frozen=True)
class FeatureError:
    index: int          # the feature's index in the file's `features` (0-based)
    message: str


@dataclass
class Plan:
    grids: list[Grid] = field(default_factory=list)                  # parents before children
    errors: list[FeatureError] = field(default_factory=list)          # by index
    repath: dict[str, tuple[str, ...]] = field(default_factory=dict)  # loaded grids whose path changes


@dataclass
class Summary(imports.Summary):
    repathed: int = 0    # loaded grids not in the file whose path changed (under a moved grid)


@dataclass
class _Draft:
    index: int
    code: str
    name: str
    level: Level
    parent: str | None
    geometry: dict[str, Any]
    shape: BaseGeometry


def read(data: bytes) -> list[Any]:
    """The features of a file; FileError if it is not a FeatureCollection."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FileError(f"not UTF-8 text (byte {e.start})") from None
    try:
        doc = json.loads(text.removeprefix("\ufeff"))
    except json.JSONDecodeError as e:
        raise FileError(f"not JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(
            doc.get("features"), list):
        raise FileError("GeoJSON must be a FeatureCollection of Polygon / MultiPolygon features")
    return list(doc["features"])


def _text(props: dict[str, Any], key: str) -> str:
    v = props.get(key)
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"{key} is missing or empty")
    return v.strip()


def _geometry(raw: Any) -> tuple[dict[str, Any], BaseGeometry]:
    if not isinstance(raw, dict) or raw.get("type") not in GEOMETRIES:
        got = raw.get("type") if isinstance(raw, dict) else None
        raise ValueError(f"geometry must be a Polygon or MultiPolygon, not {got or 'missing'}")
    try:
        g = shapely.force_2d(shape({"type": raw["type"], "coordinates": raw.get("coordinates")}))
    except (ValueError, TypeError, AttributeError, IndexError, KeyError, shapely.errors.ShapelyError):
        raise ValueError(f"{raw['type']} coordinates are malformed") from None
    if g.is_empty:
        raise ValueError("geometry is empty")
    x0, y0, x1, y1 = g.bounds
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x0 < -180 or x1 > 180 or y0 < -90 or y1 > 90:
        raise ValueError("coordinates must be [lon, lat] within -180..180, -90..90")
    if not g.is_valid:
        raise ValueError(f"invalid geometry: {explain_validity(g)}")
    # stored as GeoJSON again: rings closed, [lon, lat] only, lists (what the map and a re-import compare)
    return json.loads(json.dumps(mapping(g))), g


def _draft(index: int, feat: Any) -> _Draft:
    """One feature on its own (no parent checks); ValueError saying what is wrong."""
    if not isinstance(feat, dict) or feat.get("type") != "Feature":
        raise ValueError("not a Feature")
    props = feat.get("properties")
    if not isinstance(props, dict):
        raise ValueError("properties must be an object with code, name, level, parent")
    code = _code(props)
    name = _text(props, "name")
    if len(name) > NAME_MAX or any(unicodedata.category(c) == "Cc" for c in name):
        raise ValueError(f"name: at most {NAME_MAX} characters, no control characters")
    if not isinstance(props.get("level"), str):
        raise ValueError("level is missing: district, street, community or grid")
    level = Level.parse(props["level"])
    parent = props.get("parent")
    if parent == "":        # what some GIS tools write for a missing value
        parent = None
    if parent is not None and (not isinstance(parent, str) or not CODE_RE.match(parent)):
        raise ValueError("parent must be a grid code or null")
    if level is Level.DISTRICT and parent is not None:
        raise ValueError(f"a district has no parent (parent is {parent})")
    if level is not Level.DISTRICT and parent is None:
        raise ValueError(f"a {level.wire} needs a parent")
    geometry, g = _geometry(feat.get("geometry"))
    return _Draft(index, code, name, level, parent, geometry, g)


def _code(props: dict[str, Any]) -> str:
    code = props.get("code")
    if isinstance(code, (int, float)) and not isinstance(code, bool):
        raise ValueError("code must be text (quote it: \"310101\")")
    code = _text(props, "code")
    if not CODE_RE.match(code):
        raise ValueError("code: 1-64 letters, digits, _ . : -")
    return code


class _Shapes:
    """Each parent's shape, grown by the tolerance and prepared once: many children are tested against it.
    By code: a code in the file is always the file's shape (never the loaded one), one only loaded the loaded."""

    def __init__(self) -> None:
        self._grown: dict[str, PreparedGeometry[BaseGeometry]] = {}

    def holds(self, code: str, parent: BaseGeometry, child: BaseGeometry) -> bool:
        grown = self._grown.get(code)
        if grown is None:
            grown = self._grown[code] = prep(parent.buffer(TOLERANCE_DEG))
        return bool(grown.covers(child))


def plan(features: list[Any], stored: Mapping[str, Stored]) -> Plan:
    """Judge every feature against the file and the loaded grids (the module's doc): what goes in."""
    out = Plan()
    drafts: dict[str, _Draft] = {}          # the first feature of each code that reads as a feature
    first_index: dict[str, int] = {}        # the first feature of each code, readable or not
    bad: dict[int, str] = {}
    for i, feat in enumerate(features):
        try:
            props = feat.get("properties") if isinstance(feat, dict) else None
            code = _code(props) if isinstance(props, dict) else None
        except ValueError:
            code = None
        if code is not None and code in first_index:
            bad[i] = f"duplicate code {code} (feature {first_index[code]} has it)"
            continue
        if code is not None:
            first_index[code] = i
        try:
            d = _draft(i, feat)
        except ValueError as e:
            bad[i] = str(e)
            continue
        drafts[d.code] = d

    shapes = _Shapes()
    stored_shapes: dict[str, BaseGeometry] = {}

    def stored_shape(code: str) -> BaseGeometry:
        g = stored_shapes.get(code)
        if g is None:
            g = stored_shapes[code] = shape(stored[code].geometry)
        return g

    children: dict[str, list[str]] = {}
    for s in stored.values():
        if s.parent is not None:
            children.setdefault(s.parent, []).append(s.code)

    good: dict[str, _Draft] = {}
    for d in sorted(drafts.values(), key=lambda d: (d.level, d.index)):
        problem = _judge(d, drafts, good, first_index, stored, shapes, stored_shape)
        if problem is None:
            problem = _fits_loaded_children(d, children.get(d.code, ()), first_index, stored, shapes,
                                            stored_shape)
        if problem is None:
            good[d.code] = d
        else:
            bad[d.index] = problem

    paths = _paths(good, stored)
    out.grids = [Grid(d.code, d.name, d.level, d.parent, paths[d.code], d.geometry, d.shape.bounds)
                 for d in sorted(good.values(), key=lambda d: (d.level, d.index))]
    out.errors = [FeatureError(i, bad[i]) for i in sorted(bad)]
    out.repath = {c: p for c, p in paths.items() if c not in good and p != stored[c].path}
    return out


def _judge(d: _Draft, drafts: Mapping[str, _Draft], good: Mapping[str, _Draft],
           first_index: Mapping[str, int], stored: Mapping[str, Stored], shapes: _Shapes,
           stored_shape: Callable[[str], BaseGeometry]) -> str | None:
    """Why the feature cannot go under its parent, or None."""
    if d.parent is None:
        return None
    if d.parent == d.code:
        return "a grid is not its own parent"
    if d.parent in first_index:                  # the file has it: the file's version is the parent
        p = drafts.get(d.parent)
        if p is not None and p.level >= d.level:
            return f"parent {d.parent} is a {p.level.wire}, not above a {d.level.wire}"
        if p is None or d.parent not in good:
            return f"parent {d.parent} is bad (feature {first_index[d.parent]})"
        if not shapes.holds(p.code, p.shape, d.shape):
            return f"not inside its parent {d.parent}"
        return None
    s = stored.get(d.parent)
    if s is None:
        return f"unknown parent {d.parent} (neither in this file nor loaded)"
    if s.level >= d.level:
        return f"parent {d.parent} is a {s.level.wire}, not above a {d.level.wire}"
    if not shapes.holds(s.code, stored_shape(s.code), d.shape):
        return f"not inside its parent {d.parent}"
    return None


def _fits_loaded_children(d: _Draft, kids: Iterable[str], first_index: Mapping[str, int], stored: Mapping[str, Stored],
                          shapes: _Shapes, stored_shape: Callable[[str], BaseGeometry]) -> str | None:
    """A loaded grid under this one that the file does not bring again must still fit under its new shape."""
    for c in kids:
        if c in first_index:
            continue
        child = stored[c]
        if child.level <= d.level:
            return f"{c}, a loaded {child.level.wire} under it, would not be below a {d.level.wire}"
        if not shapes.holds(d.code, d.shape, stored_shape(c)):
            return f"{c}, a loaded {child.level.wire} under it, would no longer be inside it"
    return None


def _paths(good: Mapping[str, _Draft], stored: Mapping[str, Stored]) -> dict[str, tuple[str, ...]]:
    """Every grid's path in the tree after the import (the file's parents over the loaded ones)."""
    parent: dict[str, str | None] = {c: s.parent for c, s in stored.items()}
    parent.update({c: d.parent for c, d in good.items()})
    paths: dict[str, tuple[str, ...]] = {}

    def path(code: str) -> tuple[str, ...]:
        chain = [code]
        while (p := parent[chain[-1]]) is not None and p not in paths:
            if len(chain) > len(Level):        # levels only go down a chain: a loop is a broken database
                raise ValueError(f"the loaded grids loop through {code}")
            chain.append(p)
        base = paths[p] if p is not None else ()
        for c in reversed(chain):
            base = paths[c] = (*base, c)
        return paths[code]

    for c in parent:
        if c not in paths:
            path(c)
    return paths
