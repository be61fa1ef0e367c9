"""SQL for cases, parties, agencies, rooms, messages and agreements.

Functions take an open connection (inside the caller's transaction). Cases come
back as `rules.Case`; messages as dicts in the wire shape of contract §3.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from infra import eventlog
from infra.accounts import shown_name
from infra.db import Conn, sql_list
from infra.formats import iso
from mediation.rules import FINAL, Agreement, Case, Feedback, Opener, Party, Person, Signature, Status

FINAL_SQL = sql_list(Status, FINAL)

CASE_SELECT = """
SELECT c.*, m.name AS mediator_name, s.sha256 AS settled_sha256, o.name AS opener_name
FROM cases c
LEFT JOIN accounts m ON m.id = c.mediator_id
LEFT JOIN accounts o ON o.id = c.filer_id AND c.opened_by_role IS NOT NULL
LEFT JOIN settlements s ON s.case_id = c.id
"""


async def _assemble(conn: Conn, rows: list[asyncpg.Record]) -> list[Case]:
    """Cases with their parties, agencies and current agreement, in a fixed number of queries."""
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    parties: dict[Any, list[Party]] = {i: [] for i in ids}
    for p in await conn.fetch(
            "SELECT cp.*, COALESCE(a.phone, cp.phone) AS shown_phone FROM case_parties cp"
            " LEFT JOIN accounts a ON a.id = cp.account_id WHERE cp.case_id = ANY($1::uuid[])"
            " ORDER BY cp.case_id, cp.slot", ids):
        parties[p["case_id"]].append(Party(
            slot=p["slot"], name=p["name"], account_id=str(p["account_id"]) if p["account_id"] else None,
            phone=p["shown_phone"], join_code=p["join_code"], via=p["via"], joined_at=p["joined_at"]))
    agencies: dict[Any, list[Person]] = {i: [] for i in ids}
    for a in await conn.fetch(
            "SELECT ca.case_id, a.id, a.name FROM case_agencies ca JOIN accounts a ON a.id = ca.account_id"
            " WHERE ca.case_id = ANY($1::uuid[]) ORDER BY ca.invited_at, a.name", ids):
        agencies[a["case_id"]].append(Person(str(a["id"]), a["name"]))
    ag_ids = [r["agreement_id"] for r in rows if r["agreement_id"]]
    sigs: dict[Any, list[Signature]] = {i: [] for i in ag_ids}
    agreements: dict[Any, asyncpg.Record] = {}
    if ag_ids:
        for s in await conn.fetch("SELECT * FROM agreement_signatures WHERE agreement_id = ANY($1::uuid[])"
                                  " ORDER BY signed_at, party_id", ag_ids):
            sigs[s["agreement_id"]].append(
                Signature(str(s["party_id"]), s["party_name"], s["via"], s["signed_at"]))
        agreements = {a["id"]: a for a in await conn.fetch(
            "SELECT * FROM agreements WHERE id = ANY($1::uuid[])", ag_ids)}
    feedback: dict[Any, list[Feedback]] = {i: [] for i in ids}
    for f in await conn.fetch("SELECT * FROM case_feedback WHERE case_id = ANY($1::uuid[])"
                              " ORDER BY case_id, asked_at, party_id", ids):
        feedback[f["case_id"]].append(feedback_from_row(f))
    out = []
    for r in rows:
        ag = agreements.get(r["agreement_id"])
        out.append(Case(
            id=str(r["id"]), ref_no=r["ref_no"], status=Status(r["status"]), category=r["category"],
            summary=r["summary"], filer_id=str(r["filer_id"]), created_at=r["created_at"],
            updated_at=r["updated_at"], closed_at=r["closed_at"], version=r["version"],
            outcome_note=r["outcome_note"], settled_sha256=r["settled_sha256"],
            mediator=Person(str(r["mediator_id"]), r["mediator_name"]) if r["mediator_id"] else None,
            parties=tuple(parties[r["id"]]), agencies=tuple(agencies[r["id"]]),
            opened_by=Opener(str(r["filer_id"]), r["opener_name"] or "", r["opened_by_role"])
            if r["opened_by_role"] else None,
            due_at=r["due_at"], take_by=r["take_by"], overdue_since=r["overdue_since"],
            extended_at=r["extended_at"], feedback=tuple(feedback[r["id"]]),
            agreement=None if ag is None else Agreement(
                id=str(ag["id"]), text=ag["text"], sha256=ag["sha256"], proposed_at=ag["proposed_at"],
                sign_code=ag["sign_code"], signatures=tuple(sigs[ag["id"]]))))
    return out


def feedback_from_row(f: asyncpg.Record) -> Feedback:
    return Feedback(str(f["party_id"]), f["asked_via"], f["asked_at"], f["score"], f["comment"], f["answered_at"])


async def get_case(conn: Conn, case_id: str) -> Case | None:
    cases = await _assemble(conn, await conn.fetch(CASE_SELECT + " WHERE c.id = $1", case_id))
    return cases[0] if cases else None


async def lock_case(conn: Conn, case_id: str, share: bool = False) -> Case | None:
    """Lock the case row (FOR UPDATE: every change to the case; FOR SHARE: a message) and load it."""
    mode = "FOR SHARE" if share else "FOR UPDATE"
    if await conn.fetchval(f"SELECT 1 FROM cases WHERE id = $1 {mode}", case_id) is None:
        return None
    return await get_case(conn, case_id)


async def open_cases(conn: Conn) -> list[Case]:
    return await _assemble(conn, await conn.fetch(
        CASE_SELECT + f" WHERE c.status NOT IN ({FINAL_SQL}) ORDER BY c.created_at"))


async def cases_of(conn: Conn, account_id: str, limit: int = 100) -> list[Case]:
    """The cases an account takes part in (as party, mediator or agency), newest first."""
    return await _assemble(conn, await conn.fetch(
        CASE_SELECT + """ WHERE c.mediator_id = $1
            OR c.id IN (SELECT case_id FROM case_parties WHERE account_id = $1)
            OR c.id IN (SELECT case_id FROM case_agencies WHERE account_id = $1)
           ORDER BY c.created_at DESC LIMIT $2""", account_id, limit))


async def insert_case(conn: Conn, filer_id: str, category: str, summary: str,
                      request_id: str | None = None, opened_by_role: str | None = None,
                      deadlines: tuple[datetime, datetime] | None = None) -> str | None:
    """The new case's id; None if this filer already opened a case with this request_id.
    `opened_by_role`: a staff member (the filer_id) opened it for visitors. `deadlines`: (due_at, take_by)
    (mediation/followup.py; without them, the shipped defaults from now)."""
    due_at, take_by = deadlines if deadlines is not None else (None, None)
    v = await conn.fetchval(
        "INSERT INTO cases (ref_no, filer_id, category, summary, request_id, opened_by_role, due_at, take_by)"
        " VALUES ('M-' || nextval('case_ref_seq'), $1, $2, $3, $4, $5,"
        " COALESCE($6, now() + interval '30 days'), COALESCE($7, now() + interval '24 hours'))"
        " ON CONFLICT (filer_id, request_id) WHERE request_id IS NOT NULL DO NOTHING RETURNING id",
        filer_id, category, summary, request_id, opened_by_role, due_at, take_by)
    return None if v is None else str(v)


async def opened_cases(conn: Conn, account_id: str, limit: int = 100) -> list[Case]:
    """The cases a staff member opened for visitors that no mediator has taken yet, newest first."""
    return await _assemble(conn, await conn.fetch(
        CASE_SELECT + """ WHERE c.filer_id = $1 AND c.opened_by_role IS NOT NULL AND c.mediator_id IS NULL
           ORDER BY c.created_at DESC LIMIT $2""", account_id, limit))


async def opened_event(conn: Conn, case_id: str) -> dict[str, Any]:
    """The data of a case's `opened` event."""
    v = await conn.fetchval("SELECT data FROM case_events WHERE case_id = $1 AND kind = 'opened'"
                            " ORDER BY id LIMIT 1", case_id)
    return dict(v) if v else {}


