"""Accounts: staff with passwords, residents by device or verified phone."""
from __future__ import annotations

import re
import unicodedata
from typing import Any

import asyncpg
import phonenumbers

from infra.auth import ROLES, hash_password, verify_password
from infra.db import Conn
from infra.errors import BadRequest, Conflict, NotFound

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
SKILL = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def account_view(r: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(r["id"]), "role": r["role"], "name": r["name"], "username": r["username"],
            "verified": r["verified"], "supervisor": bool(r.get("supervisor")),
            "grids": list(r.get("grids") or []), "area_limited": bool(r.get("area_limited"))}


# the codes of the grids an account works in (`helpline user set NAME --grids`), for account_view: a column of
# `SELECT a.*, ... FROM accounts a`
GRIDS_COLUMN = "ARRAY(SELECT ag.code FROM account_grids ag WHERE ag.account_id = a.id ORDER BY ag.code) AS grids"
AREA_ROLES = frozenset({"dispatcher"})     # who may be limited to their grids (docs/protocol.md "Grids")


def check_area_limited(role: str, area_limited: bool | None) -> None:
    if area_limited and role not in AREA_ROLES:
        raise BadRequest("area_limited: only dispatchers can be limited to an area")


SUPERVISOR_ROLES = frozenset({"dispatcher", "admin"})   # who may be marked a supervisor (texted about escalations)


def check_supervisor(role: str, supervisor: bool | None) -> None:
    if supervisor and role not in SUPERVISOR_ROLES:
        raise BadRequest(f"only {' and '.join(sorted(SUPERVISOR_ROLES))} accounts can be supervisors")


# ---- names are never phone numbers (issue 20 #5): 7 or more digits, however spaced, dashed or bracketed,
# not glued to a word before them ("Bo 138 1234 5670", "+86-138...", "Tel:138..." are phones;
# "responder-20481234", a generated handle, is not)
_PHONE_IN_NAME = re.compile(r"(?<![^\W_])(?<!-)\+?\(?\d(?:[\s().\-/]{0,2}\d){6,}")
NEUTRAL_NAME = "Resident"     # what a display shows for a resident without a name


def looks_like_phone(name: str) -> bool:
    """Whether a name holds (or is) a phone number."""
    return _PHONE_IN_NAME.search(unicodedata.normalize("NFKC", name)) is not None


def check_name(name: str, field: str = "name") -> str:
    """The name, trimmed; BadRequest naming the field if it looks like a phone number."""
    if looks_like_phone(name):
        raise BadRequest(f"{field}: a name must not be a phone number")
    return name.strip()


def shown_name(name: str | None, fallback: str = NEUTRAL_NAME) -> str:
    """A name as others may see it: never a phone number (legacy rows), never empty."""
    name = (name or "").strip()
    return fallback if not name or looks_like_phone(name) else name


def normalise_phone(raw: str, region: str = "CN") -> str:
    """E.164 form of a phone number, or BadRequest."""
    try:
        num = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise BadRequest("not a phone number") from None
    if not phonenumbers.is_possible_number(num):
        raise BadRequest("not a possible phone number")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


