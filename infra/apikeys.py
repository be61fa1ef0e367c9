"""API keys for other departments (issue 16): `helpline apikey add NAME --scope export`.

A key is `hlk_<id>.<secret>`: the id finds its row, the secret is checked against an argon2 hash (only
the hash is stored; the key is printed once, at `add`). Every use reads the row, so a revoked key is
refused (401) from the next request on. Scopes: `export` (GET /api/export/incidents…).
"""
from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Any

import asyncpg

from infra.auth import hash_password, verify_password
from infra.db import Conn
from infra.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized

PREFIX = "hlk_"
SCOPES = frozenset({"export"})
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_KEY = re.compile(r"^hlk_([0-9a-f]{16})\.([A-Za-z0-9_-]{20,100})$")


def is_key(token: str) -> bool:
    """Whether a bearer token is an API key rather than a JWT."""
    return token.startswith(PREFIX)


async def add(conn: Conn, name: str, scope: str) -> str:
    """Create the key; returns it (the only time it is seen). Conflict if the name is taken."""
    if not NAME.match(name):
        raise BadRequest("name: letters, digits, '_', '.', '-', at most 64")
    if scope not in SCOPES:
        raise BadRequest(f"scope: {scope!r} is not one of {', '.join(sorted(SCOPES))}")
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    try:
        await conn.execute("INSERT INTO api_keys (name, key_id, secret_hash, scope) VALUES ($1, $2, $3, $4)",
                           name, key_id, hash_password(secret), scope)
    except asyncpg.UniqueViolationError:
        raise Conflict(f"name: an API key {name!r} exists (revoked keys keep their name)") from None
    return f"{PREFIX}{key_id}.{secret}"


async def listing(conn: Conn) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT name, key_id, scope, created_at, revoked_at, last_used_at FROM api_keys"
                            " ORDER BY name")
    return [dict(r) for r in rows]


async def revoke(conn: Conn, name: str) -> datetime:
    at = await conn.fetchval("UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE name = $1"
                             " RETURNING revoked_at", name)
    if at is None:
        raise NotFound(f"no API key {name!r}")
    return at   # type: ignore[no-any-return]


async def check(conn: Conn, key: str, scope: str) -> str:
    """The name of the key if it may be used for `scope`: Unauthorized when malformed, unknown, revoked or
    wrong; Forbidden when it is of another scope."""
    m = _KEY.match(key)
    row = await conn.fetchrow("SELECT name, secret_hash, scope, revoked_at FROM api_keys WHERE key_id = $1",
                              m.group(1)) if m else None
    if not verify_password(row["secret_hash"] if row else None, m.group(2) if m else key):
        raise Unauthorized("unknown or wrong API key")
    assert row is not None
    if row["revoked_at"] is not None:
        raise Unauthorized("this API key was revoked")
    if row["scope"] != scope:
        raise Forbidden(f"this API key's scope is {row['scope']}, not {scope}")
    await conn.execute("UPDATE api_keys SET last_used_at = now() WHERE name = $1", row["name"])
    return str(row["name"])
