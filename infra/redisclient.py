"""Redis clients from `redis.url`: one Redis, the primary of a Sentinel set, or a Redis Cluster
(infra/redisurl.py).

Every place that opens Redis from the configured URL comes here (the node's pool, the CLI's
one-shot publish), so a Sentinel URL means the same thing everywhere.

With Sentinel, every new connection asks the sentinels where the primary is
(redis-py's SentinelManagedConnection); a connection that meets a READONLY reply (its server was
demoted to a replica) is dropped and the command is sent once more on a new connection, to the
new primary. Subscriptions are the bus's business (infra/bus.py `primary_moved`).

With a Redis Cluster the client is redis-py's RedisCluster: it reads the map of slots from the seeds,
sends each command to the primary holding its key's slot, and on a dead connection, MOVED or
CLUSTERDOWN re-reads the map and tries once more. Every key of one deployment is in one slot (the key
prefix is a hash tag, infra/keys.py), so transactions and scripts work as on one Redis. Publishes are
sharded (SPUBLISH, `publish_command`), heard only on the slot's own shard rather than broadcast to every
node. RedisCluster duck-types as redis.asyncio.Redis for every command helpline sends; `is_cluster` tells
the few places that differ (pub/sub, the pool, /readyz).
"""
from __future__ import annotations

from typing import Any, cast

import redis
import redis.asyncio as aioredis
import redis.cluster
import redis.retry
import redis.sentinel
from redis.asyncio.cluster import AbstractStrategy, ClusterNode, ClusterPipeline, RedisCluster, TransactionStrategy
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError, SlotNotCoveredError
from redis.exceptions import TimeoutError as RedisTimeoutError

from infra import redisurl

# a sentinel that does not answer within this is passed over for the next one
SENTINEL_TIMEOUT_S = 1.0
# RedisCluster has no blocking pool: past this many connections to one cluster node a command fails
# (MaxConnectionsError, answered `unavailable`) instead of waiting; the node's publishes and counters go
# through one pipeline at a time (infra/redisbatch.py), so this is far above what a node uses
CLUSTER_MAX_CONNECTIONS = 256


class BlockingSentinelPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """The primary of a Sentinel service, with the blocking pool's behaviour: at a surge commands wait
    (up to `timeout`) for a free connection rather than fail. redis-py has no blocking Sentinel pool;
    the two classes compose (SentinelConnectionPool only picks the connection class and the address,
    BlockingConnectionPool only how a connection is waited for).

    A connection given back after the primary moved is closed rather than kept: otherwise a read
    could still go to the old primary, now a replica, and answer from there."""

    async def release(self, connection: AbstractConnection) -> None:
        if self.master_address is not None and _address(connection) != tuple(self.master_address):
            await connection.disconnect()
        await super().release(connection)


class SentinelRedis(aioredis.Redis):
    """The primary's client; closing it closes its connections to the sentinels too."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        pool = self.connection_pool
        await super().aclose(close_connection_pool)
        if isinstance(pool, SentinelConnectionPool):
            await pool.sentinel_manager.aclose()


# commands whose one key (or channel) is their first argument: what helpline's transactions send
ONE_KEY_FIRST = frozenset({"SET", "GET", "INCR", "INCRBY", "DECRBY", "EXPIRE", "PEXPIRE", "SPUBLISH", "PUBLISH",
                           "HSET", "HDEL", "HGET", "SADD", "SREM", "SISMEMBER", "GEOADD", "ZADD", "ZREM"})


class OneSlotTransaction(TransactionStrategy):
    """redis-py's cluster transaction (MULTI/EXEC on the slot's primary, retried after a MOVED or a dead
    connection), without its cost per queued command: redis-py finds each command's slot with its async
    command parser run in a new thread, joined while the event loop waits — about 0.35 ms of blocked loop
    per command, so a pipeline of 1,000 publishes stalled the node for a third of a second. For the
    commands whose first argument is their only key the slot is that argument's, found here at once;
    any other command still goes redis-py's way."""

    def execute_command(self, *args: Any, **kwargs: Any) -> ClusterPipeline:
        if len(args) > 1 and not self._watching and str(args[0]).upper() in ONE_KEY_FIRST:
            self._pipeline_slots.add(self._pipe.cluster_client.keyslot(args[1]))
            return AbstractStrategy.execute_command(self, *args, **kwargs)
        return super().execute_command(*args, **kwargs)  # type: ignore[no-any-return]


