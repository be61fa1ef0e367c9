"""SQL of the grids (the rules: grids/rules.py): which grid holds a point, grids by code.

Tagging reads the grids whose bounding box holds the point (a GiST index: a handful of rows however
many grids are loaded) and lets shapely decide among them; nothing is cached, so an import is seen by
every node at once.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import asyncpg

from grids import rules
from infra.db import Conn

# box @> box, not box @> point: only the former is a GiST operator of box_ops (the index is used)
TAG_SQL = "SELECT code, name, path, geometry FROM grids WHERE bbox @> box(point($2, $1), point($2, $1))"


def _geometry(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else dict(json.loads(v))


def _ref(r: asyncpg.Record) -> rules.GridRef:
    return rules.GridRef(r["code"], r["name"], tuple(r["path"]))


async def tag(conn: Conn, lat: float | None, lon: float | None) -> rules.GridRef | None:
    """The innermost grid holding the position (None without one, or outside every grid)."""
    if lat is None or lon is None:
        return None
    rows = await conn.fetch(TAG_SQL, lat, lon)
    return rules.innermost((rules.Candidate(_ref(r), _geometry(r["geometry"])) for r in rows), lat, lon)


async def refs(conn: Conn, codes: Iterable[str]) -> dict[str, rules.GridRef]:
    """{code: GridRef} for the codes that exist."""
    rows = await conn.fetch("SELECT code, name, path FROM grids WHERE code = ANY($1::text[])", list(set(codes)))
    return {r["code"]: _ref(r) for r in rows}


async def ref(conn: Conn, code: str | None) -> rules.GridRef | None:
    if code is None:
        return None
    return (await refs(conn, [code])).get(code)


async def unknown(conn: Conn, codes: Iterable[str]) -> list[str]:
    """The codes among `codes` that name no grid, in the order given (for a refusal that names them)."""
    wanted = list(dict.fromkeys(codes))
    known = await refs(conn, wanted)
    return [c for c in wanted if c not in known]
