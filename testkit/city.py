"""A generated city of grids (网格) over the demo city's area: districts, streets (街道), communities (社区)
and grids, tiling the same rectangle around testkit.geo.CENTER that the sample places lie in (13 km each
way: data/places-sample.csv reaches 12 km). Made up from word lists, never copied from a map.

    python -m testkit.city > data/city-sample.geojson               # the shipped sample: 54 grids
    python -m testkit.city --grids 5000 > /tmp/city-5000.geojson     # about 5,000 (the benchmark's city)

Every level tiles its parent exactly: a parent's rectangle is cut into rows, each row into cells, and the
cuts are the same numbers on both sides, so neighbours share their edges exactly and the children of a
grid cover it without gap or overlap (grids/importing.py accepts them with no tolerance at all). Codes
follow the tree: district `D01`, street `D01-S02`, community `D01-S02-C03`, grid `D01-S02-C03-G04`.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
from typing import Any

from grids.importing import Summary
from infra.db import Conn
from testkit.gazetteer import DISTRICTS, FIRST, ROADS, SECOND
from testkit.geo import CENTER

HALF_LAT, HALF_LON = 0.12, 0.14          # about 13.3 km north-south and east-west of the centre
BOUNDS = (round(CENTER[1] - HALF_LON, 6), round(CENTER[0] - HALF_LAT, 6),
          round(CENTER[1] + HALF_LON, 6), round(CENTER[0] + HALF_LAT, 6))    # min lon, min lat, max lon, max lat
DEFAULT_GRIDS = 48

Rect = tuple[float, float, float, float]


def branching(grids: int) -> tuple[int, int, int, int]:
    """How many districts, streets per district, communities per street and grids per community make
    about `grids` grids (48: 3, 3, 2, 3 = 54; 5,000: 8, 9, 8, 9 = 5,184)."""
    d = max(2, round(grids ** 0.25))
    s = max(2, round((grids / d) ** (1 / 3)))
    c = max(2, round((grids / (d * s)) ** 0.5))
    g = max(1, round(grids / (d * s * c)))
    return d, s, c, g


def _cuts(lo: float, hi: float, weights: list[float]) -> list[float]:
    """lo, the inner cuts, hi: the inner ones rounded to 6 places, the ends exactly the parent's."""
    total = sum(weights)
    inner, acc = [], 0.0
    for w in weights[:-1]:
        acc += w
        inner.append(round(lo + (hi - lo) * acc / total, 6))
    return [lo, *inner, hi]


def split(rect: Rect, k: int, rng: random.Random) -> list[Rect]:
    """`k` rectangles tiling `rect` exactly: rows of near-square cells, cut a little unevenly."""
    x0, y0, x1, y1 = rect
    width_km = (x1 - x0) * 111.0 * math.cos(math.radians(CENTER[0]))
    height_km = (y1 - y0) * 111.0
    rows = min(k, max(1, round(math.sqrt(k * height_km / width_km))))
    per_row = [k // rows + (1 if r < k % rows else 0) for r in range(rows)]
    ys = _cuts(y0, y1, [n * rng.uniform(0.8, 1.2) for n in per_row])
    out: list[Rect] = []
    for r, n in enumerate(per_row):
        xs = _cuts(x0, x1, [rng.uniform(0.75, 1.25) for _ in range(n)])
        out += [(xs[i], ys[r], xs[i + 1], ys[r + 1]) for i in range(n)]
    return out


def polygon(rect: Rect) -> dict[str, Any]:
    x0, y0, x1, y1 = rect
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def _feature(code: str, name: str, level: str, parent: str | None, rect: Rect) -> dict[str, Any]:
    return {"type": "Feature", "properties": {"code": code, "name": name, "level": level, "parent": parent},
            "geometry": polygon(rect)}


def _names(rng: random.Random, pool: list[tuple[str, str]], n: int) -> list[tuple[str, str]]:
    """n names from the pool, without repeats while it lasts, then numbered."""
    picked = rng.sample(pool, min(n, len(pool)))
    return picked + [(f"{pool[i % len(pool)][0]}{i + 1}", f"{pool[i % len(pool)][1]} {i + 1}")
                     for i in range(len(picked), n)]


def features(grids: int = DEFAULT_GRIDS, seed: int = 14) -> list[dict[str, Any]]:
    """The city's features, parents before children."""
    rng = random.Random(seed)
    nd, ns, nc, ng = branching(grids)
    communities = [(a + b, f"{ae}{be}") for a, ae in FIRST for b, be in SECOND]
    out: list[dict[str, Any]] = []
    for di, (rect_d, (dz, de)) in enumerate(zip(split(BOUNDS, nd, rng), _names(rng, DISTRICTS, nd))):
        d = f"D{di + 1:02d}"
        out.append(_feature(d, f"{dz}区 ({de} District)", "district", None, rect_d))
        for si, (rect_s, (sz, se)) in enumerate(zip(split(rect_d, ns, rng), _names(rng, ROADS, ns))):
            s = f"{d}-S{si + 1:02d}"
            out.append(_feature(s, f"{sz}街道 ({se} Subdistrict)", "street", d, rect_s))
            for ci, (rect_c, (cz, ce)) in enumerate(zip(split(rect_s, nc, rng), _names(rng, communities, nc))):
                c = f"{s}-C{ci + 1:02d}"
                out.append(_feature(c, f"{cz}社区 ({ce} Community)", "community", s, rect_c))
                for gi, rect_g in enumerate(split(rect_c, ng, rng)):
                    out.append(_feature(f"{c}-G{gi + 1:02d}", f"{cz}社区第{gi + 1}网格 ({ce} Community Grid {gi + 1})",
                                        "grid", c, rect_g))
    return out


async def load(conn: Conn, grids: int = DEFAULT_GRIDS, seed: int = 14) -> Summary:
    """Import a generated city straight into the database (what `helpline grids import` does with its file)."""
    from grids import store

    summary, plan = await store.import_features(conn, features(grids, seed))
    assert not plan.errors, plan.errors[:3]
    return summary


def to_geojson(feats: list[dict[str, Any]]) -> str:
    """A FeatureCollection, one feature a line (a regenerated sample diffs by feature)."""
    lines = ",\n".join(json.dumps(f, ensure_ascii=False) for f in feats)
    return '{"type": "FeatureCollection", "features": [\n' + lines + "\n]}\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--grids", type=int, default=DEFAULT_GRIDS, help="about how many grids (the lowest level)")
    p.add_argument("--seed", type=int, default=14)
    args = p.parse_args()
    if args.grids < 1:
        p.error("--grids must be at least 1")
    sys.stdout.write(to_geojson(features(args.grids, args.seed)))


if __name__ == "__main__":
    main()
