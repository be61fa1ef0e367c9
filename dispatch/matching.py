"""Matching: the live GEO index of responders on duty and the nearby search.

The index lives in Redis (one GEO set per skill, rebuilt from PostgreSQL after
a Redis restart); whom to offer among the nearby is decided by the pure rule
(lifecycle.rank / next_step). When Redis cannot be asked, a report is not lost:
it stays queued and the worker's orphan sweep matches it once Redis is back.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from dispatch.lifecycle import Candidate
from infra import ratelimit
from infra.errors import RateLimited
from infra.keys import Keys

log = logging.getLogger(__name__)

GEO_COUNT = 25     # nearest first: more than max_offers ever needs, few enough for one round trip

# One round trip before a report: count it against the reporter's limit (INCR, with the window's
# expiry set by the first), and unless that is exceeded, the nearby responders with the skill and
# whether each is online. Returns {count, id1, dist1, online1, ...}. The online keys are named inside
# the script (not in KEYS): fine on one Redis, which is what helpline runs on.
NEARBY_LUA = """
local out = {0}
if ARGV[7] ~= '' then
    local n = redis.call('INCR', KEYS[2])
    if n == 1 then redis.call('EXPIRE', KEYS[2], ARGV[6]) end
    out[1] = n
    if n > tonumber(ARGV[7]) then return out end
end
if ARGV[1] == '' then return out end
local hits = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[1], ARGV[2], 'BYRADIUS', ARGV[3], 'km',
                        'ASC', 'COUNT', ARGV[4], 'WITHDIST')
for _, h in ipairs(hits) do
    out[#out + 1] = h[1]
    out[#out + 1] = h[2]
    out[#out + 1] = redis.call('EXISTS', ARGV[5] .. h[1])
end
return out
"""

def candidates_of(flat: list[bytes | str | int]) -> list[Candidate]:
    """The script's answer after its count, as candidates whose status the database will tell."""
    out = []
    for k in range(1, len(flat), 3):
        item = flat[k]
        rid = item.decode() if isinstance(item, bytes) else str(item)
        out.append(Candidate(rid, float(flat[k + 1]), "unknown", online=bool(flat[k + 2])))
    return out


class Matcher:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis, self.keys = redis, keys
        self._nearby = redis.register_script(NEARBY_LUA)

    async def nearby_counted(self, skill: str, lat: float | None, lon: float | None, radius_km: float,
                             reporter_id: str | None = None) -> list[Candidate]:
        """Count a report against its reporter's limit (if given) and search nearby, in one round trip.

        Raises RateLimited past the limit, RedisError if Redis is down."""
        limit, window = ratelimit.ACCOUNT_LIMITS["help.request"]
        geo = self.keys.geo(skill)
        at: list[float | str] = [lon, lat] if lat is not None and lon is not None else ["", ""]  # "": count only
        flat = await self._nearby(
            keys=[geo, self.keys.rate("help.request", reporter_id) if reporter_id else geo],
            args=[*at, radius_km, GEO_COUNT,
                  self.keys.online(""), window, limit if reporter_id else ""])
        if reporter_id and int(flat[0]) > limit:
            raise RateLimited("too many help.request from this account; wait a few minutes")
        return candidates_of(flat)

    async def nearby(self, skill: str, lat: float | None, lon: float | None,
                     radius_km: float) -> list[Candidate] | None:
        """Nearby on-duty responders with the skill, from the live index; None if Redis is down."""
        if lat is None or lon is None:
            return []
        try:
            return await self.nearby_counted(skill, lat, lon, radius_km)
        except RedisError as e:
            log.warning("GEO search failed, incident stays queued for the sweeper: %s", e)
            return None

    async def place(self, responder_id: str, lat: float | None, lon: float | None, skills: list[str],
                    old_skills: Iterable[str] = ()) -> None:
        """Index the responder under each skill at this position (None: take them out); best effort."""
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for s in set(old_skills) - set(skills):
                    pipe.zrem(self.keys.geo(s), responder_id)
                if lat is not None and lon is not None:
                    for s in skills:
                        pipe.geoadd(self.keys.geo(s), (lon, lat, responder_id))
                else:
                    for s in skills:
                        pipe.zrem(self.keys.geo(s), responder_id)
                await pipe.execute()
        except RedisError as e:
            log.warning("GEO index update for %s failed (rebuilt on reconnect): %s", responder_id, e)

    async def refill(self, placed: list[tuple[str, list[str], float, float]]) -> None:
        """Put (id, skills, lat, lon) back into the index; RedisError if Redis is not taking writes yet."""
        if not placed:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for rid, skills, lat, lon in placed:
                for skill in skills:
                    pipe.geoadd(self.keys.geo(skill), (lon, lat, rid))
            await pipe.execute()