async def case_by_request(conn: Conn, filer_id: str, request_id: str) -> str | None:
    v = await conn.fetchval("SELECT id FROM cases WHERE filer_id = $1 AND request_id = $2", filer_id, request_id)
    return None if v is None else str(v)


async def insert_party(conn: Conn, case_id: str, slot: int, name: str, phone: str | None,
                       join_code: str | None, account_id: str | None = None) -> None:
    await conn.execute(
        "INSERT INTO case_parties (case_id, slot, name, phone, join_code, account_id, joined_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $6::uuid IS NULL THEN NULL ELSE now() END)",
        case_id, slot, name, phone, join_code, account_id)


async def next_slot(conn: Conn, case_id: str) -> int:
    """The slot number for one more named party (the caller holds the case row FOR UPDATE)."""
    return int(await conn.fetchval("SELECT COALESCE(max(slot), 0) + 1 FROM case_parties WHERE case_id = $1",
                                   case_id))


async def open_slots_of_phone(conn: Conn, phone: str) -> list[tuple[str, int, str | None]]:
    """(case id, slot, holder account id or None) of the named parties given this phone, in open cases."""
    rows = await conn.fetch(
        f"SELECT cp.case_id, cp.slot, cp.account_id FROM case_parties cp JOIN cases c ON c.id = cp.case_id"
        f" WHERE cp.phone = $1 AND cp.slot > 0 AND c.status NOT IN ({FINAL_SQL}) ORDER BY c.created_at", phone)
    return [(str(r["case_id"]), r["slot"], str(r["account_id"]) if r["account_id"] else None) for r in rows]


