"""grids/store.py on the real database: the bounding-box cut and the exact test together."""
from __future__ import annotations

import json
from typing import Any

from grids import store
from infra import db


def square(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


async def test_tag_takes_the_innermost_grid_and_none_outside(stack, clean_db):
    conn = await db.connect(stack.database_url)
    try:
        rows = [("D1", "District", "district", None, ["D1"], square(121.0, 31.0, 121.2, 31.1)),
                ("G1", "West", "grid", "D1", ["D1", "G1"], square(121.0, 31.0, 121.1, 31.1)),
                ("G2", "East", "grid", "D1", ["D1", "G2"], square(121.1, 31.0, 121.2, 31.1)),
                # a triangle: its bounding box holds (31.09, 121.21) but the triangle does not
                ("T", "Triangle", "district", None, ["T"],
                 {"type": "Polygon", "coordinates": [[[121.2, 31.0], [121.3, 31.0], [121.3, 31.1], [121.2, 31.0]]]})]
        for code, name, level, parent, path, geo in rows:
            xs = [p[0] for p in geo["coordinates"][0]]
            ys = [p[1] for p in geo["coordinates"][0]]
            await conn.execute("INSERT INTO grids (code, name, level, parent, path, geometry, bbox)"
                               " VALUES ($1, $2, $3, $4, $5, $6::jsonb, box(point($7, $8), point($9, $10)))",
                               code, name, level, parent, path, json.dumps(geo), min(xs), min(ys), max(xs), max(ys))
        west = await store.tag(conn, 31.05, 121.05)
        assert west is not None and (west.code, west.name, west.path) == ("G1", "West", ("D1", "G1"))
        edge = await store.tag(conn, 31.05, 121.1)          # the shared edge: the smaller code
        assert edge is not None and edge.code == "G1"
        assert await store.tag(conn, 31.09, 121.21) is None  # in the box, outside the triangle
        assert (await store.tag(conn, 31.01, 121.29)).code == "T"  # type: ignore[union-attr]
        assert await store.tag(conn, 40.0, 116.0) is None
        assert await store.tag(conn, None, None) is None
        assert await store.unknown(conn, ["G2", "nope", "D1", "nope"]) == ["nope"]
        assert (await store.ref(conn, "G2")).view() == {"code": "G2", "name": "East",  # type: ignore[union-attr]
                                                        "path": ["D1", "G2"]}
    finally:
        await conn.close()
