"""The Redis doorbell: publish after commit, fan out to local listeners.

Pub/sub is at-most-once; nothing here is the only copy of anything. A channel
is subscribed on its first local listener and dropped with its last. When the
Redis connection breaks, the reader reconnects with backoff, subscribes again
and calls `on_resync` so that the node re-sends current state from PostgreSQL
to its clients (what was published during the outage is not replayed).

Behind Sentinel the reader also moves when the primary does: a reconnect asks the sentinels where
the primary is now, and every `primary_check_s` the reader compares its server with the sentinels'
primary — a demoted primary that keeps running as a replica still accepts SUBSCRIBE but hears no
PUBLISH any more, so a connection that merely stays up is not proof of anything.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from infra import redisclient
from infra.redisbatch import Pipeliner

log = logging.getLogger(__name__)


class Listener(Protocol):
    def deliver(self, payload: str) -> None:
        """Take one published payload; must not block."""


class Peer(Listener, Protocol):
    """A signed-in client connection as the domains' live feeds see it (handlers.connection.Connection)."""

    id: str
    role: str
    account: dict[str, Any]
    state: dict[str, Any]           # per-connection data of the feeds, by their own keys

    @property
    def closed(self) -> bool:
        """The connection is closing or closed: deliver nothing more."""

    def send(self, message: dict[str, Any]) -> None:
        """Queue one message (encoded here) for the client; must not block."""


class PrimaryMoved(RedisConnectionError):
    """The sentinels name another primary than the one the subscriptions are on."""


class Bus:
    primary_check_s = 2.0      # behind Sentinel: how often the reader checks it is on the primary

    def __init__(self, redis: aioredis.Redis, on_resync: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
        self.redis = redis
        self.batch = Pipeliner(redis)     # publishes (and rate-limit counters) share pipelines
        self.on_resync = on_resync
        self.listeners: dict[str, set[Listener]] = {}
        self.connected = False
        self._pubsub: aioredis.client.PubSub | None = None
        self._confirm: dict[str, list[asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._resync: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._to_subscribe: list[str] = []
        self.closing = False    # the node is shutting down: connections leave without an UNSUBSCRIBE each
        self._sub_flush: asyncio.Task[None] | None = None
        # bumped each time the reader is subscribed anew: a listener that must not miss a message can tell that
        # it may have (messages published while no reader was subscribed are gone) and catch up
        self.generation = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bus-reader")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._ready.wait(), 10)

    async def close(self) -> None:
        await self.batch.close()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def publish(self, channel: str, payload: str) -> None:
        await self.batch.publish([(channel, payload)])

    async def publish_many(self, items: list[tuple[str, str]]) -> None:
        """PUBLISH in order, pipelined with other callers'; a doorbell that does not ring is logged
        (clients catch up from PostgreSQL), never raised."""
        await self.batch.publish(items)

    async def listen(self, channel: str, listener: Listener) -> None:
        """Add a local listener; returns once Redis confirmed the subscription (or is down).

        Channels asked for in the same loop turn (a reconnect storm: thousands of hellos) go to
        Redis as one SUBSCRIBE.
        """
        group = self.listeners.setdefault(channel, set())
        first = not group
        group.add(listener)
        if not self.connected or self._pubsub is None:
            return                                  # subscribed on reconnect, with everything else
        if first:
            fut = asyncio.get_running_loop().create_future()
            self._confirm.setdefault(channel, []).append(fut)
            self._to_subscribe.append(channel)
            if self._sub_flush is None:
                self._sub_flush = asyncio.get_running_loop().create_task(self._flush_subscribes())
        else:
            pending = self._confirm.get(channel)
            if not pending:
                return
            fut = pending[0]                        # someone's SUBSCRIBE is on its way: wait for it too
        try:
            await asyncio.wait_for(asyncio.shield(fut), 5)
        except TimeoutError:
            log.warning("subscribe %s: not confirmed within 5 s", channel)

    async def _flush_subscribes(self) -> None:
        try:
            while self._to_subscribe:
                asked, self._to_subscribe = list(dict.fromkeys(self._to_subscribe)), []
                wanted = [ch for ch in asked if ch in self.listeners]
                for ch in asked:
                    if ch not in self.listeners:    # its listener left meanwhile
                        self._resolve(ch)
                if not wanted or self._pubsub is None:
                    continue
                try:
                    await self._pubsub.subscribe(*wanted)
                except (RedisError, OSError) as e:
                    log.warning("subscribe of %d channels: %s", len(wanted), e)
                    for ch in wanted:
                        self._resolve(ch)
        finally:
            self._sub_flush = None

    def _resolve(self, channel: str) -> None:
        for fut in self._confirm.pop(channel, []):
            if not fut.done():
                fut.set_result(None)

    async def unlisten(self, channel: str, listener: Listener) -> None:
        group = self.listeners.get(channel)
        if not group or listener not in group:
            return
        group.discard(listener)
        if not group:
            del self.listeners[channel]
            if self.connected and self._pubsub is not None and not self.closing:
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.unsubscribe(channel)

    def _dispatch(self, channel: str, payload: str) -> None:
        for listener in list(self.listeners.get(channel, ())):
            try:
                listener.deliver(payload)
            except Exception:  # one bad listener must not stop the fan-out
                log.exception("listener failed on %s", channel)

    async def _run(self) -> None:
        delay = 0.1
        # behind Sentinel a reconnect is mostly waiting for the sentinels to name the new primary: ask often
        sentinel = redisclient.sentinel_pool(self.redis) is not None
        max_delay = 1.0 if sentinel else 5.0
        idle_wait = min(5.0, self.primary_check_s) if sentinel else 5.0
        first = True
        while True:
            try:
                self._pubsub = self.redis.pubsub()
                # a placeholder channel keeps the connection in subscribe mode
                await self._pubsub.subscribe("__helpline_keepalive__")
                if self.listeners:
                    await self._pubsub.subscribe(*self.listeners)
                self.generation += 1
                self.connected = True
                self._ready.set()
                delay = 0.1
                if not first and self.on_resync is not None:
                    self._resync = asyncio.create_task(self.on_resync())   # keep a reference until it ends
                first = False
                next_check = time.monotonic() + self.primary_check_s
                while True:
                    if sentinel and time.monotonic() >= next_check:
                        next_check = time.monotonic() + self.primary_check_s
                        if await redisclient.primary_moved(self.redis, self._pubsub.connection):
                            raise PrimaryMoved("the sentinels name another primary: subscribing there")
                    msg = await self._pubsub.get_message(ignore_subscribe_messages=False, timeout=idle_wait)
                    if msg is None:
                        await self._pubsub.ping()
                        continue
                    kind = msg["type"]
                    ch = msg["channel"]
                    ch = ch.decode() if isinstance(ch, bytes) else ch
                    if kind == "message":
                        data = msg["data"]
                        self._dispatch(ch, data.decode() if isinstance(data, bytes) else data)
                    elif kind == "subscribe":
                        self._resolve(ch)
            except asyncio.CancelledError:
                raise
            except (RedisConnectionError, RedisTimeoutError, OSError, RedisError) as e:
                if self.connected:
                    log.warning("Redis pub/sub connection lost: %s", e)
                self.connected = False
                self._ready.set()
                for futs in self._confirm.values():
                    for fut in futs:
                        if not fut.done():
                            fut.set_result(None)
                self._confirm.clear()
                if self._pubsub is not None:
                    with contextlib.suppress(Exception):
                        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, max_delay)
