"""What an idle connection keeps (issue 18): no writer task and no queue between bursts, yet every frame
arrives, in order; an account's connections each hear its channel, and one leaving does not silence the rest."""
from __future__ import annotations

import asyncio
import json

import pytest

from handlers.context import BUS, HUB, KEYS
from testkit.client import Client
from testkit.runtime import until


async def test_an_idle_connection_has_no_writer_and_a_burst_arrives_in_order(hl):
    c = await hl.resident()
    hub, bus = hl.app[HUB], hl.app[BUS]
    (conn,) = hub.of_account(c.account_id)
    await until(lambda: conn.writer is None, 5, "the writer to end after the welcome")
    assert conn.queued == 0
    channel = hl.app[KEYS].account_channel(c.account_id)
    assert bus.listening(channel) == 1
    n = 300
    await bus.publish_many([(channel, json.dumps({"type": "test.burst", "i": i})) for i in range(n)])
    got = [(await c.push("test.burst"))["i"] for _ in range(n)]
    assert got == list(range(n))
    await until(lambda: conn.writer is None and conn.queued == 0, 5, "the writer to end after the burst")
    # and the next frame starts a writer again
    assert (await c.ok("ping"))["type"] == "ok"
    await until(lambda: conn.writer is None, 5, "the writer to end after the answer")


async def test_an_accounts_connections_each_hear_it_until_the_last_leaves(hl):
    token = await hl.device_token()
    a = await hl.connect(token)
    b = await Client.connect(hl.ws_url, token)
    hub, bus = hl.app[HUB], hl.app[BUS]
    channel = hl.app[KEYS].account_channel(a.account_id)
    await until(lambda: len(hub.of_account(a.account_id)) == 2, 5, "both connections listed")
    assert bus.listening(channel) == 2
    count = hub.count
    await bus.publish(channel, json.dumps({"type": "test.both"}))
    await a.push("test.both")
    await b.push("test.both")

    await b.close()
    await until(lambda: len(hub.of_account(a.account_id)) == 1, 5, "one connection left")
    assert bus.listening(channel) == 1 and hub.count == count - 1
    assert hub.of_account(a.account_id)[0] in hub.all()
    await bus.publish(channel, json.dumps({"type": "test.one"}))
    await a.push("test.one")

    await a.close()
    await until(lambda: not hub.of_account(a.account_id), 5, "no connection left")
    assert bus.listening(channel) == 0 and channel not in bus.listeners and hub.count == count - 2


@pytest.mark.config(server_session_recheck_s=3600)      # only the call below re-checks
async def test_the_session_recheck_goes_by_batches_and_closes_exactly_the_lost_sessions(hl, monkeypatch):
    """Hub.recheck_sessions reads the node's sessions a batch at a time (its peak memory is a batch's rows,
    not the node's): a session lost in any batch is closed (1008), the others stay."""
    import uuid

    from handlers import connection
    from testkit.stack import query

    monkeypatch.setattr(connection, "RECHECK_BATCH", 2)
    clients = [await hl.resident() for _ in range(7)]
    lost = [clients[1], clients[4], clients[6]]         # in the first, third and fourth batch
    for c in lost:
        await query(hl, "UPDATE accounts SET disabled = true WHERE id = $1", uuid.UUID(c.account_id))
    assert await hl.app[HUB].recheck_sessions() == 3
    for c in lost:
        await asyncio.wait_for(c.reader, 5)
        assert c.close_code == 1008
    for c in clients:
        if c not in lost:
            assert (await c.ok("ping"))["type"] == "ok"
