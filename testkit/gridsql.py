"""A small city of grids written straight into the `grids` table (no import), for tests of what uses grids.

    D1 Riverside district ─ S1 East Street ─┬─ C1 Lotus community ─┬─ G11 Lotus 1 (west half)
                                            │                      └─ G12 Lotus 2 (east half)
                                            └─ C2 Pine community ──── G21 Pine 1

The squares sit side by side around the demo city centre (31.2304, 121.4737); CENTRES gives a point
well inside each grid.
"""
from __future__ import annotations

from testkit import squares

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


async def insert_city(database_url: str, rows: list[Row] = CITY) -> None:
    """The rows (parents before children), with their paths (testkit/squares.py writes them)."""
    await squares.insert_grids(database_url, rows)


async def belong(database_url: str, account_id: str, *codes: str) -> None:
    """The account belongs to these grids (what `helpline user set NAME --grids` writes)."""
    await squares.join(database_url, account_id, *codes)
