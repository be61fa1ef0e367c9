"""Redis commands coalesced into pipelines: many callers, one round trip.

Under load, every help request, chat message and location update costs a rate
limit counter and one or more PUBLISHes. Sent one by one, each is a round trip
and a trip through redis-py's connection pool, and that (not Redis) was a fifth
of a node's CPU in the chat benchmark. Here callers queue their commands and
await the result; one flusher sends everything queued so far as one MULTI/EXEC
pipeline and, while that is in flight, the next callers queue up behind it, so
batches grow with load and an idle node adds no delay (the flush is scheduled
on the same loop turn).

One flusher at a time also keeps this node's PUBLISHes in the order they were
issued. MULTI/EXEC keeps each rate-limit counter's SET NX EX and INCRBY
together (a counter never lives without its expiry).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from infra import redisclient

log = logging.getLogger(__name__)
PUBLISH_WAIT_S = 1.0    # how long a publisher waits for its doorbell to be confirmed

Adder = Callable[[Pipeline], object]   # adds its commands to the pipeline; what it returns is ignored


class Pipeliner:
    def __init__(self, redis: aioredis.Redis, max_batch: int = 1000) -> None:
        self.redis = redis
        self.max_batch = max_batch
        self._queue: list[tuple[Adder, int, asyncio.Future[list[Any]]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0            # pipelines sent, for tests and benchmarks
        self.commands = 0
        self.publish_command = redisclient.publish_command(redis)    # SPUBLISH on a Redis Cluster

    async def run(self, add: Adder, n: int) -> list[Any]:
        """Queue `n` commands (added to the pipeline by `add`); their results, in order.

        A command that Redis refused comes back as its exception in the list; a broken
        connection raises RedisError for everyone in the batch.
        """
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._queue.append((add, n, fut))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
                try:
                    async with self.redis.pipeline(transaction=True) as pipe:
                        for add, _, _ in batch:
                            add(pipe)
                        results = await pipe.execute(raise_on_error=False)
                except asyncio.CancelledError:
                    for _, _, fut in batch:
                        if not fut.done():
                            fut.cancel()
                    raise
                except Exception as e:  # connection trouble: every caller of this batch hears it
                    err = e if isinstance(e, RedisError) else RedisError(str(e))
                    for _, _, fut in batch:
                        if not fut.done():
                            fut.set_exception(err)
                    continue
                self.batches += 1
                i = 0
                for _, n, fut in batch:
                    self.commands += n
                    if not fut.done():
                        fut.set_result(results[i:i + n])
                    i += n
        finally:
            self._flusher = None

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._flusher

    # ---------------------------------------------------------------- the commands we batch
    async def publish(self, items: list[tuple[str, str]]) -> None:
        """PUBLISH each (channel, payload), in order; a failure is logged, never raised (a doorbell)."""
        if not items:
            return

        def add(pipe: Pipeline) -> None:
            for channel, payload in items:
                pipe.execute_command(self.publish_command, channel, payload)
        try:
            # the caller (a report, a chat message) is answered once its change is committed; a Redis that
            # hangs must not hold that answer for the socket timeout: past this, the doorbell rings (or
            # fails) without the caller, still in order with the node's other publishes
            # (asyncio.timeout: no task of its own per publish, as wait_for would make)
            async with asyncio.timeout(PUBLISH_WAIT_S):
                results = await self.run(add, len(items))
        except TimeoutError:
            log.warning("publish of %d events not confirmed within %.0f s; not waiting", len(items), PUBLISH_WAIT_S)
            return
        except RedisError as e:
            log.warning("publish of %d events failed: %s", len(items), e)
            return
        for r in results:
            if isinstance(r, Exception):
                log.warning("publish failed: %s", r)

    async def count(self, key: str, window_s: int, add: int = 1) -> int:
        """Add to a fixed-window counter (created with its expiry) and return its value."""
        def cmds(pipe: Pipeline) -> None:
            pipe.set(key, 0, ex=window_s, nx=True)
            pipe.incrby(key, add)
        _, n = await self.run(cmds, 2)
        if isinstance(n, Exception):
            raise n
        return int(n)
