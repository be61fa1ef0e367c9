"""Answers by phone call: each CallSid is recorded once, with what it did and what we said (like
sms/inbound.py for MessageSids). `record` runs inside the transaction of the answer's effect (an accept,
a decline), so a replayed webhook finds the first answer and is never acted on twice; a concurrent replay
that loses the race raises Duplicate, rolling its effect back."""
from __future__ import annotations

from infra.db import Conn
from sms.inbound import Duplicate

__all__ = ["Duplicate", "finish", "previous_reply", "record"]


async def previous_reply(conn: Conn, sid: str) -> tuple[bool, bool, str | None]:
    """(whether this CallSid was seen, whether its handling finished, the TwiML it got)."""
    row = await conn.fetchrow("SELECT action, reply FROM voice_inbound WHERE call_sid = $1", sid)
    return (row is not None, row is not None and row["action"] != "", row["reply"] if row else None)


async def record(conn: Conn, sid: str, offer_id: str, digits: str) -> None:
    """Record the CallSid; Duplicate if it is already recorded."""
    got = await conn.fetchval("INSERT INTO voice_inbound (call_sid, offer_id, digits) VALUES ($1, $2, $3)"
                              " ON CONFLICT (call_sid) DO NOTHING RETURNING 1", sid, offer_id, digits)
    if got is None:
        raise Duplicate(sid)


async def finish(conn: Conn, sid: str, action: str, reply: str) -> None:
    await conn.execute("UPDATE voice_inbound SET action = $2, reply = $3 WHERE call_sid = $1", sid, action, reply)
