"""Retention of SMS data (a step of `helpline purge`, listed by the composition root)."""
from __future__ import annotations

from infra.db import Conn


async def purge_sms(conn: Conn, retention_days: int) -> dict[str, int]:
    """Texts (in and out) older than the retention period; opt-outs are kept (they must be honoured)."""
    out = await conn.execute("DELETE FROM sms_outbox WHERE created_at < now() - make_interval(days => $1)"
                             " AND status NOT IN ('pending','claimed','sending')", retention_days)
    inb = await conn.execute("DELETE FROM sms_inbound WHERE received_at < now() - make_interval(days => $1)",
                             retention_days)
    await conn.execute("DELETE FROM sms_otp WHERE (expires_at IS NULL OR expires_at < now())"
                       " AND (last_sent_at IS NULL OR last_sent_at < now() - interval '1 day')")
    return {"sms_outbox": int(out.split()[-1]), "sms_inbound": int(inb.split()[-1])}