async def code_exists(conn: Conn, code: str) -> bool:
    return await conn.fetchval("SELECT 1 FROM case_parties WHERE join_code = $1", code) is not None


async def case_of_code(conn: Conn, code: str) -> tuple[str, int] | None:
    r = await conn.fetchrow("SELECT case_id, slot FROM case_parties WHERE join_code = $1", code)
    return (str(r["case_id"]), r["slot"]) if r else None


async def join_party(conn: Conn, case_id: str, slot: int, account_id: str, via: str) -> None:
    await conn.execute("UPDATE case_parties SET account_id = $3, via = $4, joined_at = now()"
                       " WHERE case_id = $1 AND slot = $2", case_id, slot, account_id, via)


async def update_case(conn: Conn, case_id: str, **fields: Any) -> None:
    sets = "".join(f", {c} = ${i + 2}" for i, c in enumerate(fields))
    await conn.execute(f"UPDATE cases SET version = version + 1, updated_at = now(){sets} WHERE id = $1",
                       case_id, *fields.values())


async def add_agency(conn: Conn, case_id: str, account_id: str, by: str) -> None:
    await conn.execute("INSERT INTO case_agencies (case_id, account_id, invited_by) VALUES ($1, $2, $3)"
                       " ON CONFLICT DO NOTHING", case_id, account_id, by)


async def insert_agreement(conn: Conn, case_id: str, text: str, sha256: str, sign_code: str, by: str) -> str:
    return str(await conn.fetchval(
        "INSERT INTO agreements (case_id, text, sha256, sign_code, proposed_by) VALUES ($1, $2, $3, $4, $5)"
        " RETURNING id", case_id, text, sha256, sign_code, by))


async def insert_signature(conn: Conn, agreement_id: str, party_id: str, name: str, via: str) -> None:
    await conn.execute("INSERT INTO agreement_signatures (agreement_id, party_id, party_name, via)"
                       " VALUES ($1, $2, $3, $4)", agreement_id, party_id, name, via)


async def insert_settlement(conn: Conn, case: Case) -> None:
    ag = case.agreement
    assert ag is not None
    await conn.execute(
        "INSERT INTO settlements (case_id, agreement_id, text, sha256, signatures)"
        " VALUES ($1, $2, $3, $4, $5)",
        case.id, ag.id, ag.text, ag.sha256,
        [{"party_id": s.party_id, "name": s.name, "via": s.via, "signed_at": iso(s.signed_at)}
         for s in ag.signatures])


async def settlement(conn: Conn, case_id: str) -> asyncpg.Record | None:
    """The settlement record of a case (text, sha256, signatures as signed, settled_at), or None."""
    return await conn.fetchrow("SELECT text, sha256, signatures, settled_at FROM settlements WHERE case_id = $1",
                               case_id)


async def log_event(conn: Conn, case_id: str, actor_id: str | None, kind: str, **data: Any) -> None:
    await conn.execute("INSERT INTO case_events (case_id, actor_id, kind, data) VALUES ($1, $2, $3, $4)",
                       case_id, actor_id, kind, data)


async def events(conn: Conn, case_id: str) -> list[dict[str, Any]]:
    """The case's event log, oldest first, in the shape of an incident's events."""
    return await eventlog.read(conn, "case_events", case_id)


# ------------------------------------------------------------------ deadlines and satisfaction

OPEN_SQL = f"status NOT IN ({FINAL_SQL})"


async def lock_due(conn: Conn, now: datetime, limit: int) -> list[str]:
    """Open cases past a deadline that applies and not yet marked overdue, locked (SKIP LOCKED: a case in a
    change of its own, or being marked by another node, is left for the next sweep)."""
    rows = await conn.fetch(
        f"""SELECT id FROM cases WHERE {OPEN_SQL} AND overdue_since IS NULL
              AND (due_at <= $1 OR (mediator_id IS NULL AND take_by <= $1))
            ORDER BY LEAST(due_at, take_by) LIMIT $2 FOR UPDATE SKIP LOCKED""", now, limit)
    return [str(r["id"]) for r in rows]


