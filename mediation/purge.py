"""`helpline purge` for mediation: blank personal data of cases closed longer than the retention period.

Blanked: the summary and outcome note, the parties' names and phone numbers, the
messages' bodies and sender names, the comments of satisfaction answers (their scores
stay), and the party names in the signed record
(agreement_signatures.party_name, the names in settlements.signatures, with
settlements.names_purged_at saying when); resident accounts whose only business was such
cases lose their name, phone and device id. Kept: category, status, timestamps, the case
log (it holds no personal text; an `extended` event's reason is the mediator's
wording) and the rest of the signed record: the agreement's text
and SHA-256, which party account signed, by which channel and when. That is what proves a
settlement (a party's copy hashes to the same SHA-256) and it names nobody; the text is the
mediator's wording of the terms, kept because a settlement may be enforced after the
retention period. The database refuses any other change to the signed record
(migration 011).
"""
from __future__ import annotations

from infra.db import Conn
from mediation.store import FINAL_SQL

# an account that is a party to a case: this purge blanks its phone when its cases go
PARTY = "EXISTS (SELECT 1 FROM case_parties cp WHERE cp.account_id = a.id)"
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
        await conn.execute("UPDATE case_feedback SET comment = NULL"      # issue 15: a party's own words
                           " WHERE case_id = ANY($1::uuid[]) AND comment IS NOT NULL", ids)
        await conn.execute("UPDATE agreement_signatures SET party_name = '' WHERE party_name <> ''"
                           " AND agreement_id IN (SELECT id FROM agreements WHERE case_id = ANY($1::uuid[]))", ids)
        await conn.execute("UPDATE settlements SET names_purged_at = now(), signatures = COALESCE((SELECT"
                           " jsonb_agg(s || '{\"name\": \"\"}'::jsonb) FROM jsonb_array_elements(signatures) s),"
                           " '[]'::jsonb) WHERE case_id = ANY($1::uuid[]) AND names_purged_at IS NULL", ids)
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