class ClusterRedis(RedisCluster):
    """redis-py's cluster client with two changes. Like the node's other clients it does not retry a
    command that timed out (a Redis that hangs must not cost each command twice); a dead connection,
    CLUSTERDOWN and an uncovered slot (a failover under way) are still retried once, after the map of
    slots is read again. (Pipelines keep redis-py's own rule, which it reads from the base class.) And
    its transactions do not block the event loop for each command queued (OneSlotTransaction)."""

    ERRORS_ALLOW_RETRY = tuple(  # type: ignore[assignment]  # fewer than the base's
        e for e in RedisCluster.ERRORS_ALLOW_RETRY if e is not RedisTimeoutError)

    async def initialize(self, *args: Any, **kwargs: Any) -> ClusterRedis:
        """Read the map of slots (when there is none, or a failure asked for it again). No node answering
        is a RedisError here, a ConnectionError, as a plain Redis that is down: redis-py raises its
        RedisClusterException, which is none, and every `except RedisError` of the node would miss it."""
        try:
            await super().initialize(*args, **kwargs)
        except RedisClusterException as e:
            raise RedisConnectionError(f"Redis Cluster: {e}") from e
        return self

    async def refresh(self) -> None:
        """Read the map of slots again now (the bus, before it subscribes again)."""
        try:
            await self.nodes_manager.initialize()
        except RedisClusterException as e:
            raise RedisConnectionError(f"Redis Cluster: {e}") from e

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except SlotNotCoveredError as e:       # mid-failover: the map names no primary for the slot yet
            raise RedisConnectionError(f"Redis Cluster: {e}") from e

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        if shard_hint:
            raise RedisClusterException("shard_hint is deprecated in cluster mode")
        pipe = OnePipeline(self, transaction)  # type: ignore[abstract]  # as redis-py's own pipeline()
        if transaction:
            pipe._execution_strategy = OneSlotTransaction(pipe)
        return pipe


class OnePipeline(ClusterPipeline):
    """A cluster pipeline whose "no primary for the slot" (mid-failover) is a ConnectionError, a RedisError
    as the node expects of Redis being away (redis-py's SlotNotCoveredError is none)."""

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        try:
            return await super().execute(raise_on_error, allow_redirections)
        except SlotNotCoveredError as e:
            raise RedisConnectionError(f"Redis Cluster: {e}") from e


