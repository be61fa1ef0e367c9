"""Inbound texts: each MessageSid is recorded once, with what it did and what we answered.

`record` is meant to run inside the transaction of the text's effect (an incident report, a
cancellation, a note, an opt-out), so a replayed webhook finds the first answer and is never
acted on twice. A concurrent replay that loses the race raises Duplicate, rolling its effect back.
"""
from __future__ import annotations

from infra.db import Conn


class Duplicate(Exception):
    """This MessageSid was already handled (by a concurrent request)."""


async def previous_reply(conn: Conn, sid: str) -> tuple[bool, bool, str | None]:
    """(whether this MessageSid was seen, whether its handling finished, the reply it got)."""
    row = await conn.fetchrow("SELECT action, reply FROM sms_inbound WHERE message_sid = $1", sid)
    return (row is not None, row is not None and row["action"] != "", row["reply"] if row else None)


async def reported_by_sms(conn: Conn, incident_id: str) -> bool:
    """Whether the incident was reported by SMS (its status texts are tracked from its report on)."""
    return await conn.fetchval("SELECT 1 FROM sms_incidents WHERE incident_id = $1", incident_id) is not None


async def record(conn: Conn, sid: str, phone: str, body: str) -> None:
    """Record the MessageSid; Duplicate if it is already recorded."""
    got = await conn.fetchval("INSERT INTO sms_inbound (message_sid, from_phone, body) VALUES ($1, $2, $3)"
                              " ON CONFLICT (message_sid) DO NOTHING RETURNING 1", sid, phone, body)
    if got is None:
        raise Duplicate(sid)


async def finish(conn: Conn, sid: str, phone: str, body: str, action: str, reply: str | None,
                 recorded: bool) -> None:
    """What the text did and the answer it got (recording the MessageSid now if its effect did not)."""
    if not recorded:
        await conn.execute("INSERT INTO sms_inbound (message_sid, from_phone, body) VALUES ($1, $2, $3)"
                           " ON CONFLICT (message_sid) DO NOTHING", sid, phone, body)
    await conn.execute("UPDATE sms_inbound SET action = $2, reply = $3 WHERE message_sid = $1", sid, action, reply)


async def account_for_phone(conn: Conn, phone: str, create: bool) -> dict[str, object] | None:
    """The account of the sender's phone; with `create`, a new resident account on first sight."""
    row = await conn.fetchrow("SELECT id, role, name, disabled FROM accounts WHERE phone = $1", phone)
    if row is None and create:
        row = await conn.fetchrow("INSERT INTO accounts (role, name, phone) VALUES ('resident', '', $1)"
                                  " ON CONFLICT (phone) DO NOTHING RETURNING id, role, name, disabled", phone)
        row = row or await conn.fetchrow("SELECT id, role, name, disabled FROM accounts WHERE phone = $1", phone)
    return dict(row) if row is not None else None
