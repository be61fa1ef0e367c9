"""Cluster-wide rate limits: fixed-window counters in Redis, shared by every node.

Per-connection token buckets (handlers/ws.py) stop a single socket from flooding;
these stop an account or an address from spreading the same flood across
connections and nodes. If Redis is down they let requests through (and log):
an emergency service must not refuse help because its limiter is unavailable.
"""
from __future__ import annotations

import ipaddress
import logging
from typing import Any

from redis.exceptions import RedisError

from infra.redisbatch import Pipeliner

log = logging.getLogger(__name__)

# ---- the one table of limits (the per-connection token buckets of handlers/ws.py apart) ----

# (limit, window seconds) per account and command
ACCOUNT_LIMITS: dict[str, tuple[int, int]] = {
    "help.request": (10, 600),
    "chat.send": (120, 60),
    "location.update": (120, 60),
}
# counted where the command is carried out rather than at the WebSocket edge: a report is counted in
# the same Redis round trip as its nearby-responder search (dispatch/service.py), for every channel
COUNTED_BY_SERVICE = frozenset({"help.request"})
LOGIN_FAILURES_PER_ADDRESS = (50, 900)
JOIN_FAILURES_PER_ACCOUNT = (10, 600)      # wrong mediation join codes (mediation/service.py)
OTP_REQUESTS_PER_ADDRESS = (20, 3600)
OTP_REQUESTS_PER_NETWORK = (60, 3600)      # per /24 (IPv4) or /64 (IPv6): login codes are SMS the city pays for
OTP_FAILURES_PER_ADDRESS = (50, 900)
# per phone, kept in PostgreSQL beside the codes (sms/otp.py): a code must not outlive its limits
OTP_SENDS_PER_PHONE = (5, 3600)
OTP_COOLDOWN_S = 30                        # between two codes to one phone
OTP_ATTEMPTS_PER_CODE = 5                  # wrong guesses before a code is dead

# per-connection token buckets (handlers/connection.py): (burst, refill per second), so that one socket
# cannot flood its node; the cluster-wide windows above stop the same flood spread over sockets
CONNECTION_BUCKETS: dict[str, tuple[float, float]] = {
    "help.request": (5, 0.2),
    "chat.send": (20, 5.0),
    "location.update": (10, 2.0),
}
DEFAULT_BUCKET = (60.0, 30.0)

# ---- transport, sessions and staff login (issue 20; handlers/http.py, docs/security.md) ----
# wrong passwords: one account from one address locks only that pair, so an attacker cannot lock
# staff out from their own address; the account as a whole locks at a higher bar, from any address
LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS = (10, 900)
LOGIN_FAILURES_PER_ACCOUNT = (100, 900)
# new device (resident) accounts at POST /api/auth/device; a known device id asking again is not new
NEW_DEVICES_PER_ADDRESS = (30, 600)
NEW_DEVICES_PER_NETWORK = (120, 600)       # per /24 (IPv4) or /64 (IPv6)

# ---- dispatch: help floods from unverified residents (dispatch/matching.py counts them in the report's one
# Redis round trip; the numbers are dispatch.flood_* in infra/config.py, docs/security.md states them).
# A report past them is never refused: it is committed and held for a dispatcher's look; per prefix is
# address_prefix() below.


def scope_of(key: str) -> str:
    """The scope of a counter's key (`…rate:<scope>:<subject>` → scope), for logs: its subject (a phone
    number, a join code, an address) stays out of them."""
    return key.partition("rate:")[2].partition(":")[0] or "?"


async def count(redis: Any, key: str, window_s: int, add: int = 1) -> int:
    """Add to the window's counter and return it (0 if Redis is unavailable).

    `redis` is a client, or a `Pipeliner` (hot paths: the counter rides in a shared pipeline).
    """
    try:
        if isinstance(redis, Pipeliner):
            return await redis.count(key, window_s, add)
        async with redis.pipeline(transaction=True) as pipe:
            pipe.set(key, 0, ex=window_s, nx=True)
            pipe.incrby(key, add)
            _, n = await pipe.execute()
        return int(n)
    except RedisError as e:
        log.warning("rate limit counter %s unavailable: %s", scope_of(key), e)
        return 0


