"""Generated square grids for the benchmarks (`press_to_offer --grids N`), straight in SQL.

N grid-level squares tile a square around the city centre (wider than the 4 km the benchmarks spread people
over, so some reports fall outside every grid as in a real city's edge); every 5x5 block of them is a
community, every 4 communities across a street, the whole a district: N + about N/25 + N/100 + 1 rows,
each with its bounding box, as `helpline grids import` would store them (grids/store.py reads them).
"""
from __future__ import annotations

import json
import math

import asyncpg

from testkit.geo import CENTER

HALF_KM = 5.0        # the tiled square reaches this far from the centre each way
BLOCK = 5            # grids per community side
STREET = 4           # communities per street side


def _square(x0: float, y0: float, x1: float, y1: float) -> str:
    return json.dumps({"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]})


Row = tuple[str, str, str, "str | None", list[str], str, float, float, float, float]


def rows(n: int) -> list[Row]:
    """(code, name, level, parent, path, geometry, x0, y0, x1, y1), parents first."""
    side = max(1, math.ceil(math.sqrt(n)))
    dlat = HALF_KM / 111.0
    dlon = HALF_KM / (111.0 * math.cos(math.radians(CENTER[0])))
    lat0, lon0 = CENTER[0] - dlat, CENTER[1] - dlon
    step_lat, step_lon = 2 * dlat / side, 2 * dlon / side

    def box(i0: int, j0: int, i1: int, j1: int) -> tuple[float, float, float, float]:
        return (lon0 + j0 * step_lon, lat0 + i0 * step_lat, lon0 + j1 * step_lon, lat0 + i1 * step_lat)

    out: list[Row] = []
    whole = box(0, 0, side, side)
    out.append(("BD", "Bench district", "district", None, ["BD"], _square(*whole), *whole))
    span_s, span_c = BLOCK * STREET, BLOCK
    for si in range(0, side, span_s):
        for sj in range(0, side, span_s):
            s = f"BS{si // span_s}-{sj // span_s}"
            b = box(si, sj, min(side, si + span_s), min(side, sj + span_s))
            out.append((s, f"Street {s}", "street", "BD", ["BD", s], _square(*b), *b))
            for ci in range(si, min(side, si + span_s), span_c):
                for cj in range(sj, min(side, sj + span_s), span_c):
                    c = f"BC{ci // span_c}-{cj // span_c}"
                    b = box(ci, cj, min(side, ci + span_c), min(side, cj + span_c))
                    out.append((c, f"Community {c}", "community", s, ["BD", s, c], _square(*b), *b))
                    for i in range(ci, min(side, ci + span_c)):
                        for j in range(cj, min(side, cj + span_c)):
                            if i * side + j >= n:
                                continue
                            g = f"BG{i}-{j}"
                            b = box(i, j, i + 1, j + 1)
                            out.append((g, f"Grid {g}", "grid", c, ["BD", s, c, g], _square(*b), *b))
    return out


async def load(conn: asyncpg.Connection, n: int) -> int:
    """Insert the generated grids; the number of rows (all levels)."""
    made = rows(n)
    await conn.executemany("INSERT INTO grids (code, name, level, parent, path, geometry, bbox)"
                           " VALUES ($1, $2, $3, $4, $5, $6::jsonb, box(point($7, $8), point($9, $10)))", made)
    return len(made)


async def join_where_on_duty(conn: asyncpg.Connection) -> int:
    """Every on-duty responder becomes a worker of the grid-level square holding their position."""
    return int(await conn.fetchval(
        "WITH j AS (INSERT INTO account_grids (account_id, code)"
        " SELECT DISTINCT ON (r.account_id) r.account_id, g.code FROM responders r"
        " JOIN grids g ON g.level = 'grid' AND g.bbox @> point(r.lon, r.lat)"
        " WHERE r.status <> 'off_duty' AND r.lat IS NOT NULL ORDER BY r.account_id, g.code"
        " ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM j"))
