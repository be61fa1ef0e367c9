"""Chat messages of concurrent senders written together: one statement and one commit per batch."""
from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from mediation import store


class ChatBatch:
    """Chat messages of concurrent senders written together: one statement and one commit per batch.

    At a thousand messages a second, a statement and a commit per message are most of what
    PostgreSQL and the node's driver spend. Senders queue their message and await its result;
    up to MAX_IN_FLIGHT batches run at once, each taking what has queued meanwhile (so an idle
    node writes a lone message at once, and a busy one writes many per round trip). If a batch
    fails as a whole (one client_msg_id twice in it, say), each of its messages is written on
    its own, so one bad message never fails its neighbours.
    """

    MAX_IN_FLIGHT = 4
    MAX_BATCH = 200

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._queue: list[tuple[dict[str, Any], asyncio.Future[Any]]] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0          # for tests and benchmarks
        self.messages = 0

    async def send(self, item: dict[str, Any]) -> tuple[dict[str, Any], bool] | None:
        """(message, whether new), or None if the case is not at item["version"]."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((item, fut))
        if self._running < self.MAX_IN_FLIGHT:
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        done: tuple[dict[str, Any], bool] | None = await fut
        return done

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:self.MAX_BATCH], self._queue[self.MAX_BATCH:]
                await self._write(batch)
        finally:
            self._running -= 1

    async def _write(self, batch: list[tuple[dict[str, Any], asyncio.Future[Any]]]) -> None:
        try:
            if len(batch) == 1:
                item, fut = batch[0]
                async with self.pool.acquire() as conn:
                    done = await store.send_at_version(conn, **item)
                if not fut.done():
                    fut.set_result(done)
                self._count(1)
                return
            async with self.pool.acquire() as conn:
                written = await store.send_batch(conn, [item for item, _ in batch])
        except asyncio.CancelledError:
            for _, fut in batch:
                if not fut.done():
                    fut.cancel()
            raise
        except Exception as e:
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(e)
                return
            for one in batch:           # the batch as a whole failed: each on its own
                await self._write([one])
            return
        self._count(len(batch))
        for item, fut in batch:
            key = (item["case_id"], item["room"], item["sender_id"], item["client_msg_id"])
            if not fut.done():
                fut.set_result(written.get(key))

    def _count(self, n: int) -> None:
        self.batches += 1
        self.messages += n