def connect(url: str) -> aioredis.Redis:
    """The node's client. Commands wait for a free connection (up to 5 s) rather than failing at a surge.

    A command that finds its pooled connection broken is sent once more on a new one: after a Redis
    restart (or a Sentinel failover) every idle connection of the pool is dead, and without this the
    first command on each fails — a doorbell not rung (a client not told of its offer or its responder
    until it reconnects), a report left for the sweeper. A command the old server might have run
    before it went away is at worst repeated: a PUBLISH (the clients take the newer version) or a
    counter counted twice."""
    # not on a timeout: a Redis that hangs must not cost each command twice
    once_on_a_dead_connection = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
    options: dict[str, Any] = {"max_connections": 64, "timeout": 5, "health_check_interval": 10,
                               "socket_connect_timeout": 3, "socket_timeout": 5, "retry": once_on_a_dead_connection}
    target = redisurl.parse(url)
    if isinstance(target, redisurl.PlainTarget):
        pool = aioredis.BlockingConnectionPool.from_url(url, **options)
        return aioredis.Redis(connection_pool=pool)
    if isinstance(target, redisurl.ClusterTarget):
        # the same timeouts; `retry` here counts the cluster client's own attempts (each after re-reading
        # the slot map when the last failed on a dead connection or a node that no longer holds the slot)
        cluster = ClusterRedis(
            startup_nodes=[ClusterNode(h, p) for h, p in target.seeds], username=target.username,
            password=target.password, max_connections=CLUSTER_MAX_CONNECTIONS,
            health_check_interval=options["health_check_interval"],
            socket_connect_timeout=options["socket_connect_timeout"], socket_timeout=options["socket_timeout"],
            retry=Retry(NoBackoff(), 1))
        return cast(aioredis.Redis, cluster)      # duck-typed: see the module's docstring
    sentinel = Sentinel(target.sentinels, sentinel_kwargs=_sentinel_kwargs(target))  # type: ignore[no-untyped-call]
    client: aioredis.Redis = sentinel.master_for(
        target.service, redis_class=SentinelRedis, connection_pool_class=BlockingSentinelPool, db=target.db,
        username=target.username, password=target.password, **options)
    return client


def connect_sync(url: str, timeout_s: float) -> redis.Redis:
    """A short-lived blocking client (the CLI's), on the same URL forms."""
    target = redisurl.parse(url)
    if isinstance(target, redisurl.PlainTarget):
        return redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    if isinstance(target, redisurl.ClusterTarget):
        try:        # the blocking cluster client reads the map of slots as it is made
            cluster = redis.cluster.RedisCluster(
                startup_nodes=[redis.cluster.ClusterNode(h, p) for h, p in target.seeds],  # type: ignore[no-untyped-call]
                username=target.username,
                password=target.password, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
        except RedisClusterException as e:     # not a RedisError: say it as one
            raise RedisConnectionError(str(e)) from e
        return cast(redis.Redis, cluster)
    sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        target.sentinels, sentinel_kwargs=_sentinel_kwargs(target, sync=True))
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        target.service, db=target.db, username=target.username, password=target.password,
        socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    return client


def is_cluster(client: aioredis.Redis | redis.Redis) -> bool:
    return isinstance(client, (RedisCluster, redis.cluster.RedisCluster))


def publish_command(client: aioredis.Redis | redis.Redis) -> str:
    """PUBLISH, or on a cluster SPUBLISH: a plain PUBLISH there is copied to every node of the cluster
    over its bus; a sharded one stays on the shard of the channel's slot, where the bus subscribes."""
    return "SPUBLISH" if is_cluster(client) else "PUBLISH"


def publish_sync(client: redis.Redis, channel: str, payload: str) -> None:
    client.execute_command(publish_command(client), channel, payload)  # type: ignore[no-untyped-call]


def _sentinel_kwargs(target: redisurl.SentinelTarget, sync: bool = False) -> dict[str, Any]:
    # no retries (redis-py's default retries with back-off, seconds per dead sentinel): the next sentinel is asked
    retry = redis.retry.Retry(NoBackoff(), 0) if sync else Retry(NoBackoff(), 0)
    kw: dict[str, Any] = {"socket_connect_timeout": SENTINEL_TIMEOUT_S, "socket_timeout": SENTINEL_TIMEOUT_S,
                          "retry": retry}
    if target.sentinel_password is not None:
        kw["password"] = target.sentinel_password
    return kw


def _address(connection: AbstractConnection) -> tuple[Any, Any]:
    return getattr(connection, "host", None), getattr(connection, "port", None)


def sentinel_pool(client: aioredis.Redis) -> SentinelConnectionPool | None:
    pool = getattr(client, "connection_pool", None)      # a RedisCluster has a pool per node, none of its own
    return pool if isinstance(pool, SentinelConnectionPool) else None


