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

from grids import importing, rules
from infra.db import Conn
from infra.errors import BadRequest

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


# ---------------------------------------------------------------- import (the rules: grids/importing.py)
BATCH = 1000
SEP = "\x1f"         # joins a path into one text for unnest(); never in a code (importing.CODE_RE)

# one statement per batch, each row whole or not at all; a row equal to the stored one is left alone
# (neither updated nor counted as such): xmax = 0 tells an insert from an update
UPSERT_SQL = f"""
INSERT INTO grids (code, name, level, parent, path, geometry, bbox)
SELECT code, name, level, parent, string_to_array(path, '{SEP}'), geometry::jsonb, box(point(x0, y0), point(x1, y1))
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::float8[], $8::float8[], $9::float8[], $10::float8[])
     AS r(code, name, level, parent, path, geometry, x0, y0, x1, y1)
ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, level = EXCLUDED.level, parent = EXCLUDED.parent,
    path = EXCLUDED.path, geometry = EXCLUDED.geometry, bbox = EXCLUDED.bbox, updated_at = now()
WHERE (grids.name, grids.level, grids.parent, grids.path, grids.geometry)
      IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.level, EXCLUDED.parent, EXCLUDED.path, EXCLUDED.geometry)
RETURNING (xmax = 0) AS added
"""
REPATH_SQL = f"""
UPDATE grids SET path = string_to_array(r.path, '{SEP}'), updated_at = now()
FROM unnest($1::text[], $2::text[]) AS r(code, path) WHERE grids.code = r.code
"""


async def loaded(conn: Conn) -> dict[str, importing.Stored]:
    """Every loaded grid as an import judges against it."""
    rows = await conn.fetch("SELECT code, level, parent, path, geometry FROM grids")
    return {r["code"]: importing.Stored(r["code"], rules.Level.parse(r["level"]), r["parent"], tuple(r["path"]),
                                        _geometry(r["geometry"])) for r in rows}


async def import_features(conn: Conn, features: list[Any]) -> tuple[importing.Summary, importing.Plan]:
    """Judge the file's features against the loaded grids and write the good ones, all in one transaction
    (imports one after another: the table is locked against another import meanwhile, not against reads)."""
    out = importing.Summary()
    async with conn.transaction():
        await conn.execute("LOCK TABLE grids IN SHARE ROW EXCLUSIVE MODE")
        plan = importing.plan(features, await loaded(conn))
        for i in range(0, len(plan.grids), BATCH):
            batch = plan.grids[i:i + BATCH]
            cols: list[list[Any]] = [[g.code for g in batch], [g.name for g in batch], [g.level.wire for g in batch],
                                     [g.parent for g in batch], [SEP.join(g.path) for g in batch],
                                     [json.dumps(g.geometry) for g in batch]]
            cols += [[g.bbox[k] for g in batch] for k in range(4)]
            rows = await conn.fetch(UPSERT_SQL, *cols)
            added = sum(1 for r in rows if r["added"])
            out.added += added
            out.updated += len(rows) - added
            out.unchanged += len(batch) - len(rows)
        if plan.repath:
            await conn.execute(REPATH_SQL, list(plan.repath), [SEP.join(p) for p in plan.repath.values()])
    out.bad, out.repathed = len(plan.errors), len(plan.repath)
    return out, plan


# ---------------------------------------------------------------- the grids an account works in
async def set_account_grids(conn: Conn, account_id: str, role: str, codes: list[str]) -> None:
    """Replace the account's grids (an empty list clears them); BadRequest naming the unknown codes."""
    rules.check_account_grids(role, codes)
    missing = await unknown(conn, codes)
    if missing:
        raise BadRequest(f"grids: no grid {', '.join(missing)}")
    async with conn.transaction():
        await conn.execute("DELETE FROM account_grids WHERE account_id = $1", account_id)
        await conn.execute("INSERT INTO account_grids (account_id, code) SELECT $1, unnest($2::text[])",
                           account_id, list(dict.fromkeys(codes)))


async def account_grids(conn: Conn, account_id: str) -> list[str]:
    return [r["code"] for r in await conn.fetch(
        "SELECT code FROM account_grids WHERE account_id = $1 ORDER BY code", account_id)]


# ---------------------------------------------------------------- the map (GET /api/grids)
# The whole FeatureCollection built by PostgreSQL in one statement (5,000 grids: no Python objects per
# vertex). `open` adds each grid's own open incidents (`open_by_code`, counted by dispatch) to every grid
# on its path, so a district shows the sum of everything under it.
COLLECTION_SQL = """
WITH own AS (SELECT code, n FROM unnest($2::text[], $3::int8[]) AS c(code, n)),
     up AS (SELECT p.code, sum(own.n)::int8 AS n FROM own JOIN grids t ON t.code = own.code
            CROSS JOIN LATERAL unnest(t.path) AS p(code) GROUP BY p.code)
SELECT json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg(json_build_object(
           'type', 'Feature', 'id', g.code, 'geometry', g.geometry,
           'properties', json_build_object('code', g.code, 'name', g.name, 'level', g.level, 'parent', g.parent,
                                           'path', g.path, 'open', coalesce(up.n, 0)))
       ORDER BY g.path), '[]'::json))::text
FROM grids g LEFT JOIN up ON up.code = g.code
WHERE ($1::text IS NULL OR g.level = $1) AND ($4::text[] IS NULL OR g.path && $4)
"""


async def feature_collection(conn: Conn, level: rules.Level | None, open_by_code: dict[str, int],
                             within: list[str] | None = None) -> str:
    """The grids (of one level, or all) as a GeoJSON FeatureCollection text, parents before children;
    `within` (grid codes): only those grids and the grids under them."""
    text: str = await conn.fetchval(COLLECTION_SQL, level.wire if level else None, list(open_by_code),
                                    list(open_by_code.values()), within)
    return text
