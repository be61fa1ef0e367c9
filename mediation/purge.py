"""`helpline purge` for mediation: blank personal data of cases closed longer than the retention period.

Blanked: the summary and outcome note, the parties' names and phone numbers, the
messages' bodies and sender names; resident accounts whose only business was such
cases lose their name, phone and device id. Kept: category, status, timestamps,
the case log (it holds no personal text) and the signed record (agreements,
signatures, settlements), which nothing may rewrite.
"""
from __future__ import annotations

from infra.db import Conn
from mediation.store import FINAL_SQL

# a resident who is a party to a case not yet purged keeps their name and phone (the SMS bridge needs it)
KEEP_RESIDENT = ("EXISTS (SELECT 1 FROM case_parties cp JOIN cases c ON c.id = cp.case_id"
                 " WHERE cp.account_id = a.id AND c.purged_at IS NULL)")


async def purge_cases(conn: Conn, retention_days: int) -> dict[str, int]:
    ids = [r["id"] for r in await conn.fetch(
        f"SELECT id FROM cases WHERE status IN ({FINAL_SQL}) AND purged_at IS NULL"
        " AND closed_at < now() - make_interval(days => $1)", retention_days)]
    if ids:
        await conn.execute("SET LOCAL helpline.purge = 'on'")
        await conn.execute("UPDATE cases SET summary = '', outcome_note = NULL, purged_at = now()"
                           " WHERE id = ANY($1::uuid[])", ids)
        await conn.execute("UPDATE case_parties SET name = '', phone = NULL"
                           " WHERE case_id = ANY($1::uuid[])", ids)
        await conn.execute("UPDATE case_messages SET body = '', sender_name = ''"
                           " WHERE case_id = ANY($1::uuid[])", ids)
    residents = await conn.execute(
        f"""UPDATE accounts a SET name = '', phone = NULL, device_id = NULL
            WHERE a.role = 'resident' AND (a.name <> '' OR a.phone IS NOT NULL OR a.device_id IS NOT NULL)
              AND a.created_at < now() - make_interval(days => $1)
              AND EXISTS (SELECT 1 FROM case_parties cp WHERE cp.account_id = a.id)
              AND NOT EXISTS (SELECT 1 FROM case_parties cp JOIN cases c ON c.id = cp.case_id
                              WHERE cp.account_id = a.id
                                AND (c.purged_at IS NULL OR c.status NOT IN ({FINAL_SQL})))
              AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.reporter_id = a.id
                              AND (i.purged_at IS NULL
                                   OR i.updated_at >= now() - make_interval(days => $1)))""",
        retention_days)
    return {"cases": len(ids), "case_residents": int(residents.split()[-1])}
