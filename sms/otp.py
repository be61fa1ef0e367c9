"""Phone login by one-time code: the codes, their per-phone limits, and the account they verify.

A code is stored only as an HMAC keyed by the server's secret and bound to the phone. Per phone:
one code every OTP_COOLDOWN_S, OTP_SENDS_PER_PHONE codes per window, OTP_ATTEMPTS_PER_CODE wrong
guesses per code (all in infra/ratelimit.py); per address limits are the caller's (the route).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from infra import ratelimit
from infra.db import Conn
from infra.errors import Conflict, Forbidden, RateLimited
from infra.texts import TextQueue
from sms.contacts import contact
from sms.texts import render

OTP_TTL_S = 300


def code_hash(secret: str, phone: str, code: str) -> str:
    return hmac.new(secret.encode(), f"otp:{phone}:{code}".encode(), hashlib.sha256).hexdigest()


def new_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


async def send_code(conn: Conn, texts: TextQueue, secret: str, phone: str) -> None:
    """Issue a new code for the phone and queue its text, inside the caller's transaction.

    Raises RateLimited within the cooldown or past the phone's codes per window."""
    cooldown = ratelimit.OTP_COOLDOWN_S
    per_window, window_s = ratelimit.OTP_SENDS_PER_PHONE
    code = new_code()
    await conn.execute("INSERT INTO sms_otp (phone) VALUES ($1) ON CONFLICT DO NOTHING", phone)
    row = await conn.fetchrow(
        "SELECT sends, EXTRACT(EPOCH FROM now() - window_start)::float8 AS window_age,"
        " EXTRACT(EPOCH FROM now() - last_sent_at)::float8 AS since_last FROM sms_otp WHERE phone = $1"
        " FOR UPDATE", phone)
    assert row is not None
    if row["since_last"] is not None and row["since_last"] < cooldown:
        raise RateLimited(f"wait {cooldown} s before asking for another code")
    new_window = row["window_age"] >= window_s
    if not new_window and row["sends"] >= per_window:
        raise RateLimited("too many codes for this phone; try again later")
    await conn.execute(
        "UPDATE sms_otp SET code_hash = $2, expires_at = now() + make_interval(secs => $3), attempts = 0,"
        " last_sent_at = now(), sends = CASE WHEN $4 THEN 1 ELSE sends + 1 END,"
        " window_start = CASE WHEN $4 THEN now() ELSE window_start END WHERE phone = $1",
        phone, code_hash(secret, phone, code), float(OTP_TTL_S), new_window)
    lang, _ = await contact(conn, phone)
    await texts.enqueue(conn, phone, render(lang, "otp", code=code), kind="otp", ttl_s=float(OTP_TTL_S))


async def check_code(conn: Conn, secret: str, phone: str, code: str, caller: dict[str, Any] | None,
                     keep: bool = False) -> Any:
    """The verified account row if the code is right (the code is used up), else None (a wrong guess counted)."""
    otp = await conn.fetchrow("SELECT code_hash, expires_at > now() AS live, attempts FROM sms_otp"
                              " WHERE phone = $1 FOR UPDATE", phone)
    if otp is None or not otp["code_hash"] or not otp["live"] or otp["attempts"] >= ratelimit.OTP_ATTEMPTS_PER_CODE:
        return None
    if not hmac.compare_digest(otp["code_hash"], code_hash(secret, phone, code)):
        await conn.execute("UPDATE sms_otp SET attempts = attempts + 1 WHERE phone = $1", phone)
        return None
    await conn.execute("UPDATE sms_otp SET code_hash = NULL, expires_at = NULL WHERE phone = $1", phone)
    return await link_account(conn, phone, caller, keep)


async def link_account(conn: Conn, phone: str, caller: dict[str, Any] | None, keep: bool = False) -> Any:
    """The verified resident account of this phone: the SMS sender's account if there is one.

    A device account (the app) calling with its token takes the phone if no account has it;
    if one has, that account wins and takes over the device id (when it has none).
    With `keep` the answer must be the caller's own account (a resident linking a phone to the
    account their cases live in): Conflict, and nothing changes, if the phone is another account's
    or the caller already has another phone."""
    row = await conn.fetchrow("SELECT * FROM accounts WHERE phone = $1 FOR UPDATE", phone)
    if keep:
        if caller is None or caller["role"] != "resident":
            raise Forbidden("keep: only a resident's own account can be linked to a phone")
        if (row is not None and str(row["id"]) != caller["id"]) or (row is None and caller["verified"]):
            raise Conflict("this number is linked to another account; your cases stay where they are")
    device = caller if caller and caller["role"] == "resident" and not caller["verified"] else None
    if row is not None:
        if row["role"] != "resident":
            raise Forbidden("this phone belongs to a staff account: log in with your password")
        if row["disabled"]:
            raise Forbidden("this account is blocked")
        if device is not None and device["id"] != str(row["id"]) and row["device_id"] is None:
            dev = await conn.fetchval("SELECT device_id FROM accounts WHERE id = $1 AND phone IS NULL FOR UPDATE",
                                      device["id"])
            if dev is not None:
                await conn.execute("UPDATE accounts SET device_id = NULL WHERE id = $1", device["id"])
                await conn.execute("UPDATE accounts SET device_id = $2 WHERE id = $1", row["id"], dev)
        return await conn.fetchrow("UPDATE accounts SET verified = true WHERE id = $1 RETURNING *", row["id"])
    if device is not None:
        got = await conn.fetchrow("UPDATE accounts SET phone = $2, verified = true"
                                  " WHERE id = $1 AND phone IS NULL RETURNING *", device["id"], phone)
        if got is not None:
            return got
    # the name stays empty: a phone number is never a name others could see (issue 20 #5)
    return await conn.fetchrow("INSERT INTO accounts (role, name, phone, verified) VALUES ('resident', '', $1, true)"
                               " RETURNING *", phone)