async def count_overdue(conn: Conn) -> int:
    return int(await conn.fetchval(f"SELECT count(*) FROM cases WHERE {OPEN_SQL} AND overdue_since IS NOT NULL"))


async def ask_feedback(conn: Conn, case_id: str, party_id: str, via: str) -> None:
    await conn.execute("INSERT INTO case_feedback (case_id, party_id, asked_via) VALUES ($1, $2, $3)"
                       " ON CONFLICT DO NOTHING", case_id, party_id, via)


async def answer_feedback(conn: Conn, case_id: str, party_id: str, score: int, comment: str | None,
                          via: str) -> bool:
    """Fill the party's unanswered question; False if it was answered meanwhile (the first answer stands)."""
    done = await conn.fetchval(
        "UPDATE case_feedback SET score = $3, comment = $4, answered_via = $5, answered_at = clock_timestamp()"
        " WHERE case_id = $1 AND party_id = $2 AND score IS NULL RETURNING true",
        case_id, party_id, score, comment, via)
    return bool(done)


async def feedback_of_phone(conn: Conn, phone: str, answered: bool) -> asyncpg.Record | None:
    """The latest question asked by SMS of the account with this phone (unanswered, or answered)."""
    return await conn.fetchrow(
        f"""SELECT f.*, c.ref_no, a.role, a.name FROM case_feedback f JOIN accounts a ON a.id = f.party_id
            JOIN cases c ON c.id = f.case_id
            WHERE a.phone = $1 AND f.asked_via = 'sms' AND (f.score IS {'NOT ' if answered else ''}NULL)
            ORDER BY f.asked_at DESC LIMIT 1""", phone)


async def account(conn: Conn, account_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT id, role, name, phone, disabled, verified FROM accounts WHERE id = $1",
                               account_id)


async def resident_for_phone(conn: Conn, phone: str, name: str) -> asyncpg.Record:
    """The account of this phone number, created (as a verified resident) on first sight."""
    row = await conn.fetchrow(
        "INSERT INTO accounts (role, name, phone, verified) VALUES ('resident', $2, $1, true)"
        " ON CONFLICT (phone) DO UPDATE SET phone = EXCLUDED.phone RETURNING id, role, name, disabled",
        phone, name)
    assert row is not None
    return row


async def sms_cases_of_phone(conn: Conn, phone: str) -> list[asyncpg.Record]:
    """Open cases where this phone's account is a party who joined by SMS, most recently active first."""
    return await conn.fetch(
        f"""SELECT c.id, cp.account_id, a.role, a.name FROM case_parties cp JOIN cases c ON c.id = cp.case_id
            JOIN accounts a ON a.id = cp.account_id
            WHERE a.phone = $1 AND cp.via = 'sms' AND c.status NOT IN ({FINAL_SQL})
            ORDER BY c.updated_at DESC""", phone)


async def sms_phones(conn: Conn, case_id: str) -> list[tuple[str, str]]:
    """(account id, phone) of the case's parties who joined by SMS."""
    rows = await conn.fetch("SELECT a.id, a.phone FROM case_parties cp"
                            " JOIN accounts a ON a.id = cp.account_id"
                            " WHERE cp.case_id = $1 AND cp.via = 'sms' AND a.phone IS NOT NULL", case_id)
    return [(str(r["id"]), r["phone"]) for r in rows]


# ------------------------------------------------------------------ messages

def message_view(r: asyncpg.Record) -> dict[str, Any]:
    return {"case_id": str(r["case_id"]), "room": r["room"], "seq": r["seq"],
            "sender": {"id": str(r["sender_id"]), "name": shown_name(r["sender_name"]) if r["sender_name"] else "",
                       "role": r["sender_role"]},
            "body": r["body"], "via": r["via"], "sent_at": iso(r["sent_at"]),
            "client_msg_id": r["client_msg_id"]}


async def message_by_client_id(conn: Conn, case_id: str, room: str, sender_id: str,
                               client_msg_id: str) -> dict[str, Any] | None:
    r = await conn.fetchrow("SELECT * FROM case_messages WHERE case_id = $1 AND room = $2 AND sender_id = $3"
                            " AND client_msg_id = $4", case_id, room, sender_id, client_msg_id)
    return message_view(r) if r else None


