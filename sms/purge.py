"""Retention of SMS data (a step of `helpline purge`, listed by the composition root).

Texts in and out older than the retention period go; so does every phone number they leave
behind: a contact (language, opt-in) with no text left, and the phone of a resident account that
only ever verified it (OTP) or texted, with nothing left within the period. Opt-outs stay: a
number that texted STOP must never be texted again, whenever it comes back (they hold no name).
"""
from __future__ import annotations

from collections.abc import Sequence

from infra.db import Conn


async def purge_sms(conn: Conn, retention_days: int, keep: Sequence[str] = ()) -> dict[str, int]:
    """Texts, contacts and phones past the retention period; opt-outs are kept (they must be honoured).

    `keep`: SQL conditions on account `a` under which another domain still answers for its phone
    (an incident or a case: their own purge blanks it when they go)."""
    out = await conn.execute("DELETE FROM sms_outbox WHERE created_at < now() - make_interval(days => $1)"
                             " AND status NOT IN ('pending','claimed','sending')", retention_days)
    inb = await conn.execute("DELETE FROM sms_inbound WHERE received_at < now() - make_interval(days => $1)",
                             retention_days)
    await conn.execute("DELETE FROM sms_otp WHERE (expires_at IS NULL OR expires_at < now())"
                       " AND (last_sent_at IS NULL OR last_sent_at < now() - interval '1 day')")
    contacts = await conn.execute(
        "DELETE FROM sms_contacts c WHERE NOT c.opted_out AND c.changed_at < now() - make_interval(days => $1)"
        " AND NOT EXISTS (SELECT 1 FROM sms_inbound i WHERE i.from_phone = c.phone)"
        " AND NOT EXISTS (SELECT 1 FROM sms_outbox o WHERE o.to_phone = c.phone)", retention_days)
    keep_sql = "".join(f" AND NOT ({cond})" for cond in keep)
    phones = await conn.execute(
        "UPDATE accounts a SET phone = NULL, verified = false WHERE a.role = 'resident' AND a.phone IS NOT NULL"
        " AND a.created_at < now() - make_interval(days => $1)"
        " AND NOT EXISTS (SELECT 1 FROM sms_inbound i WHERE i.from_phone = a.phone)"
        " AND NOT EXISTS (SELECT 1 FROM sms_outbox o WHERE o.to_phone = a.phone)"
        " AND NOT EXISTS (SELECT 1 FROM sms_otp t WHERE t.phone = a.phone)" + keep_sql, retention_days)
    return {"sms_outbox": int(out.split()[-1]), "sms_inbound": int(inb.split()[-1]),
            "sms_contacts": int(contacts.split()[-1]), "resident_phones": int(phones.split()[-1])}
