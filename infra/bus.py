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

On a Redis Cluster the bus uses sharded pub/sub (SSUBSCRIBE; the node SPUBLISHes, infra/redisbatch.py):
every channel of the deployment is in one slot (infra/keys.py), so the reader holds one connection, to
the primary holding that slot. When that primary dies the connection breaks; when it is demoted alive
(a manual failover, a slot moved) Redis ends the connection's shard subscriptions itself (an unasked
SUNSUBSCRIBE). Either way the reader re-reads the cluster's map of slots, subscribes again on the slot's
primary now and resyncs its clients. (redis-py's ClusterPubSub also re-makes shard subscriptions when its
map of slots changes, but in background tasks that tell nobody: the bus could not resync its clients for
what was published meanwhile, so it keeps its own connection and knows when it moved.)
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError

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
    """The sentinels name another primary than the one the subscriptions are on (or, on a cluster, the
    subscriptions' node no longer holds the deployment's slot)."""


class Bus:
    primary_check_s = 2.0      # behind Sentinel: how often the reader checks it is on the primary

    def __init__(self, redis: aioredis.Redis, on_resync: Callable[[], Coroutine[Any, Any, None]] | None = None,
                 keepalive: str = "__helpline_keepalive__") -> None:
        self.redis = redis
        # subscribed from the start so that the connection stays in subscribe mode; on a cluster it must be
        # in the deployment's slot (Keys.keepalive_channel)
        self.keepalive = keepalive
        self.cluster = redisclient.is_cluster(redis)
        self._dropping: set[str] = set()     # cluster: channels this bus unsubscribed, their SUNSUBSCRIBE due
        self.batch = Pipeliner(redis)     # publishes (and rate-limit counters) share pipelines
        self.on_resync = on_resync
        # a channel's local listeners: the one listener itself, or a set of them when there are several (an
        # account's channel is heard by its one connection: a set each would cost an idle socket 216 bytes)
        self.listeners: dict[str, Listener | set[Listener]] = {}
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
        await self._drop_pubsub()

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
        got = self.listeners.get(channel)
        first = got is None
        if got is None:
            self.listeners[channel] = listener
        elif isinstance(got, set):
            got.add(listener)
        elif got is not listener:
            self.listeners[channel] = {got, listener}
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
                    await self._subscribe(*wanted)
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

    def listening(self, channel: str) -> int:
        """How many local listeners `channel` has."""
        got = self.listeners.get(channel)
        return 0 if got is None else len(got) if isinstance(got, set) else 1

    async def unlisten(self, channel: str, listener: Listener) -> None:
        got = self.listeners.get(channel)
        if isinstance(got, set):        # several: the channel stays (a set of one becomes that one)
            got.discard(listener)
            if len(got) == 1:
                self.listeners[channel] = next(iter(got))
            return
        if got is None or got is not listener:
            return
        del self.listeners[channel]     # its last local listener
        if self.connected and self._pubsub is not None and not self.closing:
            with contextlib.suppress(RedisError, OSError):
                if self.cluster:
                    self._dropping.add(channel)
                    await self._pubsub.sunsubscribe(channel)
                else:
                    await self._pubsub.unsubscribe(channel)

    async def _subscribe(self, *channels: str) -> None:
        assert self._pubsub is not None
        if self.cluster:
            self._dropping.difference_update(channels)
            await self._pubsub.ssubscribe(*channels)
        else:
            await self._pubsub.subscribe(*channels)

    async def _open(self, first: bool) -> aioredis.client.PubSub:
        """A pub/sub connection: from the client's pool, or on a cluster one of its own to the primary that
        holds the deployment's slot (the map of slots read again on a reconnect: it may have moved)."""
        if not self.cluster:
            return self.redis.pubsub()
        cluster = cast(redisclient.ClusterRedis, self.redis)
        if first or cluster._initialize:
            await cluster.initialize()
        else:
            await cluster.refresh()
        try:
            node = cluster.get_node_from_key(self.keepalive)
        except RedisClusterException as e:      # mid-failover: no primary for the slot in the map yet
            raise PrimaryMoved(f"the cluster's map names no primary for {self.keepalive}'s slot: {e}") from e
        if node is None:
            raise PrimaryMoved(f"the cluster's map names no primary for {self.keepalive}'s slot")
        kw = cluster.get_connection_kwargs()
        wanted = ("username", "password", "socket_connect_timeout", "socket_timeout", "health_check_interval")
        options: dict[str, Any] = {k: kw[k] for k in wanted if kw.get(k) is not None}
        # no retries of its own: the reader reconnects itself, to the primary the map names by then
        pool = aioredis.ConnectionPool(host=node.host, port=node.port, max_connections=2,
                                       retry=Retry(NoBackoff(), 0), **options)
        return aioredis.client.PubSub(connection_pool=pool)

    async def _drop_pubsub(self) -> None:
        if self._pubsub is None:
            return
        pool = self._pubsub.connection_pool
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        if self.cluster:            # the cluster's pub/sub pool is the bus's own
            with contextlib.suppress(Exception):
                await pool.disconnect()

    def _dispatch(self, channel: str, payload: str) -> None:
        got = self.listeners.get(channel)
        if got is None:
            return
        for listener in list(got) if isinstance(got, set) else (got,):
            try:
                listener.deliver(payload)
            except Exception:  # one bad listener must not stop the fan-out
                log.exception("listener failed on %s", channel)

    async def _run(self) -> None:
        delay = 0.1
        # behind Sentinel a reconnect is mostly waiting for the sentinels to name the new primary: ask often
        # (and on a cluster for its replica's promotion)
        sentinel = redisclient.sentinel_pool(self.redis) is not None or self.cluster
        max_delay = 1.0 if sentinel else 5.0
        idle_wait = min(5.0, self.primary_check_s) if sentinel else 5.0
        first = True
        while True:
            try:
                self._dropping.clear()
                self._pubsub = await self._open(first)
                # a placeholder channel keeps the connection in subscribe mode
                await self._subscribe(self.keepalive)
                if self.listeners:
                    await self._subscribe(*self.listeners)
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
                    if kind in ("message", "smessage"):
                        data = msg["data"]
                        self._dispatch(ch, data.decode() if isinstance(data, bytes) else data)
                    elif kind in ("subscribe", "ssubscribe"):
                        self._resolve(ch)
                    elif kind == "sunsubscribe":
                        if ch in self._dropping:
                            self._dropping.discard(ch)
                        else:   # not asked for: this node no longer holds the slot (demoted, slot moved)
                            raise PrimaryMoved(f"the cluster node ended the subscription to {ch}: the slot moved")
            except asyncio.CancelledError:
                raise
            except Exception as e:
                # Redis away, or anything else: a reader that ended would leave the node deaf, `connected` true
                if self.connected:
                    log.warning("Redis pub/sub connection lost: %s", e)
                if not isinstance(e, (RedisError, OSError, RedisClusterException)):
                    log.exception("pub/sub reader: unexpected %s; reconnecting", type(e).__name__)
                self.connected = False
                self._ready.set()
                for futs in self._confirm.values():
                    for fut in futs:
                        if not fut.done():
                            fut.set_result(None)
                self._confirm.clear()
                await self._drop_pubsub()
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, max_delay)
