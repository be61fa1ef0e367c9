"""The admin console's SQL (issue 21): finding accounts, the last-admin lock, reset codes, revoking tokens.

The rules are infra/admin_rules.py; the edges (handlers/admin.py) call these inside their transactions.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from infra.accounts import GRIDS_COLUMN, USERNAME
from infra.db import Conn
from infra.errors import BadRequest, Conflict

# staff by default (residents are many and nameless), as `helpline user list`; `q` is a piece of the
# username, the name or the phone (digits of it)
SEARCH_SQL = f"""
SELECT a.*, {GRIDS_COLUMN}, r.skills FROM accounts a LEFT JOIN responders r ON r.account_id = a.id
WHERE ($1::text IS NULL AND a.role <> 'resident' OR a.role = $1)
  AND ($2::text IS NULL OR EXISTS (SELECT 1 FROM account_grids ag JOIN grids g ON g.code = ag.code
                                    WHERE ag.account_id = a.id AND g.path @> ARRAY[$2::text]))
  AND ($3::text IS NULL OR a.username ILIKE $3 ESCAPE '\\' OR a.name ILIKE $3 ESCAPE '\\'
       OR ($4::text <> '' AND a.phone LIKE $4))
  AND ($5::boolean IS NULL OR a.disabled = $5)
ORDER BY a.role, a.username NULLS LAST, a.created_at
LIMIT $6
"""


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def search(conn: Conn, *, role: str | None, grid: str | None, q: str | None, suspended: bool | None,
                 limit: int) -> list[asyncpg.Record]:
    digits = "".join(ch for ch in q or "" if ch.isdigit())
    return list(await conn.fetch(SEARCH_SQL, role, grid, _like(q) if q else None,
                                 f"%{digits}%" if digits else "", suspended, limit))


async def account(conn: Conn, account_id: str) -> asyncpg.Record | None:
    """One account with its grids and skills (never shown: its password hash)."""
    return await conn.fetchrow(f"SELECT a.*, {GRIDS_COLUMN}, r.skills FROM accounts a"
                               " LEFT JOIN responders r ON r.account_id = a.id WHERE a.id = $1", account_id)


async def lock_active_admins(conn: Conn) -> int:
    """How many active admins there are, their rows locked until the transaction ends: two admins suspending
    each other at once cannot both pass the last-admin rule."""
    rows = await conn.fetch("SELECT id FROM accounts WHERE role = 'admin' AND NOT disabled ORDER BY id FOR UPDATE")
    return len(rows)


async def rename(conn: Conn, account_id: str, username: str) -> None:
    if not USERNAME.match(username):
        raise BadRequest("username: 1-64 letters, digits, _ . @ - (starting with a letter or digit)")
    try:
        async with conn.transaction():
            await conn.execute("UPDATE accounts SET username = $2 WHERE id = $1", account_id, username)
    except asyncpg.UniqueViolationError:
        raise Conflict("username: an account with that username already exists") from None


async def set_skills(conn: Conn, account_id: str, skills: list[str]) -> None:
    await conn.execute("INSERT INTO responders (account_id, skills) VALUES ($1, $2)"
                       " ON CONFLICT (account_id) DO UPDATE SET skills = EXCLUDED.skills, updated_at = now()",
                       account_id, sorted(set(skills)))


# ---------------------------------------------------------------- reset codes
async def issue_reset(conn: Conn, account_id: str, code_hash: str, issued_by: str, ttl_s: int) -> datetime:
    """Store a new code's hash (the account's earlier unused codes are dropped); when it expires."""
    async with conn.transaction():
        await conn.execute("DELETE FROM password_resets WHERE account_id = $1 AND used_at IS NULL", account_id)
        expires: datetime = await conn.fetchval(
            "INSERT INTO password_resets (account_id, code_hash, issued_by, expires_at)"
            " VALUES ($1, $2, $3, now() + make_interval(secs => $4)) RETURNING expires_at",
            account_id, code_hash, issued_by, float(ttl_s))
    return expires


async def use_reset(conn: Conn, account_id: str, code_hash: str) -> bool:
    """Mark the account's unused, unexpired code with this hash used; whether there was one. Call inside the
    transaction that sets the password: a code is used once even when two requests race."""
    used = await conn.fetchval(
        "UPDATE password_resets SET used_at = now() WHERE account_id = $1 AND code_hash = $2"
        " AND used_at IS NULL AND expires_at > now() RETURNING id", account_id, code_hash)
    return used is not None


# ---------------------------------------------------------------- sessions
async def revoke_token(conn: Conn, token_id: str, expires_at: float) -> None:
    """As at logout: the token is refused from now on (until it would have expired anyway)."""
    await conn.execute("INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, to_timestamp($2))"
                       " ON CONFLICT DO NOTHING", token_id, expires_at)


async def end_all_sessions(conn: Conn, account_id: str) -> None:
    """Every token issued to the account so far stops working (its session epoch moves on)."""
    await conn.execute("UPDATE accounts SET session_epoch = session_epoch + 1 WHERE id = $1", account_id)


def view(r: Any) -> dict[str, Any]:
    """An account as the admin console shows it (never its password hash)."""
    return {"id": str(r["id"]), "username": r["username"], "role": r["role"], "name": r["name"],
            "phone": r["phone"], "skills": list(r["skills"] or []) if "skills" in r else [],
            "grids": list(r["grids"] or []), "supervisor": bool(r["supervisor"]),
            "area_limited": bool(r["area_limited"]), "suspended": bool(r["disabled"]),
            "verified": bool(r["verified"]), "created_at": r["created_at"].isoformat(),
            "agency_type": r.get("agency_type")}
