"""SQL of Web Push: the subscriptions (one owner each) and the cluster's VAPID key."""
from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from infra.db import Conn
from push.rules import MAX_PER_ACCOUNT, Subscription

# the roles that watch the dispatch queue (the /dispatch page admits both)
DISPATCH_ROLES = ["dispatcher", "admin"]
_COLUMNS = "s.endpoint, s.p256dh, s.auth, s.lang, s.account_id::text AS account_id"


async def save(conn: Conn, account_id: str, sub: Subscription, limit: int = MAX_PER_ACCOUNT) -> list[str]:
    """Keep the subscription as this account's (taking it from another account if it was theirs: one
    owner); past `limit` the account's least recently renewed ones go. The endpoints dropped."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO push_subscriptions (endpoint, account_id, p256dh, auth, lang) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (endpoint) DO UPDATE SET account_id = EXCLUDED.account_id, p256dh = EXCLUDED.p256dh,"
            " auth = EXCLUDED.auth, lang = EXCLUDED.lang, updated_at = now()",
            sub.endpoint, account_id, sub.p256dh, sub.auth, sub.lang)
        rows = await conn.fetch(
            "DELETE FROM push_subscriptions WHERE endpoint IN (SELECT endpoint FROM push_subscriptions"
            " WHERE account_id = $1 ORDER BY updated_at DESC, created_at DESC OFFSET $2) RETURNING endpoint",
            account_id, limit)
    return [r["endpoint"] for r in rows]


async def remove(conn: Conn, account_id: str, endpoint: str) -> bool:
    """Drop one of the account's subscriptions (another account's is left alone)."""
    n = await conn.fetchval("WITH d AS (DELETE FROM push_subscriptions WHERE account_id = $1 AND endpoint = $2"
                            " RETURNING 1) SELECT count(*) FROM d", account_id, endpoint)
    return bool(n)


async def remove_account(conn: Conn, account_id: str) -> int:
    """Drop every subscription of the account (logout, suspension); how many there were."""
    n = await conn.fetchval("WITH d AS (DELETE FROM push_subscriptions WHERE account_id = $1 RETURNING 1)"
                            " SELECT count(*) FROM d", account_id)
    return int(n or 0)


async def remove_gone(conn: Conn, endpoint: str, p256dh: str) -> bool:
    """Drop a subscription its push service says is gone (404/410), unless it was renewed with new keys
    meanwhile."""
    n = await conn.fetchval("WITH d AS (DELETE FROM push_subscriptions WHERE endpoint = $1 AND p256dh = $2"
                            " RETURNING 1) SELECT count(*) FROM d", endpoint, p256dh)
    return bool(n)


async def of_account(conn: Conn, account_id: str) -> list[asyncpg.Record]:
    """The subscriptions of an account that may still be told things (not suspended)."""
    return await conn.fetch(f"SELECT {_COLUMNS} FROM push_subscriptions s JOIN accounts a ON a.id = s.account_id"
                            " WHERE s.account_id = $1 AND NOT a.disabled", account_id)


async def holders(conn: Conn) -> list[tuple[str, str]]:
    """(account id, role) of every account that holds a subscription (suspended ones too: a superset is safe)."""
    rows = await conn.fetch("SELECT DISTINCT s.account_id::text AS account_id, a.role FROM push_subscriptions s"
                            " JOIN accounts a ON a.id = s.account_id")
    return [(r["account_id"], r["role"]) for r in rows]


async def of_dispatchers(conn: Conn, grid_path: Sequence[str] = ()) -> list[asyncpg.Record]:
    """The subscriptions of every dispatcher (and admin) who is signed in somewhere and opted in: a
    subscription is dropped at logout, so holding one is what being on duty means for a dispatcher. A
    dispatcher limited to an area (issue 14, dispatch/access.py) only for an incident whose grid path
    (`grid_path`) meets their grids."""
    return await conn.fetch(f"SELECT {_COLUMNS} FROM push_subscriptions s JOIN accounts a ON a.id = s.account_id"
                            " WHERE a.role = ANY($1::text[]) AND NOT a.disabled AND (NOT a.area_limited"
                            " OR a.role <> 'dispatcher' OR EXISTS (SELECT 1 FROM account_grids g"
                            " WHERE g.account_id = a.id AND g.code = ANY($2::text[])))",
                            DISPATCH_ROLES, list(grid_path))


async def vapid_key(conn: Conn, generated: str) -> str:
    """The cluster's VAPID private key: the one stored, or `generated` if none was (the first node
    to start stores its own; every other node reads it)."""
    await conn.execute("INSERT INTO push_vapid (id, private_key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
                       generated)
    key: str = await conn.fetchval("SELECT private_key FROM push_vapid WHERE id = 1")
    return key


async def escalation_mark(conn: Conn, incident_id: str) -> int | None:
    """The id of the incident's latest `escalated` event in its log (read only: dispatch writes it), so that
    each escalation is told once, and an incident escalated again later is told again."""
    mark: int | None = await conn.fetchval("SELECT max(id) FROM incident_events WHERE incident_id = $1"
                                           " AND kind = 'escalated'", incident_id)
    return mark