async def create(conn: Conn, *, username: str, role: str, password: str, name: str | None = None,
                 skills: list[str] | None = None, phone: str | None = None, supervisor: bool = False,
                 area_limited: bool = False) -> str:
    if not USERNAME.match(username):
        raise BadRequest("username: 1-64 letters, digits, _ . @ - (starting with a letter or digit)")
    if role not in ROLES:
        raise BadRequest(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise BadRequest("password must be at least 8 characters")
    for s in skills or []:
        if not SKILL.match(s):
            raise BadRequest(f"skill {s!r}: lower-case letters, digits, _ or -")
    if skills and role != "responder":
        raise BadRequest("only responders have skills")
    check_supervisor(role, supervisor)
    check_area_limited(role, area_limited)
    e164 = normalise_phone(phone) if phone else None
    if name is not None:
        check_name(name)
    try:
        async with conn.transaction():
            acc_id = await conn.fetchval(
                "INSERT INTO accounts (username, role, name, password_hash, phone, verified, supervisor, area_limited)"
                " VALUES ($1, $2, $3, $4, $5, true, $6, $7) RETURNING id",
                username, role, name or username, hash_password(password), e164, supervisor, area_limited)
            if role == "responder":
                await conn.execute("INSERT INTO responders (account_id, skills) VALUES ($1, $2)",
                                   acc_id, sorted(set(skills or [])))
    except asyncpg.UniqueViolationError as e:
        what = "phone" if "phone" in str(e) else "username"
        raise Conflict(f"an account with that {what} already exists") from None
    return str(acc_id)


async def by_id(conn: Conn, account_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT a.*, {GRIDS_COLUMN} FROM accounts a WHERE a.id = $1", account_id)


LIST_SQL = f"""
SELECT a.*, {GRIDS_COLUMN}, r.skills FROM accounts a LEFT JOIN responders r ON r.account_id = a.id
WHERE ($1::text IS NULL AND a.role <> 'resident' OR a.role = $1)
  AND ($2::text IS NULL OR EXISTS (SELECT 1 FROM account_grids ag JOIN grids g ON g.code = ag.code
                                    WHERE ag.account_id = a.id AND g.path @> ARRAY[$2::text]))
ORDER BY a.role, a.username NULLS LAST, a.created_at
LIMIT $3
"""


async def listing(conn: Conn, role: str | None = None, grid: str | None = None,
                  limit: int = 10_000) -> list[asyncpg.Record]:
    """Accounts by role (staff when no role is given: residents are many and nameless) and by grid (those
    working in the grid or anywhere under it)."""
    if role is not None and role not in ROLES:
        raise BadRequest(f"role: one of {', '.join(sorted(ROLES))}, not {role!r}")
    return list(await conn.fetch(LIST_SQL, role, grid, limit))


async def by_username(conn: Conn, username: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT a.*, {GRIDS_COLUMN} FROM accounts a WHERE a.username = $1", username)


async def check_login(conn: Conn, username: str, password: str) -> asyncpg.Record | None:
    row = await by_username(conn, username) if USERNAME.match(username) else None
    ok = verify_password(row["password_hash"] if row else None, password)
    if row is None or not ok or row["disabled"]:
        return None
    return row


async def device_is_known(conn: Conn, device_id: str) -> bool:
    """Whether this device id already has its own (unverified) account: asking again mints nothing."""
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM accounts WHERE device_id = $1 AND NOT verified)", device_id))


async def for_device(conn: Conn, device_id: str) -> asyncpg.Record:
    """The unverified resident account of this device, created on first sight.

    A device id is a random string the page keeps, not a credential: it never reaches a verified
    (phone) account, even one that took this device id over at OTP verification. Such an account
    lets go of the id and the device gets a fresh unverified account; the verified one is reached
    again by phone code (POST /api/auth/otp/verify), as after a logout.
    """
    async with conn.transaction():
        await conn.execute("UPDATE accounts SET device_id = NULL WHERE device_id = $1 AND verified", device_id)
        row = await conn.fetchrow(
            "INSERT INTO accounts (role, name, device_id) VALUES ('resident', '', $1)"
            " ON CONFLICT (device_id) DO UPDATE SET device_id = EXCLUDED.device_id RETURNING *", device_id)
    assert row is not None
    return row


async def update(conn: Conn, username: str, *, role: str | None = None, name: str | None = None,
                 password: str | None = None, disabled: bool | None = None,
                 supervisor: bool | None = None, phone: str | None = None,
                 area_limited: bool | None = None) -> tuple[str, bool]:
    """(account id, whether its sessions were ended). Role, password and suspension changes end sessions.
    A role change away from dispatch staff also ends being a supervisor, one away from dispatcher being
    limited to an area. `phone`: staff only (a resident's phone is proven by a code), "" removes it."""
    row = await by_username(conn, username)
    if row is None:
        raise NotFound(f"no account {username!r}")
    if role is not None and role not in ROLES:
        raise BadRequest(f"role must be one of {', '.join(ROLES)}")
    check_supervisor(role or row["role"], supervisor)
    check_area_limited(role or row["role"], area_limited)
    e164 = None
    if phone is not None:
        if (role or row["role"]) == "resident":
            raise BadRequest("a resident's phone is set by the resident, with a code sent to it")
        e164 = normalise_phone(phone) if phone else ""
    if supervisor is None and role is not None and role not in SUPERVISOR_ROLES and row["supervisor"]:
        supervisor = False
    if area_limited is None and role is not None and role not in AREA_ROLES and row["area_limited"]:
        area_limited = False
    if password is not None and len(password) < 8:
        raise BadRequest("password must be at least 8 characters")
    if name is not None:
        check_name(name)
    ends = ((role is not None and role != row["role"]) or password is not None
            or (disabled is not None and disabled != row["disabled"]))
    async with conn.transaction():
        try:
            await conn.execute(
                "UPDATE accounts SET role = coalesce($2, role), name = coalesce($3, name),"
                " password_hash = coalesce($4, password_hash), disabled = coalesce($5, disabled),"
                " session_epoch = session_epoch + $6, supervisor = coalesce($7, supervisor),"
                " phone = CASE WHEN $8::text IS NULL THEN phone ELSE nullif($8, '') END,"
                " area_limited = coalesce($9, area_limited) WHERE id = $1",
                row["id"], role, name, hash_password(password) if password else None, disabled, 1 if ends else 0,
                supervisor, e164, area_limited)
        except asyncpg.UniqueViolationError:
            raise Conflict("an account with that phone already exists") from None
        if ends:   # as at logout: no more push alerts to the devices of the sessions that just ended
            await conn.execute("DELETE FROM push_subscriptions WHERE account_id = $1", row["id"])
        if role == "responder":
            await conn.execute("INSERT INTO responders (account_id) VALUES ($1) ON CONFLICT DO NOTHING", row["id"])
        if (role not in (None, "responder") or disabled) and row["role"] == "responder":
            # no more offers; an incident in hand stays theirs until a dispatcher reassigns it
            await conn.execute("UPDATE responders SET status = 'off_duty', updated_at = now()"
                               " WHERE account_id = $1 AND status IN ('available')", row["id"])
    return str(row["id"]), ends
