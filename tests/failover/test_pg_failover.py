"""PostgreSQL fails over under traffic (issue 17): two `helpline serve` nodes on a primary and a synchronous
standby (the multi-host URL, the standby listed first); residents ask for help and responders accept, a case's
parties and mediator chat; the primary is killed -9; a few seconds later the standby is promoted (as an
operator or Patroni would). Clients re-send what was not acknowledged with the same client id.

What must hold: every help request and chat message acknowledged at any time is in the promoted database
exactly once (synchronous replication: an acknowledged commit was flushed on the standby too); the chat's
members end with every message (pushed, or re-read on chat.gap); /readyz said in words that no host took
writes during the gap and was ready after; a new help request was acknowledged and offered within 15 s of
the promotion."""
from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from infra import db
from testkit import stack as stack_mod
from testkit.accounts import create_accounts, tokens_for
from testkit.client import Client, http
from testkit.geo import near
from testkit.nodes import Cluster, NodeProcess
from testkit.pgpair import PgPair, create_database
from tests.integration.test_mediation_chat import setup_case

pytestmark = [pytest.mark.failover, pytest.mark.cluster]

RESUME_WITHIN_S = 15.0


@pytest.fixture
async def pair() -> AsyncIterator[PgPair]:
    p = await asyncio.to_thread(lambda: PgPair(sync=True).start())
    try:
        yield p
    finally:
        await asyncio.to_thread(p.stop)


@pytest.fixture
async def pg_cluster(stack: stack_mod.Stack, pair: PgPair) -> AsyncIterator[Cluster]:
    await create_database(pair, "helpline")
    s = stack_mod.Stack(admin_url=pair.primary_url(), base_url=pair.base_url(), database="helpline",
                        redis_url=stack.redis_url, prefix=stack.prefix)
    conn = await db.connect(s.database_url)
    try:
        await db.migrate(conn)
    finally:
        await conn.close()
    c = Cluster(s)
    try:
        yield c
    finally:
        await c.stop()


class Acked:
    """What the clients were told was done: client id → (what the answer named, when)."""

    def __init__(self) -> None:
        self.help: dict[str, tuple[str, float]] = {}       # request_id → incident id
        self.chat: dict[str, tuple[int, float]] = {}       # client_msg_id → seq
        self.unavailable = 0                               # answers `unavailable` (re-sent)
        self.timeouts = 0                                  # no answer in time (re-sent)


async def until_acked(c: Client, acked: Acked, type_: str, **fields: Any) -> dict[str, Any]:
    """Send, and re-send with the same fields (the same client id) until the answer is ok."""
    deadline = time.monotonic() + 60
    while True:
        assert time.monotonic() < deadline, f"{type_} {fields} never acknowledged"
        try:
            ans = await c.call(type_, timeout=5, **fields)
        except TimeoutError:
            acked.timeouts += 1
            continue
        if ans["type"] == "ok":
            return ans
        # an outage (or the re-sends spent the connection's bucket: nothing was done), never a refusal
        assert ans.get("code") in ("unavailable", "rate_limited"), ans
        acked.unavailable += 1
        await asyncio.sleep(1.0 if ans["code"] == "unavailable" else 2.0)


async def press(c: Client, rid: str, acked: Acked, k: int) -> None:
    ans = await until_acked(c, acked, "help.request", request_id=rid, category="medical", **near(0.0002 * (k % 20)))
    acked.help[rid] = (ans["incident"]["id"], time.monotonic())


async def resident_traffic(residents: list[Client], acked: Acked, stop: asyncio.Event) -> None:
    """A press every 0.25 s, each by the next resident (one account presses rarely: the limits per account)."""
    presses = []
    k = 0
    while not stop.is_set():
        presses.append(asyncio.create_task(press(residents[k % len(residents)], f"res-{k}", acked, k)))
        k += 1
        await asyncio.sleep(0.25)
    await asyncio.gather(*presses)


async def chat_traffic(c: Client, case_id: str, tag: str, acked: Acked, stop: asyncio.Event) -> None:
    k = 0
    while not stop.is_set():
        mid = f"{tag}-{k}"
        ans = await until_acked(c, acked, "chat.send", case_id=case_id, room="joint", client_msg_id=mid,
                                body=f"{tag} says {k}")
        acked.chat[mid] = (ans["message"]["seq"], time.monotonic())
        k += 1
        await asyncio.sleep(0.3)


