"""Generated square grids for the benchmarks (`press_to_offer --grids N`), straight in SQL; run as a module,
the cost of tagging alone.

N grid-level squares tile a square around the city centre (wider than the 4 km the benchmarks spread people
over, so some reports fall outside every grid as in a real city's edge); every 5x5 block of them is a
community, every 4 communities across a street, the whole a district: N + about N/25 + N/100 + 1 rows,
each with its bounding box, as `helpline grids import` would store them (grids/store.py reads them).

    .venv/bin/python -m bench.grids [--grids 5000] [--n 3000]

times, on a database of its own with N grids loaded, what a report adds before its statement: the tag
(grids/store.tag: the bounding-box cut, then shapely) and the members of its grid and community
(dispatch/roster_store.grid_members), on one pooled connection as the service does, for N points spread
like press_to_offer's reports; then the same with no grids loaded (the tag query alone).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import time

import asyncpg

from testkit.geo import CENTER, spread

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


async def _time(pool: asyncpg.Pool, points: list[tuple[float, float]]) -> tuple[dict[str, list[float]], int]:
    """Per point: one round trip (SELECT 1, the floor), the tag, the members of its grid and community, and
    tag + members together as a report does them."""
    from dispatch import roster_store
    from grids import store as grids_store

    took: dict[str, list[float]] = {"round trip": [], "tag": [], "members": [], "tag + members": []}
    tagged = 0
    for lat, lon in points:
        async with pool.acquire() as conn:
            t0 = time.perf_counter()
            await conn.fetchval("SELECT 1")
            t1 = time.perf_counter()
            grid = await grids_store.tag(conn, lat, lon)
            t2 = time.perf_counter()
            if grid is not None:
                await roster_store.grid_members(conn, grid.code, "medical")
            t3 = time.perf_counter()
        took["round trip"].append(t1 - t0)
        took["tag"].append(t2 - t1)
        took["members"].append(t3 - t2)
        took["tag + members"].append(t3 - t1)
        tagged += grid is not None
    return took, tagged


async def run(args: argparse.Namespace) -> None:
    from infra import db
    from testkit.accounts import create_accounts
    from testkit.stack import BenchStack
    from testkit.stats import conditions, latency_line, percentiles

    print(f"bench.grids - {conditions()}")
    points = spread(random.Random(args.seed), args.n)
    async with BenchStack("grids") as stack:
        pool = await db.create_pool(stack.database_url, min_size=1, max_size=2)
        try:
            empty, _ = await _time(pool, points[: max(1, args.n // 3)])
            conn = await stack.connect()
            try:
                rows_n = await load(conn, args.grids)
                ids = await create_accounts(conn, "responder", 200, "grids", skills=["medical"])
                await conn.executemany("UPDATE responders SET status = 'available', lat = $2, lon = $3"
                                       " WHERE account_id = $1",
                                       [(i, la, lo) for i, (la, lo) in zip(ids, spread(random.Random(2), 200))])
                members = await join_where_on_duty(conn)
                await conn.execute("ANALYZE")
            finally:
                await conn.close()
            await _time(pool, points[:100])                  # warm the plans and caches
            loaded, tagged = await _time(pool, points)
        finally:
            await pool.close()
    print(f"what a report adds before its statement, {args.n} points within 4 km of the centre, one pooled"
          " connection (round trip: SELECT 1 on it, for scale)")
    print("no grids loaded:")
    for label in ("round trip", "tag"):
        print(latency_line(label, percentiles(empty[label])))
    print(f"{args.grids} grids loaded ({rows_n} rows), {members} of 200 responders grid workers, {tagged} of"
          f" {args.n} points in a grid:")
    for label, xs in loaded.items():
        print(latency_line(label, percentiles(xs)))
    print(filter_cost())


def filter_cost(n: int = 20000) -> str:
    """A watcher's cost per incident.updated push: the queue filter (handlers/help.py QueueFeed: one decode of
    the incident's id, status and grid path) against handing the payload on unread (no filter)."""
    from dispatch.access import Filter
    from handlers.help import QueueFeed

    class Sink:
        closed = False

        def __init__(self) -> None:
            self.n = 0

        def deliver(self, payload: str) -> None:
            self.n += 1

    inc = {"id": "8d7f0a52-3c1e-4b7e-9a55-3f1f3c0f2a11", "ref_no": "H-1234", "status": "offered",
           "category": "medical", "priority": 1, "lat": 31.2304, "lon": 121.4737, "accuracy_m": 15, "note": "x" * 200,
           "channel": "ws", "created_at": "2026-11-29T12:00:00Z", "updated_at": "2026-11-29T12:00:01Z",
           "reporter": {"id": "r", "name": "", "false_alarms": 0}, "responder": None, "offer_attempts": 1,
           "version": 3, "disposition": None, "flags": [], "acknowledged_by": [], "escalation_reason": None,
           "opened_by": None, "caller_name": None, "address": None, "place_id": None, "duplicate_of": None,
           "grid": {"code": "BG35-35", "name": "Grid BG35-35", "path": ["BD", "BS1-1", "BC7-7", "BG35-35"]}}
    payload = json.dumps({"type": "incident.updated", "incident": inc})
    sink = Sink()
    sets: Filter = (frozenset({"BC7-7"}),)
    feed = QueueFeed(sink, sets, set())  # type: ignore[arg-type]
    t0 = time.perf_counter()
    for _ in range(n):
        sink.deliver(payload)
    t1 = time.perf_counter()
    for _ in range(n):
        feed.deliver(payload)
    t2 = time.perf_counter()
    return (f"queue filter per push ({len(payload)} bytes, {n} pushes): {1e6 * (t2 - t1) / n:.1f} us filtered,"
            f" {1e6 * (t1 - t0) / n:.2f} us unfiltered (handed on unread)")


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.grids", description="the cost of tagging a report")
    ap.add_argument("--grids", type=int, default=5000, help="grid-level squares to load (default 5000)")
    ap.add_argument("--n", type=int, default=3000, help="points tagged (default 3000)")
    ap.add_argument("--seed", type=int, default=1)
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