# One statement, one round trip: a chat message from a node that has the case in memory at `version`.
# The case row is held FOR SHARE (a change to the case waits for the message, or the message sees the
# new version and writes nothing); a re-sent client_msg_id returns the stored message; otherwise the
# room's counter row gives the next seq and stays locked until the statement commits, with the message.
# No row back: the case is not at that version (or gone): reload it, check again, retry.
# BATCH_SEND_SQL below does the same for many messages; a lone message stays with this one, because
# the batch form (unnest, window counts, materialised CTEs) cost PostgreSQL 2-2.5x the CPU per message
# when most batches hold one message (bench.chat: 0.36 -> 0.89 ms at 500 msg/s, 1,500 msg/s lost).
SEND_SQL = """
WITH c AS (
    SELECT id FROM cases WHERE id = $1 AND version = $2 FOR SHARE
), again AS (
    SELECT * FROM case_messages WHERE case_id = $1 AND room = $3 AND sender_id = $4 AND client_msg_id = $7
), s AS (
    INSERT INTO case_rooms (case_id, room, last_seq)
    SELECT $1, $3, 1 FROM c WHERE NOT EXISTS (SELECT 1 FROM again)
    ON CONFLICT (case_id, room) DO UPDATE SET last_seq = case_rooms.last_seq + 1
    RETURNING last_seq
), m AS (
    INSERT INTO case_messages (case_id, room, seq, sender_id, sender_name, sender_role, client_msg_id, body, via)
    SELECT $1, $3, s.last_seq, $4, $5, $6, $7, $8, $9 FROM s
    RETURNING *
)
SELECT true AS fresh, * FROM m
UNION ALL
SELECT false, * FROM again
"""


async def send_at_version(conn: Conn, *, case_id: str, version: int, room: str, sender_id: str,
                          sender_name: str, sender_role: str, client_msg_id: str, body: str,
                          via: str) -> tuple[dict[str, Any], bool] | None:
    """(the message, whether it is new), or None if the case is not at `version`."""
    r = await conn.fetchrow(SEND_SQL, case_id, version, room, sender_id, sender_name, sender_role,
                            client_msg_id, body, via)
    return None if r is None else (message_view(r), r["fresh"])


# One statement for a batch of chat messages (the node's ChatBatch): $1..$9 are arrays, one element per message.
# c: the batch's cases locked FOR SHARE in id order, each at its version after the lock; a message whose
# case is no longer at the version it was checked against is left out (the caller re-reads and retries).
# again: messages already stored under their client_msg_id (re-sends). fresh: the rest, numbered within
# their room in submission order; rooms: each room's counter advanced once by its count, in (case, room)
# order so that two batches never wait on each other's counters crosswise; m: the messages.
BATCH_SEND_SQL = """
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::text[],
                         $8::text[], $9::text[])
        WITH ORDINALITY AS t(case_id, version, room, sender_id, sender_name, sender_role, client_msg_id, body,
                             via, ord)
), c AS MATERIALIZED (
    SELECT id, version FROM cases WHERE id IN (SELECT case_id FROM input) ORDER BY id FOR SHARE
), again AS MATERIALIZED (
    SELECT i.ord AS in_ord, m.* FROM input i JOIN case_messages m
      ON m.case_id = i.case_id AND m.room = i.room AND m.sender_id = i.sender_id
         AND m.client_msg_id = i.client_msg_id
), fresh AS MATERIALIZED (
    SELECT i.*, row_number() OVER (PARTITION BY i.case_id, i.room ORDER BY i.ord) AS k,
           count(*) OVER (PARTITION BY i.case_id, i.room) AS n
    FROM input i JOIN c ON c.id = i.case_id AND c.version = i.version
    WHERE i.ord NOT IN (SELECT in_ord FROM again)
), rooms AS (
    INSERT INTO case_rooms (case_id, room, last_seq)
    SELECT case_id, room, max(n) FROM fresh GROUP BY case_id, room ORDER BY case_id, room
    ON CONFLICT (case_id, room) DO UPDATE SET last_seq = case_rooms.last_seq + EXCLUDED.last_seq
    RETURNING case_id, room, last_seq
), m AS (
    INSERT INTO case_messages (case_id, room, seq, sender_id, sender_name, sender_role, client_msg_id, body, via)
    SELECT f.case_id, f.room, r.last_seq - f.n + f.k, f.sender_id, f.sender_name, f.sender_role,
           f.client_msg_id, f.body, f.via
    FROM fresh f JOIN rooms r ON r.case_id = f.case_id AND r.room = f.room
    ORDER BY f.case_id, f.room, f.k
    RETURNING *
)
SELECT true AS fresh, * FROM m
UNION ALL
SELECT false, id, case_id, room, seq, sender_id, sender_name, sender_role, client_msg_id, body, via, sent_at
FROM again
"""