async def auto_accept(r: Client) -> None:
    """A responder taking every offer and finishing the job (errors during the outage: the offer lapses)."""
    while True:
        offer = await r.push("offer", timeout=3600)
        with contextlib.suppress(Exception):
            ans = await r.call("offer.accept", offer_id=offer["offer_id"], timeout=5)
            if ans["type"] == "ok":
                for step in ("en_route", "on_scene", "resolved"):
                    await r.call("incident.progress", incident_id=ans["incident"]["id"], status=step, timeout=5)


async def watch_ready(nodes: list[NodeProcess], seen: list[tuple[float, str, int, Any]],
                      stop: asyncio.Event) -> None:
    while not stop.is_set():
        for n in nodes:
            with contextlib.suppress(Exception):
                st, body = await http("GET", n.base + "/readyz")
                seen.append((time.monotonic(), n.name, st, body))
        await asyncio.sleep(0.2)


async def chat_view(c: Client, case_id: str) -> dict[int, str]:
    """What a member holds: the room's pushes, and on a chat.gap (a hole the node could not fill while no host
    took writes) what `chat.subscribe` from its last contiguous seq returns, as a client does."""
    got: dict[int, str] = {}
    for p in c.pushes:
        if p["type"] == "chat.message" and p["message"]["case_id"] == case_id:
            got[p["message"]["seq"]] = p["message"]["client_msg_id"]
    if any(p["type"] == "chat.gap" for p in c.pushes) or sorted(got) != list(range(1, len(got) + 1)):
        last = 0
        while last + 1 in got:
            last += 1
        while True:
            ans = await c.ok("chat.subscribe", case_id=case_id, room="joint", after_seq=last)
            for m in ans["messages"]:
                got[m["seq"]] = m["client_msg_id"]
            if not ans["has_more"] or not ans["messages"]:
                break
            last = ans["messages"][-1]["seq"]
    return got


async def test_primary_killed_standby_promoted_nothing_acknowledged_lost(pair: PgPair, pg_cluster: Cluster) -> None:
    a, b = await pg_cluster.start_node(), await pg_cluster.start_node()
    a.name, b.name = "a", "b"
    medics = []
    for i in range(3):
        r = await b.user("responder", skills=["medical"])
        await r.ok("duty.start", **near(0.001 * (i + 1)))
        medics.append(r)
    fire = await a.user("responder", skills=["fire"])       # the probe's: only it takes fire incidents
    await fire.ok("duty.start", **near(0.002))
    acceptors = [asyncio.create_task(auto_accept(r)) for r in medics]

    case = await setup_case(a)
    cid, members = case["id"], case["clients"]
    for c in members:
        await c.ok("chat.subscribe", case_id=cid, room="joint")
    conn = await db.connect(pg_cluster.database_url)
    try:
        ids = await create_accounts(conn, "resident", 40, f"fo{uuid.uuid4().hex[:6]}")
    finally:
        await conn.close()
    residents = [await (a if i % 2 else b).connect(t) for i, t in enumerate(tokens_for(ids, "resident"))]

    acked, stop = Acked(), asyncio.Event()
    seen: list[tuple[float, str, int, Any]] = []
    watcher = asyncio.create_task(watch_ready([a, b], seen, stop))
    traffic = [asyncio.create_task(resident_traffic(residents[1:], acked, stop))]
    traffic += [asyncio.create_task(chat_traffic(c, cid, f"m{i}", acked, stop)) for i, c in enumerate(members[:3])]
    await asyncio.sleep(3)
    before = (len(acked.help), len(acked.chat))
    assert before[0] > 6 and before[1] > 3, before

    await asyncio.to_thread(pair.kill_primary)
    t_kill = time.monotonic()
    await asyncio.sleep(3)                 # the failover manager's detection time
    await asyncio.to_thread(pair.promote)
    t_promote = time.monotonic()

    # service resumed: a new help request is acknowledged and offered (to the only fire responder)
    probe = residents[0]
    probe_rid = f"probe-{uuid.uuid4().hex[:6]}"
    ans = await until_acked(probe, acked, "help.request", request_id=probe_rid, category="fire", **near(0.002))
    t_ack = time.monotonic()
    offer = await fire.push("offer", lambda m: m["incident"]["id"] == ans["incident"]["id"], timeout=RESUME_WITHIN_S)
    t_offer = time.monotonic()
    assert t_offer - t_promote <= RESUME_WITHIN_S, (t_ack - t_promote, t_offer - t_promote)
    await fire.ok("offer.accept", offer_id=offer["offer_id"])

    await asyncio.sleep(3)                 # traffic after the failover
    stop.set()
    await asyncio.gather(*traffic)
    await watcher
    after = (len(acked.help), len(acked.chat))
    assert after[0] > before[0] and after[1] > before[1], (before, after)
    assert acked.unavailable + acked.timeouts > 0            # the outage was felt (and re-sent through)

    # /readyz: unavailable in words while no host took writes, ready after, on both nodes
    gap = [(name, body) for t, name, st, body in seen if t_kill + 0.5 < t < t_promote and st == 503]
    assert {name for name, _ in gap} == {"a", "b"}, seen[-10:]
    hosts = f"127.0.0.1:{pair.standby_port}, 127.0.0.1:{pair.primary_port}"
    for _, body in gap:
        assert body["status"] == "unavailable" and set(body["failed"]) == {"postgres"}, body
        assert body["failed"]["postgres"].startswith(f"no read-write host among {hosts}"), body
    for n in (a, b):
        st, body = await http("GET", n.base + "/readyz")
        assert st == 200 and body["status"] == "ready" and "failed" not in body, body

    # the promoted standby holds every acknowledged request and message exactly once
    conn = await asyncpg.connect(pair.standby_url("helpline"))
    try:
        assert await conn.fetchval("SELECT pg_is_in_recovery()") is False
        rows = await conn.fetch("SELECT request_id, id::text AS id FROM incidents")
        msgs = await conn.fetch("SELECT client_msg_id, seq FROM case_messages WHERE case_id = $1 AND room = 'joint'",
                                uuid.UUID(cid))
    finally:
        await conn.close()
    in_db: dict[str, list[str]] = {}
    for row in rows:
        in_db.setdefault(row["request_id"], []).append(row["id"])
    for rid, (iid, _) in acked.help.items():
        assert in_db.get(rid) == [iid], (rid, iid, in_db.get(rid))
    assert in_db.get(probe_rid) == [ans["incident"]["id"]]
    assert set(in_db) == set(acked.help) | {probe_rid}, set(in_db) ^ set(acked.help)
    chat_db: dict[str, list[int]] = {}
    for m in msgs:
        chat_db.setdefault(m["client_msg_id"], []).append(m["seq"])
    for mid, (seq, _) in acked.chat.items():
        assert chat_db.get(mid) == [seq], (mid, seq, chat_db.get(mid))
    assert set(chat_db) == set(acked.chat), set(chat_db) ^ set(acked.chat)
    assert sorted(s for v in chat_db.values() for s in v) == list(range(1, len(msgs) + 1))

    # clients resync: every member of the room ends with every message, in the database's order
    await asyncio.sleep(1)
    want = {m["seq"]: m["client_msg_id"] for m in msgs}
    for c in members:
        assert await chat_view(c, cid) == want, c.account_id

    for t in acceptors:
        t.cancel()
    for n in (a, b):
        with open(n.log_path, errors="replace") as f:
            text = f.read()
        assert "Traceback" not in text, n.tail(60)