async def primary_moved(client: aioredis.Redis, connection: AbstractConnection | None) -> bool:
    """The sentinels name a primary other than the server `connection` is on (it was demoted, or
    failed over while this connection still works). A replica still accepts SUBSCRIBE but no longer
    hears PUBLISHes, so a subscriber must move. False for a plain URL, and when the sentinels name
    no primary at all (mid-failover: keep what works until they do)."""
    pool = sentinel_pool(client)
    if pool is None or connection is None:
        return False
    try:
        address = await pool.get_master_address()  # type: ignore[no-untyped-call]  # also drops the pool's idle connections to an old primary
    except (MasterNotFoundError, RedisConnectionError, RedisTimeoutError):
        return False
    return _address(connection) != tuple(address)


async def describe(client: aioredis.Redis, slot_key: str = "") -> tuple[str | None, str]:
    """(what failed or None, what is happening in an operator's words) for /readyz: one PING to the
    primary, and with Sentinel first the sentinels' view of the service; on a cluster, the primary that
    holds `slot_key`'s slot (any key of the deployment: they share one)."""
    if is_cluster(client):
        return await _describe_cluster(cast(RedisCluster, client), slot_key)
    pool = sentinel_pool(client)
    where = ""
    if pool is not None:
        manager: Sentinel = pool.sentinel_manager
        answered, masters = 0, None
        errors: list[str] = []
        for s in manager.sentinels:
            kw = s.connection_pool.connection_kwargs
            try:
                masters = await s.sentinel_masters()
            except (RedisError, OSError) as e:
                errors.append(f"{kw.get('host')}:{kw.get('port')} ({type(e).__name__})")
                continue
            answered += 1
            state = masters.get(pool.service_name) if isinstance(masters, dict) else None
            if state and manager.check_master_state(state, pool.service_name):
                where = f"{state['ip']}:{state['port']}"
                break
        if not where:
            if not answered:
                return "NoSentinel", f"no sentinel answers: {', '.join(errors)}"
            return "MasterNotFoundError", (f"no primary: the sentinels know none for service {pool.service_name!r}"
                           " (failover in progress?)")
    else:
        kw = client.connection_pool.connection_kwargs
        where = str(kw["path"]) if "path" in kw else f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}"
    try:
        await client.ping()
    except (RedisError, OSError) as e:
        named = " (the sentinels still name it: failover pending?)" if pool is not None else ""
        return type(e).__name__, f"primary {where} does not answer{named}: {type(e).__name__}: {e}"
    return None, f"primary {where}" + (f" (sentinel service {pool.service_name!r})" if pool is not None else "")


async def _describe_cluster(client: RedisCluster, slot_key: str) -> tuple[str | None, str]:
    """The primary holding the deployment's slot, as the client's map of slots says, and one PING to it
    (with no map yet, the cluster's nodes are asked for one first). A primary that does not answer is
    mid-failover until its replica is promoted; the failed PING, like any failed command, makes the
    client read the map again before its next command (the bus's reconnects read it too)."""
    slot = client.keyslot(slot_key)
    try:
        if not client.nodes_manager.slots_cache:      # never reached the cluster yet
            await client.initialize()
        node = client.nodes_manager.get_node_from_slot(slot)
    except (RedisError, OSError) as e:
        return type(e).__name__, f"no cluster map: the cluster's nodes could not be read ({type(e).__name__}: {e})"
    where = f"primary {node.host}:{node.port} (cluster slot {slot})"
    try:
        await client.execute_command("PING", target_nodes=node)
    except (RedisError, OSError) as e:
        return type(e).__name__, f"{where} does not answer (cluster failover pending?): {type(e).__name__}: {e}"
    try:
        info = await client.execute_command("CLUSTER INFO", target_nodes=node)
    except (RedisError, OSError) as e:
        return type(e).__name__, f"{where} answers but not CLUSTER INFO: {type(e).__name__}: {e}"
    state = info.get("cluster_state") if isinstance(info, dict) else None
    if state != "ok":
        return "ClusterDown", f"{where}: cluster_state is {state!r} (slots not all covered: failover pending?)"
    return None, where
