"""A small city of grids written straight into the `grids` table (no import), for tests of what uses grids.

    D1 Riverside district ─ S1 East Street ─┬─ C1 Lotus community ─┬─ G11 Lotus 1 (west half)
                                            │                      └─ G12 Lotus 2 (east half)
                                            └─ C2 Pine community ──── G21 Pine 1

The squares sit side by side around the demo city centre (31.2304, 121.4737); CENTRES gives a point
well inside each grid.
"""
from __future__ import annotations

import json
from typing import Any

import asyncpg

Row = tuple[str, str, str, str | None, tuple[float, float, float, float]]   # code, name, level, parent, box

# (lon0, lat0, lon1, lat1)
CITY: list[Row] = [
    ("D1", "Riverside", "district", None, (121.40, 31.20, 121.50, 31.26)),
    ("S1", "East Street", "street", "D1", (121.40, 31.20, 121.50, 31.26)),
    ("C1", "Lotus", "community", "S1", (121.40, 31.20, 121.45, 31.26)),
    ("C2", "Pine", "community", "S1", (121.45, 31.20, 121.50, 31.26)),
    ("G11", "Lotus 1", "grid", "C1", (121.40, 31.20, 121.425, 31.26)),
    ("G12", "Lotus 2", "grid", "C1", (121.425, 31.20, 121.45, 31.26)),
    ("G21", "Pine 1", "grid", "C2", (121.45, 31.20, 121.50, 31.26)),
]
CENTRES = {code: ((b[1] + b[3]) / 2, (b[0] + b[2]) / 2) for code, _, _, _, b in CITY}   # code -> (lat, lon)
OUTSIDE = (31.40, 121.60)


def square(lon0: float, lat0: float, lon1: float, lat1: float) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]]}


async def insert_city(database_url: str, rows: list[Row] = CITY) -> None:
    """The rows (parents before children), with their paths."""
    paths: dict[str, list[str]] = {}
    conn = await asyncpg.connect(database_url)
    try:
        for code, name, level, parent, (x0, y0, x1, y1) in rows:
            paths[code] = (paths[parent] if parent else []) + [code]
            await conn.execute(
                "INSERT INTO grids (code, name, level, parent, path, geometry, bbox)"
                " VALUES ($1, $2, $3, $4, $5, $6::jsonb, box(point($7, $8), point($9, $10)))",
                code, name, level, parent, paths[code], json.dumps(square(x0, y0, x1, y1)), x0, y0, x1, y1)
    finally:
        await conn.close()


async def belong(database_url: str, account_id: str, *codes: str) -> None:
    """The account belongs to these grids (what `helpline user set NAME --grids` writes)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.executemany("INSERT INTO account_grids (account_id, code) VALUES ($1, $2)",
                               [(account_id, c) for c in codes])
    finally:
        await conn.close()
