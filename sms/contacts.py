"""Per-phone state: the language a phone last texted in, and whether it opted out (STOP/START)."""
from __future__ import annotations

from infra.db import Conn
from sms.texts import default_lang


async def contact(conn: Conn, phone: str) -> tuple[str, bool]:
    """(language, opted_out) of a phone."""
    row = await conn.fetchrow("SELECT lang, opted_out FROM sms_contacts WHERE phone = $1", phone)
    return (row["lang"], row["opted_out"]) if row else (default_lang(phone), False)


async def remember_lang(conn: Conn, phone: str, lang: str) -> None:
    await conn.execute("INSERT INTO sms_contacts (phone, lang) VALUES ($1, $2) ON CONFLICT (phone)"
                       " DO UPDATE SET lang = EXCLUDED.lang WHERE sms_contacts.lang <> EXCLUDED.lang", phone, lang)


async def set_opted_out(conn: Conn, phone: str, opted_out: bool, lang: str | None = None) -> None:
    """STOP (True) or START (False); START with a language also remembers it."""
    await conn.execute("INSERT INTO sms_contacts (phone, lang, opted_out) VALUES ($1, $2, $3) ON CONFLICT (phone)"
                       " DO UPDATE SET opted_out = EXCLUDED.opted_out, changed_at = now(),"
                       " lang = CASE WHEN $4 THEN EXCLUDED.lang ELSE sms_contacts.lang END",
                       phone, lang or default_lang(phone), opted_out, lang is not None and not opted_out)
