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
LOGIN_FAILURES_PER_ACCOUNT = (10, 900)
LOGIN_FAILURES_PER_ADDRESS = (50, 900)
JOIN_FAILURES_PER_ACCOUNT = (10, 600)      # wrong mediation join codes (mediation/service.py)
OTP_REQUESTS_PER_ADDRESS = (20, 3600)
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

# ---- dispatch: help floods from unverified residents (dispatch/matching.py counts them in the report's one
# Redis round trip; the numbers are dispatch.flood_* in infra/config.py, docs/security.md states them).
# A report past them is never refused: it is committed and held for a dispatcher's look.
FLOOD_PREFIX_V4 = 24
FLOOD_PREFIX_V6 = 64


def address_prefix(remote: str) -> str:
    """The network a client address belongs to for limits per prefix: its /24 (IPv4) or /64 (IPv6)."""
    try:
        ip = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    bits = FLOOD_PREFIX_V4 if ip.version == 4 else FLOOD_PREFIX_V6
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


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
        log.warning("rate limit counter %s unavailable: %s", key, e)
        return 0


async def peek(redis: Any, key: str) -> int:
    try:
        v = await redis.get(key)
    except RedisError:
        return 0
    return int(v or 0)


async def allow(redis: Any, key: str, limit: int, window_s: int) -> bool:
    return await count(redis, key, window_s) <= limit