Key = tuple[str, str, str, str]     # (case_id, room, sender_id, client_msg_id) of a message


async def send_batch(conn: Conn, items: list[dict[str, Any]]) -> dict[Key, tuple[dict[str, Any], bool]]:
    """Write a batch of messages (dicts with the send_at_version fields) in one statement.

    Returns (message, whether new) by key; a message missing from the answer was not written
    because its case is no longer at the version it was checked against. Raises (e.g.
    UniqueViolationError when one client_msg_id is in the batch twice): nothing was written.
    """
    cols = ("case_id", "version", "room", "sender_id", "sender_name", "sender_role", "client_msg_id", "body",
            "via")
    rows = await conn.fetch(BATCH_SEND_SQL, *[[it[c] for it in items] for c in cols])
    out: dict[Key, tuple[dict[str, Any], bool]] = {}
    for r in rows:
        msg = message_view(r)
        out[(msg["case_id"], msg["room"], msg["sender"]["id"], msg["client_msg_id"])] = (msg, r["fresh"])
    return out


async def next_seq(conn: Conn, case_id: str, room: str) -> int:
    """Take the room's next seq; the counter row stays locked until the transaction ends."""
    return int(await conn.fetchval(
        "INSERT INTO case_rooms (case_id, room, last_seq) VALUES ($1, $2, 1)"
        " ON CONFLICT (case_id, room) DO UPDATE SET last_seq = case_rooms.last_seq + 1 RETURNING last_seq",
        case_id, room))


async def insert_message(conn: Conn, *, case_id: str, room: str, seq: int, sender_id: str, sender_name: str,
                         sender_role: str, client_msg_id: str, body: str, via: str) -> dict[str, Any]:
    r = await conn.fetchrow(
        "INSERT INTO case_messages"
        " (case_id, room, seq, sender_id, sender_name, sender_role, client_msg_id, body, via)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *",
        case_id, room, seq, sender_id, sender_name, sender_role, client_msg_id, body, via)
    assert r is not None
    return message_view(r)


async def messages_after(conn: Conn, case_id: str, room: str, after_seq: int,
                         limit: int) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT * FROM case_messages WHERE case_id = $1 AND room = $2 AND seq > $3"
                            " ORDER BY seq LIMIT $4", case_id, room, after_seq, limit)
    return [message_view(r) for r in rows]


async def last_seq(conn: Conn, case_id: str, room: str) -> int:
    v = await conn.fetchval("SELECT last_seq FROM case_rooms WHERE case_id = $1 AND room = $2", case_id, room)
    return int(v or 0)


async def party_name(conn: Conn, case_id: str, slot: int) -> str:
    """The name the filer gave a party slot ('' if none)."""
    name = await conn.fetchval("SELECT name FROM case_parties WHERE case_id = $1 AND slot = $2", case_id, slot)
    return str(name or "")


async def insert_sign_code(conn: Conn, agreement_id: str, account_id: str, code: str) -> None:
    await conn.execute("INSERT INTO agreement_sign_codes (agreement_id, account_id, code) VALUES ($1, $2, $3)",
                       agreement_id, account_id, code)


async def agreement_of_sign_code(conn: Conn, parties: list[tuple[str, str]], code: str
                                 ) -> tuple[str, str, bool] | None:
    """(case id, agreement id, whether it is the current proposal) for the sign code of one of these
    (case id, party account id) pairs: a code is only ever its own party's."""
    r = await conn.fetchrow(
        "SELECT a.id, a.case_id, c.agreement_id = a.id AS current FROM agreement_sign_codes sc"
        " JOIN agreements a ON a.id = sc.agreement_id JOIN cases c ON c.id = a.case_id"
        " JOIN unnest($1::uuid[], $2::uuid[]) AS p(case_id, account_id)"
        "   ON p.case_id = a.case_id AND p.account_id = sc.account_id"
        " WHERE sc.code = $3 ORDER BY a.proposed_at DESC LIMIT 1",
        [c for c, _ in parties], [a for _, a in parties], code)
    return (str(r["case_id"]), str(r["id"]), bool(r["current"])) if r else None
