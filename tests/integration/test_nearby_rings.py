"""The nearby search (dispatch/matching.py NEARBY_LUA) on the real Redis: it grows in rings (a 16th of the radius,
a quarter, the whole) so that Redis does not sort every responder of a dense city for each report, and must give
exactly what one GEOSEARCH over the whole radius gives: the same responders, nearest first, with their distances,
whether the inner ring holds enough of them, only some, or none; and whether each is online and pageable."""
from __future__ import annotations

import math
import random
import uuid
from typing import cast

import pytest
import redis.asyncio as aioredis

from dispatch.matching import GEO_COUNT, Matcher
from infra.keys import Keys

CENTER = (30.25, 120.15)    # lat, lon
RADIUS_KM = 10.0


@pytest.fixture
async def keys(stack, redis):
    k = Keys(f"{stack.prefix}rings{uuid.uuid4().hex[:8]}:")
    await redis.set(k.live_ready, "1")
    yield k
    found = [key async for key in redis.scan_iter(match=k.prefix + "*", count=1000)]
    if found:
        await redis.delete(*found)


def offset(lat: float, lon: float, km: float, bearing: float) -> tuple[float, float]:
    """A point `km` from (lat, lon) toward `bearing` (radians), near enough on this scale."""
    return (lat + km * math.cos(bearing) / 111.2,
            lon + km * math.sin(bearing) / (111.2 * math.cos(math.radians(lat))))


async def place(redis: aioredis.Redis, keys: Keys, points: list[tuple[float, float]]) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in points]
    if ids:
        await redis.geoadd(keys.geo("medical"), [v for (lat, lon), i in zip(points, ids) for v in (lon, lat, i)])
    return ids


async def whole_radius(redis: aioredis.Redis, keys: Keys, lat: float, lon: float) -> list[tuple[str, float]]:
    """What one GEOSEARCH over the whole radius gives (the search before the rings)."""
    got = await redis.geosearch(keys.geo("medical"), longitude=lon, latitude=lat, radius=RADIUS_KM, unit="km",
                                sort="ASC", count=GEO_COUNT, withdist=True)
    return [(bytes(m).decode(), float(d)) for m, d in cast(list[tuple[bytes, float]], got)]


@pytest.mark.parametrize("layout", ["dense", "inner_few", "middle_few", "sparse", "none_in_radius", "empty"])
async def test_the_rings_give_what_the_whole_radius_gives(redis, keys, layout):
    rng = random.Random(layout)
    lat, lon = CENTER

    def ring(n: int, lo: float, hi: float) -> list[tuple[float, float]]:
        return [offset(lat, lon, rng.uniform(lo, hi), rng.uniform(0, 2 * math.pi)) for _ in range(n)]
    points = {
        "dense": ring(400, 0, 0.6) + ring(1200, 0.6, 9.9),           # the first ring (0.625 km) holds 25 and more
        "inner_few": ring(10, 0, 0.6) + ring(300, 0.7, 2.4) + ring(100, 2.6, 9.9),  # the quarter ring completes
        "middle_few": ring(3, 0, 0.6) + ring(8, 0.7, 2.4) + ring(60, 2.6, 9.9),      # the whole radius does
        "sparse": ring(2, 0.7, 2.4) + ring(7, 2.6, 9.9) + ring(30, 10.2, 20),        # fewer than 25 in all
        "none_in_radius": ring(40, 10.3, 30),
        "empty": [],
    }[layout]
    ids = await place(redis, keys, points)
    online = set(rng.sample(ids, len(ids) // 2))
    for i in online:
        await redis.set(keys.online(i), "1")
    pageable = set(rng.sample(ids, len(ids) // 3))
    if pageable:
        await redis.sadd(keys.pageable, *pageable)

    want = await whole_radius(redis, keys, lat, lon)
    near = await Matcher(redis, keys).nearby("medical", lat, lon, RADIUS_KM)
    assert near.candidates is not None
    got = [(c.responder_id, c.distance_km) for c in near.candidates]
    assert [i for i, _ in got] == [i for i, _ in want]
    assert [d for _, d in got] == pytest.approx([d for _, d in want], abs=1e-4)
    assert [c.online for c in near.candidates] == [i in online for i, _ in want]
    assert [c.pageable for c in near.candidates] == [i in pageable for i, _ in want]
    unpaged = await Matcher(redis, keys, paging=False).nearby("medical", lat, lon, RADIUS_KM)
    assert unpaged.candidates is not None
    assert [c.responder_id for c in unpaged.candidates] == [i for i, _ in want]
    assert not any(c.pageable for c in unpaged.candidates)
    expected = {"dense": GEO_COUNT, "inner_few": GEO_COUNT, "middle_few": GEO_COUNT, "sparse": 9,
                "none_in_radius": 0, "empty": 0}[layout]
    assert len(got) == expected


async def test_the_rings_answer_every_point_as_the_whole_radius_does(redis, keys):
    """Random places over a city whose density varies (a dense core, a sparse edge): the same answer each time."""
    rng = random.Random(7)
    lat, lon = CENTER
    pts = [offset(lat, lon, abs(rng.gauss(0, 3)), rng.uniform(0, 2 * math.pi)) for _ in range(800)]
    await place(redis, keys, pts)
    m = Matcher(redis, keys)
    for _ in range(60):
        qlat, qlon = offset(lat, lon, rng.uniform(0, 14), rng.uniform(0, 2 * math.pi))
        want = await whole_radius(redis, keys, qlat, qlon)
        near = await m.nearby("medical", qlat, qlon, RADIUS_KM)
        assert near.candidates is not None
        assert [c.responder_id for c in near.candidates] == [i for i, _ in want], (qlat, qlon)