async def test_the_pool_drops_connections_to_the_dead_primary_and_reconnects_to_the_promoted_standby(pair: PgPair
                                                                                                  ) -> None:
    """asyncpg's pool, checked rather than assumed: its connections to the killed primary are discarded and the
    next acquire makes a new one with the same arguments (the multi-host URL, read-write), which finds the
    promoted standby; before the promotion, an acquire fails at once in words (no hang)."""
    await create_database(pair, "helpline")
    url = pair.url("helpline")
    pool = await db.create_pool(url, 2, 2)
    try:
        for _ in range(2):
            async with pool.acquire() as c:
                assert await c.fetchval("SHOW port") == str(pair.primary_port)
        await asyncio.to_thread(pair.kill_primary)
        t0 = time.monotonic()
        with pytest.raises(db.UNREACHABLE) as e:
            async with pool.acquire() as c:
                await c.fetchval("SELECT 1")
        assert time.monotonic() - t0 < db.CONNECT_TIMEOUT_S
        assert db.unavailable(db.hosts_text(url), e.value).startswith(
            f"no read-write host among 127.0.0.1:{pair.standby_port}, 127.0.0.1:{pair.primary_port} (")
        await asyncio.to_thread(pair.promote)
        ports = set()
        for _ in range(2):                  # both of the pool's connections, one after the other
            async with pool.acquire() as c1, pool.acquire() as c2:
                ports |= {await c1.fetchval("SHOW port"), await c2.fetchval("SHOW port")}
                assert await c1.fetchval("SELECT pg_is_in_recovery()") is False
                await c1.execute("CREATE TABLE IF NOT EXISTS after_failover (x int)")
        assert ports == {str(pair.standby_port)}
        listen = await db.connect_plain(url)     # the SMS outbox's LISTEN connection follows the same rule
        try:
            assert await listen.fetchval("SHOW port") == str(pair.standby_port)
        finally:
            await listen.close()
    finally:
        await pool.close()
