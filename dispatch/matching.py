"""Matching: the live GEO index of responders on duty and the nearby search.

The index lives in Redis (one GEO set per skill, rebuilt from PostgreSQL after
a Redis restart); whom to offer among the nearby is decided by the pure rule
(lifecycle.rank / next_step). When Redis cannot be asked, a report is not lost:
it stays queued and the worker's orphan sweep matches it once Redis is back.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dispatch.lifecycle import Candidate
from infra import ratelimit
from infra.errors import RateLimited
from infra.keys import Keys

log = logging.getLogger(__name__)

GEO_COUNT = 25     # nearest first: more than max_offers ever needs, few enough for one round trip
NEARBY_WAIT_S = 1.0   # the report's one Redis round trip takes well under a millisecond; past this Redis hangs

# One round trip before a report. KEYS: geo set, reporter's counter, address, prefix and global flood
# counters, the live-index markers (ready, fresh). 1) Count the report against its reporter's limit
# (INCR, the window's expiry set by the first); past it, stop. 2) If gated (an unverified channel with a
# client address), count it per address and per /24 or /64; within both, count it against the cluster's
# rate of automatic dispatches; past any of the three, it is held (bit 1). 3) The live index not rebuilt
# since Redis lost it: bit 2, no search; rebuilt a moment ago (presence may still be coming back): bit 4.
# 4) The nearby responders with the skill, whether each is online, and whether each is pageable (on duty
# with a phone: reached by SMS while off line; ARGV[12] the set, '' when offers by SMS are off). The search
# grows in rings (a 16th of the radius, a quarter, the whole): GEOSEARCH costs Redis every member in the boxes
# around the circle, sorted, however few it returns (~0.4 ms with 1,600 responders within 10 km), and when the
# inner ring already holds ARGV[4] of them they are the nearest ones the whole radius would have given.
# Returns {count, state, id1, dist1, online1, pageable1, ...}. The online keys and the pageable set are named
# inside the script (not in KEYS): fine on one Redis, which is what helpline runs on.
NEARBY_LUA = """
local out = {0, 0}
if ARGV[7] ~= '' then
    local n = redis.call('INCR', KEYS[2])
    if n == 1 then redis.call('EXPIRE', KEYS[2], ARGV[6]) end
    out[1] = n
    if n > tonumber(ARGV[7]) then return out end
end
if ARGV[8] ~= '' then
    local a = redis.call('INCR', KEYS[3])
    if a == 1 then redis.call('EXPIRE', KEYS[3], ARGV[8]) end
    local p = redis.call('INCR', KEYS[4])
    if p == 1 then redis.call('EXPIRE', KEYS[4], ARGV[8]) end
    if a > tonumber(ARGV[9]) or p > tonumber(ARGV[10]) then
        out[2] = 1
    else
        local g = redis.call('INCR', KEYS[5])
        if g == 1 then redis.call('EXPIRE', KEYS[5], 60) end
        if g > tonumber(ARGV[11]) then out[2] = 1 end
    end
end
if redis.call('EXISTS', KEYS[6]) == 0 then
    out[2] = out[2] + 2
    return out
end
if redis.call('EXISTS', KEYS[7]) == 1 then out[2] = out[2] + 4 end
if ARGV[1] == '' then return out end
local radius, want = tonumber(ARGV[3]), tonumber(ARGV[4])
local r = radius / 16
local hits
while true do
    if r >= radius then r = radius end
    hits = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[1], ARGV[2], 'BYRADIUS', r, 'km',
                      'ASC', 'COUNT', want, 'WITHDIST')
    if #hits >= want or r >= radius then break end
    r = r * 4
