"""Places in the test city: its centre, a point near it, points spread around it."""
from __future__ import annotations

import math
import random

HOME = CENTER = (31.2304, 121.4737)


def near(dlat: float, dlon: float = 0.0) -> dict[str, float]:
    """A point about 110 m north per 0.001 of dlat from HOME."""
    return {"lat": round(HOME[0] + dlat, 6), "lon": round(HOME[1] + dlon, 6)}


def spread(rng: random.Random, n: int, radius_km: float = 4.0) -> list[tuple[float, float]]:
    """n points uniformly within radius_km of CENTER."""
    out = []
    for _ in range(n):
        r = radius_km * math.sqrt(rng.random())
        a = rng.random() * 2 * math.pi
        dlat = r * math.cos(a) / 111.0
        dlon = r * math.sin(a) / (111.0 * math.cos(math.radians(CENTER[0])))
        out.append((round(CENTER[0] + dlat, 6), round(CENTER[1] + dlon, 6)))
    return out
