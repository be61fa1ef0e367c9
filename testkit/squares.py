"""A few square grids around the test city's HOME, straight in SQL (until `helpline grids import` does it),
and grid membership for accounts.

    D1 district, S1 street:   the whole test city
    C1 community              121.46–121.50 E, 31.22–31.25 N: HOME (31.2304, 121.4737) lies in it
      G1 grid (West)          121.46–121.48: HOME in its interior
      G2 grid (East)          121.48–121.50: shares the edge lon 121.48 with G1
    C2 community              121.50–121.54, same latitudes, east of C1
      G3 grid                 121.50–121.52

A point on the G1|G2 edge is G1's (the smaller code: grids/rules.py). testkit.geo.near(dlat, dlon) moves
about 95 m east per 0.001 of dlon here: G2 starts at dlon 0.0063, C2 at 0.0263.
"""
from __future__ import annotations

import json
from typing import Any

import asyncpg

Square = tuple[float, float, float, float]          # lon0, lat0, lon1, lat1

SAMPLE: list[tuple[str, str, str, str | None, Square]] = [
    ("D1", "Huangpu", "district", None, (121.40, 31.18, 121.56, 31.30)),
    ("S1", "Nanjing Road", "street", "D1", (121.40, 31.18, 121.56, 31.30)),
    ("C1", "People's Square", "community", "S1", (121.46, 31.22, 121.50, 31.25)),
    ("G1", "West", "grid", "C1", (121.46, 31.22, 121.48, 31.25)),
    ("G2", "East", "grid", "C1", (121.48, 31.22, 121.50, 31.25)),
    ("C2", "Bund", "community", "S1", (121.50, 31.22, 121.54, 31.25)),
    ("G3", "Riverside", "grid", "C2", (121.50, 31.22, 121.52, 31.25)),
]
EDGE_LON = 121.48     # G1 | G2


def square(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


async def insert_grids(database_url: str, rows: list[tuple[str, str, str, str | None, Square]] = SAMPLE) -> None:
    """Insert (code, name, level, parent, square) rows, parents first; the path follows the parents."""
    conn = await asyncpg.connect(database_url)
    try:
        await insert_on(conn, rows)
    finally:
        await conn.close()


async def insert_on(conn: asyncpg.Connection, rows: list[tuple[str, str, str, str | None, Square]]) -> None:
    paths: dict[str, list[str]] = {}
    args = []
    for code, name, level, parent, (x0, y0, x1, y1) in rows:
        path = (paths[parent] if parent is not None else []) + [code]
        paths[code] = path
        args.append((code, name, level, parent, path, json.dumps(square(x0, y0, x1, y1)), x0, y0, x1, y1))
    await conn.executemany("INSERT INTO grids (code, name, level, parent, path, geometry, bbox)"
                           " VALUES ($1, $2, $3, $4, $5, $6::jsonb, box(point($7, $8), point($9, $10)))", args)


async def join(database_url: str, account_id: str, *codes: str, area_limited: bool | None = None) -> None:
    """Make the account a member of these grids (and, if asked, limit a dispatcher to them)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.executemany("INSERT INTO account_grids (account_id, code) VALUES ($1, $2)",
                               [(account_id, c) for c in codes])
        if area_limited is not None:
            await conn.execute("UPDATE accounts SET area_limited = $2 WHERE id = $1", account_id, area_limited)
    finally:
        await conn.close()