end
for _, h in ipairs(hits) do
    out[#out + 1] = h[1]
    out[#out + 1] = h[2]
    out[#out + 1] = redis.call('EXISTS', ARGV[5] .. h[1])
    if ARGV[12] ~= '' then out[#out + 1] = redis.call('SISMEMBER', ARGV[12], h[1]) else out[#out + 1] = 0 end
end
return out
"""
HOLD, NOT_READY, FRESH = 1, 2, 4


@dataclass(frozen=True)
class Gate:
    """Who a report is counted against for floods: an unverified channel's client address."""

    address: str
    per_address: int
    per_prefix: int
    window_s: int
    per_min: int


@dataclass(frozen=True)
class Nearby:
    """What the live index says before a report: the candidates, or None if it cannot say yet (not rebuilt
    since Redis lost it); whether the report is held as a possible flood; whether presence may still be
    coming back after a rebuild (then no one online is not a reason to escalate)."""

    candidates: list[Candidate] | None
    hold: bool = False
    fresh: bool = False


def candidates_of(flat: list[bytes | str | int]) -> list[Candidate]:
    """The script's answer after its count and state, as candidates whose status the database will tell."""
    out = []
    for k in range(2, len(flat), 4):
        item = flat[k]
        rid = item.decode() if isinstance(item, bytes) else str(item)
        out.append(Candidate(rid, float(flat[k + 1]), "unknown", online=bool(flat[k + 2]),
                             pageable=bool(flat[k + 3])))
    return out


def normal_address(remote: str) -> str:
    """One spelling per address (an IPv4 client seen through an IPv6 socket counts as itself)."""
    try:
        ip = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


class Matcher:
    def __init__(self, redis: aioredis.Redis, keys: Keys, paging: bool = True) -> None:
        self.redis, self.keys = redis, keys
        self.paging = paging      # off-line responders with a phone are candidates (dispatch.offer_sms not never)
        self._nearby = redis.register_script(NEARBY_LUA)

    async def nearby_counted(self, skill: str, lat: float | None, lon: float | None, radius_km: float,
                             reporter_id: str | None = None, gate: Gate | None = None) -> Nearby:
        """Count a report against its reporter's limit (if given) and its address's flood limits (if
        gated), and search nearby, in one round trip.

        Raises RateLimited past the reporter's limit, RedisError if Redis is down."""
        limit, window = ratelimit.ACCOUNT_LIMITS["help.request"]
        geo = self.keys.geo(skill)
        at: list[float | str] = [lon, lat] if lat is not None and lon is not None else ["", ""]  # "": count only
        k = self.keys
        if gate is not None:
            addr = normal_address(gate.address)
            flood_keys = [k.rate("help-addr", addr), k.rate("help-net", ratelimit.address_prefix(addr)),
                          k.rate("help-unverified", "cluster")]
            flood_args: list[int | str] = [gate.window_s, gate.per_address, gate.per_prefix, gate.per_min]
        else:
            flood_keys, flood_args = [geo, geo, geo], ["", "", "", ""]
        try:   # a Redis that hangs must not hold a report for the socket timeout: it is queued for the sweeper
            async with asyncio.timeout(NEARBY_WAIT_S):   # (no task of its own, as wait_for would make)
                flat = await self._nearby(
                    keys=[geo, k.rate("help.request", reporter_id) if reporter_id else geo, *flood_keys,
                          k.live_ready, k.live_fresh],
                    args=[*at, radius_km, GEO_COUNT, k.online(""), window, limit if reporter_id else "",
                          *flood_args, k.pageable if self.paging else ""])
        except TimeoutError:
            raise RedisTimeoutError(f"no answer from Redis within {NEARBY_WAIT_S} s") from None
        if reporter_id and int(flat[0]) > limit:
            raise RateLimited("too many help.request from this account; wait a few minutes")
        state = int(flat[1])
        if state & NOT_READY:
            return Nearby(None, hold=bool(state & HOLD))
        return Nearby(candidates_of(flat), hold=bool(state & HOLD), fresh=bool(state & FRESH))

    async def nearby(self, skill: str, lat: float | None, lon: float | None,
                     radius_km: float) -> Nearby:
        """Nearby on-duty responders with the skill, from the live index; candidates None if Redis is down
        or the index not rebuilt yet."""
        if lat is None or lon is None:
            return Nearby([])
        try:
            return await self.nearby_counted(skill, lat, lon, radius_km)
        except RedisError as e:
            log.warning("GEO search failed, incident stays queued for the sweeper: %s", e)
            return Nearby(None)

    async def presence(self, ids: list[str]) -> dict[str, bool]:
        """Whether each of these responders has a connection open on some node (the grid members the nearby
        search did not find: dispatch/tiers.py); RedisError if Redis cannot say."""
        if not ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.exists(self.keys.online(i))
            try:
                found = await asyncio.wait_for(pipe.execute(), NEARBY_WAIT_S)
            except TimeoutError:
                raise RedisTimeoutError(f"no answer from Redis within {NEARBY_WAIT_S} s") from None
        return {i: bool(f) for i, f in zip(ids, found)}

    async def mark_ready(self, grace_s: float) -> None:
        """The live index is rebuilt: matching may trust it (presence gets `grace_s` to come back)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.keys.live_ready, "1")
            if grace_s > 0:
                pipe.set(self.keys.live_fresh, "1", px=int(grace_s * 1000))
            await pipe.execute()

    async def is_ready(self) -> bool:
        """Whether the live index has been rebuilt since Redis last lost it; RedisError if Redis is down."""
        return bool(await self.redis.exists(self.keys.live_ready))

    async def place(self, responder_id: str, lat: float | None, lon: float | None, skills: list[str],
                    old_skills: Iterable[str] = (), pageable: bool | None = None) -> None:
        """Index the responder under each skill at this position (None: take them out), and as pageable
        (on duty with a phone) or not (None: unchanged); best effort."""
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                if pageable is True:
                    pipe.sadd(self.keys.pageable, responder_id)
                elif pageable is False:
                    pipe.srem(self.keys.pageable, responder_id)
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

    async def refill(self, placed: list[tuple[str, list[str], float, float]], pageable: Iterable[str] = ()) -> None:
        """Put (id, skills, lat, lon) back into the index, and the pageable responders into their set;
        RedisError if Redis is not taking writes yet."""
        pageable = list(pageable)
        if not placed and not pageable:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for rid, skills, lat, lon in placed:
                for skill in skills:
                    pipe.geoadd(self.keys.geo(skill), (lon, lat, rid))
            if pageable:
                pipe.sadd(self.keys.pageable, *pageable)
            await pipe.execute()
