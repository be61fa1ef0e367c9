"""The SMS outbox is woken as the transaction that queued a text commits (issue 12, speed: an offer's text
goes out within 1 s of the offer), not by a guess at when it committed, nor by the poll.

Each test sets the outbox's poll to an hour and holds the queuing transaction open past the outbox's
fallback timers (0.05 s and 0.3 s after the enqueue), so only the commit itself can wake the worker.
Real PostgreSQL (LISTEN/NOTIFY), the twilio library pointed at the Twilio stand-in.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from handlers.context import SMS
from infra import db
from testkit.nodes import InProcess
from testkit.runtime import until
from testkit.stack import Stack, query
from testkit.twilio import FakeTwilio, sms_app

PHONE = "+8613900005555"
HOLD_S = 1.0      # longer than the fallback timers: a text still unsent after commit waits for the poll


@pytest.fixture
async def shl(stack: Stack, clean_db: None, fake: FakeTwilio) -> AsyncIterator[InProcess]:
    app = await sms_app(stack, fake)
    app.app[SMS].poll_s = 3600.0
    try:
        yield app
    finally:
        await app.stop()


async def queue_and_commit_late(app: InProcess, fake: FakeTwilio, body: str) -> None:
    """Queue a text in a transaction held open HOLD_S; nothing may go out before it commits."""
    conn = await db.connect(app.database_url)
    try:
        async with conn.transaction():
            await app.app[SMS].enqueue(conn, PHONE, body)
            await asyncio.sleep(HOLD_S)
            assert [m for m in fake.to(PHONE) if m["Body"] == body] == []    # not before its commit
    finally:
        await conn.close()


async def listeners(app: InProcess) -> list[int]:
    rows = await query(app, "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                            " AND query LIKE 'LISTEN%'")
    return [r["pid"] for r in rows]


async def test_a_text_goes_out_when_its_transaction_commits_not_at_the_next_poll(shl, fake):
    await queue_and_commit_late(shl, fake, "first")
    (sent,) = await until(lambda: fake.to(PHONE), what="the text, woken by its commit")
    assert sent["Body"] == "first"
    sid = await until(lambda: _sent_sid(shl), what="the text recorded as sent")
    assert sid == sent["sid"]


async def _sent_sid(app: InProcess) -> str | None:
    rows = await query(app, "SELECT provider_sid FROM sms_outbox WHERE status = 'sent'")
    return str(rows[0]["provider_sid"]) if rows else None


async def test_a_lost_listening_connection_is_opened_again(shl, fake):
    (pid,) = await until(lambda: listeners(shl), what="the outbox listening")
    await query(shl, "SELECT pg_terminate_backend($1)", pid)
    await until(lambda: _other_listener(shl, pid), what="a new listening connection")
    await queue_and_commit_late(shl, fake, "after the reconnect")
    (sent,) = await until(lambda: fake.to(PHONE), what="the text, woken by its commit")
    assert sent["Body"] == "after the reconnect"


async def _other_listener(app: InProcess, old: int) -> bool:
    pids = await listeners(app)
    return bool(pids) and old not in pids