async def peek(redis: Any, key: str) -> int:
    try:
        v = await redis.get(key)
    except RedisError:
        return 0
    return int(v or 0)


async def allow(redis: Any, key: str, limit: int, window_s: int) -> bool:
    return await count(redis, key, window_s) <= limit


# ---- SMS and mediation (issue 20): who may make the city text whom, and how often a code may be guessed.
# Counted before the thing is done (one INCR each, so parallel sockets cannot slip past), refunded where
# the attempt turned out to be no guess (a join code that exists). See docs/security.md, "SMS and mediation".
CASES_PER_ACCOUNT = (5, 3600)              # case.open per filer
CASES_PER_ADDRESS = (20, 3600)             # case.open per client address (fresh device accounts share it)
INVITES_PER_ACCOUNT = (10, 86400)          # invitation texts one filer's cases may send
INVITES_PER_ADDRESS = (20, 86400)          # ... from one client address
INVITES_PER_PHONE = (3, 86400)             # invitation texts one destination number receives
# a mediator or clerk opening cases for visitors (issue 13): a named, audited staff account at a counter
# whose visitors share its address, so per account only (and INVITES_PER_PHONE as for everyone)
STAFF_CASES_PER_ACCOUNT = (60, 3600)       # cases opened for visitors per staff account
STAFF_INVITES_PER_ACCOUNT = (200, 86400)   # invitation texts those cases may send
JOIN_GUESSES_PER_ADDRESS = (20, 600)       # wrong join codes per client address (the account's: above)
JOIN_GUESSES_PER_PREFIX = (60, 600)        # ... per /24 (IPv4) or /64 (IPv6)
JOIN_GUESSES_PER_CODE = (10, 600)          # wrong tries of one code string, from anyone
JOIN_GUESSES_PER_PHONE = (5, 3600)         # join codes texted in by one phone that matched nothing
SIGN_GUESSES_PER_PHONE = (5, 3600)         # SIGN codes texted in by one phone that matched nothing

Limit = tuple[int, int]

# ---- Web Push (issue 12; push/service.py): subscribing is a few calls per device and login; the server
# POSTs to what is stored, so an account may not churn endpoints. Each account keeps at most
# push.rules.MAX_PER_ACCOUNT subscriptions (a new one replaces its least recently renewed).
PUSH_SUBSCRIBES_PER_ACCOUNT = (30, 3600)


def address_prefix(remote: str) -> str:
    """The /24 (IPv4) or /64 (IPv6) network of an address: what one subscriber line or host typically
    holds, so limits per network catch an attacker rotating through its neighbouring addresses."""
    try:
        ip = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ipaddress.ip_network(f"{ip}/{24 if ip.version == 4 else 64}", strict=False))


async def take(redis: Any, counters: list[tuple[str, Limit]]) -> bool:
    """Count one attempt on every counter first, then judge: False if any is past its limit.

    Counting before evaluating is what makes the limit hold under concurrency: the eleventh of
    sixteen parallel attempts sees 11, whatever order they are evaluated in. The counters of one
    attempt move together (one MULTI), so parallel attempts reach every counter in the same order:
    counted one by one, an attempt could be the 10th on one counter and the 11th on another while
    another attempt was the 11th and 10th, and two counters of a limit of ten let nine through."""
    if isinstance(redis, Pipeliner) or len(counters) == 1:
        over = False
        for key, (limit, window_s) in counters:
            if await count(redis, key, window_s) > limit:
                over = True
        return not over
    try:
        async with redis.pipeline(transaction=True) as pipe:
            for key, (_, window_s) in counters:
                pipe.set(key, 0, ex=window_s, nx=True)
                pipe.incrby(key, 1)
            got = await pipe.execute()
    except RedisError as e:
        log.warning("rate limit counters %s unavailable: %s", scope_of(counters[0][0]), e)
        return True
    return all(int(n) <= limit for n, (_, (limit, _)) in zip(got[1::2], counters))


async def refund(redis: Any, counters: list[tuple[str, Limit]]) -> None:
    """Give an attempt back (it was no guess): the counters count only what they are meant to."""
    for key, (_, window_s) in counters:
        await count(redis, key, window_s, -1)
