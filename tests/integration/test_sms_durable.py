"""A mediation text survives the node that committed its change (issue 11: one durable outbox).

Node A (a `helpline serve` process) reaches Redis through a proxy the test can freeze, and Twilio
at a stand-in that is not listening yet. A case is opened with a party by phone; the test freezes
Redis just before, so node A commits the case and then hangs on publishing its events. Mediation
used to queue its texts only after that publish, from a task in memory: SIGKILL there lost them.
Now the invitation is a row of sms_outbox committed with the case; node A cannot deliver it (the
stand-in is down), is killed, and node B, started with the stand-in up, sends it: exactly once.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from testkit.nodes import Cluster, NodeProcess
from testkit.stack import free_port
from testkit.twilio import FakeTwilio

BO = "+8613912345678"


class FrozenProxy:
    """A TCP proxy that forwards until frozen, then holds every byte (a Redis that stops answering)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.listen_port = free_port()
        self.open = asyncio.Event()
        self.open.set()
        self.server: asyncio.base_events.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.listen_port)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        self.writers += [writer, up_writer]
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            await self.open.wait()
            writer.write(data)
            await writer.drain()
        writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for w in self.writers:
            w.close()


async def until(pred: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await pred()
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s")


async def test_a_mediation_text_is_sent_once_by_another_node_after_its_node_died(stack, clean_db):
    fake = FakeTwilio()                      # its port is reserved, nothing listens there yet
    cluster = Cluster(stack, **fake.config())
    redis = urlsplit(stack.redis_url)
    proxy = FrozenProxy(redis.hostname or "127.0.0.1", redis.port or 6379)
    await proxy.start()
    db = await asyncpg.connect(stack.database_url)
    pending: asyncio.Task[Any] | None = None
    try:
        env_a = dict(cluster.env, HELPLINE_REDIS_URL=stack.redis_url.replace(
            f"{redis.hostname}:{redis.port}", f"127.0.0.1:{proxy.listen_port}"))
        node_a = NodeProcess(env_a, cluster.database_url, cluster.workdir)
        cluster.nodes.append(node_a)
        await node_a.start()
        filer = await node_a.user("resident")

        proxy.open.clear()                   # from here node A's Redis hangs: the publish after commit never returns
        pending = asyncio.create_task(filer.call(
            "case.open", timeout=30, category="property", summary="fence", name="Ann",
            other_parties=[{"name": "Bo", "phone": BO}]))
        await until(lambda: db.fetchval("SELECT count(*) FROM cases"), 15, "the case's commit")
        # the invitation waits in the outbox (the stand-in is down); kill between two attempts, so that
        # no send is in flight (a send cut off mid-request is 'outcome unknown', never resent). Before the
        # outbox, the text was still in node A's memory here: it never reached the table, and was lost.
        await until(lambda: db.fetchval(
            "SELECT count(*) FROM sms_outbox WHERE to_phone = $1 AND status = 'pending'"
            " AND due_at > now() + interval '200 milliseconds'", BO), 5, "the invitation, pending in the outbox")
        node_a.kill()
        pending.cancel()

        await fake.start()
        await cluster.start_node()
        got = await until(lambda: asyncio.sleep(0, [m for m in fake.to(BO)]), 20, "the invitation SMS")
        await asyncio.sleep(2)               # long enough for a duplicate to show
        assert len(fake.to(BO)) == 1, fake.to(BO)
        assert "Ann" in got[0]["Body"] and "join" in got[0]["Body"]
        rows = await db.fetch("SELECT status FROM sms_outbox WHERE to_phone = $1", BO)
        assert [r["status"] for r in rows] == ["sent"]
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        await db.close()
        await cluster.stop()
        proxy.open.set()
        await proxy.stop()
        await fake.stop()
