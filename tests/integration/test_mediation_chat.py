"""Mediation rooms: per-room seq without gaps or repeats, the subscribe seam, reconnects, re-sends, two nodes."""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import pytest

from handlers import ws
from handlers.context import MEDIATION
from testkit.client import Client


async def setup_case(base: Any) -> dict[str, Any]:
    """A mediated case with two parties, a mediator and an agency, all connected to `base`."""
    filer = await base.user("resident", name="Ann")
    case = (await filer.ok("case.open", category="labour", summary="unpaid wages",
                           other_parties=[{"name": "Boss"}]))["case"]
    other = await base.user("resident", name="Boss")
    await other.ok("case.join", join_code=case["join_code"])
    med = await base.user("mediator", name="Med")
    await med.ok("case.take", case_id=case["id"])
    agency = await base.user("agency", name="Labour Bureau")
    await med.ok("case.invite", case_id=case["id"], account_id=agency.account_id)
    return {"id": case["id"], "clients": [filer, other, med, agency]}


async def collect(c: Client, cid: str, room: str, upto: int, timeout: float = 20) -> list[dict[str, Any]]:
    """The chat.message pushes of that room, in arrival order, until seq `upto` has arrived."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not got or got[-1]["seq"] < upto:
        left = deadline - time.monotonic()
        assert left > 0, f"stalled at {[m['seq'] for m in got][-5:]}, waiting for {upto}"
        m = await c.push("chat.message", lambda p: p["message"]["case_id"] == cid and p["message"]["room"] == room,
                         timeout=left)
        got.append(m["message"])
    return got


def seqs(msgs: list[dict[str, Any]]) -> list[int]:
    return [m["seq"] for m in msgs]


async def send_many(c: Client, cid: str, n: int, tag: str, room: str = "joint", pause: float = 0.0
                    ) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        out.append((await c.ok("chat.send", case_id=cid, room=room, client_msg_id=f"{tag}-{i}",
                               body=f"{tag} {i}"))["message"])
        await asyncio.sleep(pause)
    return out


async def test_resent_client_msg_id_lands_once(hl):
    s = await setup_case(hl)
    filer = s["clients"][0]
    first = (await filer.ok("chat.send", case_id=s["id"], room="joint", client_msg_id="same", body="hello"))["message"]
    again = (await filer.ok("chat.send", case_id=s["id"], room="joint", client_msg_id="same", body="hello"))["message"]
    assert again == first
    # many re-sends racing each other (another connection of the same account too)
    twin = await hl.connect(await hl.login(filer.welcome["account"]["username"]))
    racing = await asyncio.gather(*[c.ok("chat.send", case_id=s["id"], room="joint", client_msg_id="race",
                                         body="once") for c in (filer, twin) * 5])
    assert len({r["message"]["seq"] for r in racing}) == 1 and racing[0]["message"]["seq"] == 2
    # the same id from another sender, or in another room, is another message
    other = s["clients"][1]
    assert (await other.ok("chat.send", case_id=s["id"], room="joint", client_msg_id="same",
                           body="mine"))["message"]["seq"] == 3
    caucus = f"caucus:{filer.account_id}"
    assert (await filer.ok("chat.send", case_id=s["id"], room=caucus, client_msg_id="same",
                           body="private"))["message"]["seq"] == 1
    conn = await asyncpg.connect(hl.database_url)
    try:
        rows = await conn.fetch("SELECT room, seq FROM case_messages ORDER BY room, seq")
        assert [(r["room"], r["seq"]) for r in rows] == [(caucus, 1), ("joint", 1), ("joint", 2), ("joint", 3)]
    finally:
        await conn.close()


async def test_subscribing_mid_stream_has_no_hole_and_no_duplicate_at_the_seam(hl):
    s = await setup_case(hl)
    cid, (filer, other, med, agency) = s["id"], s["clients"]
    await send_many(filer, cid, 5, "pre")
    writers = [asyncio.create_task(send_many(c, cid, 15, f"w{i}", pause=0.02))
               for i, c in enumerate((filer, other, med))]
    await asyncio.sleep(0.15)
    sub = await agency.ok("chat.subscribe", case_id=cid, room="joint", after_seq=2)
    backlog = sub["messages"]
    assert backlog and backlog[0]["seq"] == 3 and sub["has_more"] is False
    assert backlog[-1]["seq"] < 50, "the writers were done before the subscription: no seam tested"
    await asyncio.gather(*writers)
    live = await collect(agency, cid, "joint", 50)
    assert seqs(backlog + live) == list(range(3, 51))
    await agency.no_push("chat.message", wait=0.3)


async def test_reconnect_with_after_seq_mid_stream(hl):
    s = await setup_case(hl)
    cid, (filer, other, med, _agency) = s["id"], s["clients"]
    await other.ok("chat.subscribe", case_id=cid, room="joint")
    await send_many(filer, cid, 8, "a")
    seen = await collect(other, cid, "joint", 8)
    username = other.welcome["account"]["username"]
    await other.close()
    writer = asyncio.create_task(send_many(med, cid, 15, "b", pause=0.02))   # goes on while away and back
    await asyncio.sleep(0.1)
    back = await hl.connect(await hl.login(username))
    sub = await back.ok("chat.subscribe", case_id=cid, room="joint", after_seq=seen[-1]["seq"])
    await writer
    live = await collect(back, cid, "joint", 23) if (not sub["messages"] or sub["messages"][-1]["seq"] < 23) else []
    got = seen + sub["messages"] + live
    assert seqs(got) == list(range(1, 24))
    assert [m["body"] for m in got] == [f"a {i}" for i in range(8)] + [f"b {i}" for i in range(15)]
    # asking again from further back gives exactly that range once more
    again = await back.ok("chat.subscribe", case_id=cid, room="joint", after_seq=20)
    assert seqs(again["messages"]) == [21, 22, 23]
    await back.no_push("chat.message", wait=0.3)
    # after chat.unsubscribe the room is quiet for this connection
    assert (await back.ok("chat.unsubscribe", case_id=cid, room="joint"))["unsubscribed"] is True
    await med.ok("chat.send", case_id=cid, room="joint", client_msg_id="after", body="anyone?")
    await back.no_push("chat.message", wait=0.3)


async def test_a_lost_doorbell_is_filled_from_postgresql(hl):
    s = await setup_case(hl)
    cid, (filer, other, _, _) = s["id"], s["clients"]
    await other.ok("chat.subscribe", case_id=cid, room="joint")
    svc = hl.app[MEDIATION]
    real = svc.publish

    async def lossy(items: list[tuple[str, str]]) -> None:
        if any('"seq":2,' in p or '"seq":3,' in p for _, p in items):
            return                                  # the doorbells of seq 2 and 3 never ring
        await real(items)

    svc.publish = lossy
    try:
        await send_many(filer, cid, 4, "x")
        got = await collect(other, cid, "joint", 4)
        assert seqs(got) == [1, 2, 3, 4] and [m["body"] for m in got] == ["x 0", "x 1", "x 2", "x 3"]
    finally:
        svc.publish = real


async def test_redis_resync_catches_up_followed_rooms(hl):
    s = await setup_case(hl)
    cid, (filer, other, _, _) = s["id"], s["clients"]
    await other.ok("chat.subscribe", case_id=cid, room="joint")
    svc = hl.app[MEDIATION]
    real = svc.publish

    async def down(items: list[tuple[str, str]]) -> None:
        return None

    svc.publish = down
    try:
        await send_many(filer, cid, 3, "dark")
    finally:
        svc.publish = real
    await other.no_push("chat.message", wait=0.2)
    await ws.resync(hl.app)            # what the bus runs after reconnecting to Redis
    assert seqs(await collect(other, cid, "joint", 3)) == [1, 2, 3]
    await other.push("case.updated", lambda m: m["case"]["id"] == cid)


@pytest.mark.cluster
async def test_two_nodes_writing_one_room_concurrently(cluster):
    a, b = await cluster.start_node(), await cluster.start_node()
    s = await setup_case(a)
    cid = s["id"]
    on_a = s["clients"]
    on_b = [await b.connect(await b.login(c.welcome["account"]["username"])) for c in on_a]
    subscribers = on_a + on_b
    for c in subscribers:
        await c.ok("chat.subscribe", case_id=cid, room="joint")
    per = 12
    await asyncio.gather(*[send_many(c, cid, per, f"n{i}") for i, c in enumerate(subscribers)])
    total = per * len(subscribers)
    views = await asyncio.gather(*[collect(c, cid, "joint", total) for c in subscribers])
    order = [(m["seq"], m["client_msg_id"], m["sender"]["id"]) for m in views[0]]
    assert [seq for seq, _, _ in order] == list(range(1, total + 1))
    for v in views[1:]:
        assert [(m["seq"], m["client_msg_id"], m["sender"]["id"]) for m in v] == order
    for c in subscribers:
        await c.no_push("chat.message", wait=0.05)
    # a late subscriber on either node reads the same history from PostgreSQL
    late = await b.connect(await b.login(on_a[2].welcome["account"]["username"]))
    hist = (await late.ok("chat.subscribe", case_id=cid, room="joint"))["messages"]
    assert [(m["seq"], m["client_msg_id"], m["sender"]["id"]) for m in hist] == order
    conn = await asyncpg.connect(cluster.database_url)
    try:
        row = await conn.fetchrow("SELECT count(*), min(seq), max(seq) FROM case_messages WHERE case_id = $1",
                                  uuid.UUID(cid))
        assert row is not None
        n, lo, hi = row
        assert (n, lo, hi) == (total, 1, total)
    finally:
        await conn.close()


@pytest.mark.cluster
async def test_a_nodes_memory_of_a_case_never_outlives_a_change_made_on_another_node(cluster):
    """Chat checks the rules against the case as the node holds it, and writes only at that version:
    a join elsewhere lets the new party in, a close elsewhere shuts the room, on the very next message."""
    a, b = await cluster.start_node(), await cluster.start_node()
    filer = await a.user("resident", name="Ann")
    case = (await filer.ok("case.open", category="neighbour", summary="noise",
                           other_parties=[{"name": "Bo"}, {"name": "Cy"}]))["case"]
    cid = case["id"]
    codes = {p["name"]: p["join_code"] for p in case["invited"]}
    bo = await a.user("resident", name="Bo")
    await bo.ok("case.join", join_code=codes["Bo"])
    med = await a.user("mediator", name="Med")
    await med.ok("case.take", case_id=cid)
    med_b = await b.connect(await b.login(med.welcome["account"]["username"]))
    filer_b = await b.connect(await b.login(filer.welcome["account"]["username"]))
    await med_b.ok("chat.send", case_id=cid, room="joint", client_msg_id="m1", body="welcome")   # b holds the case
    cy = await a.user("resident", name="Cy")
    await cy.ok("case.join", join_code=codes["Cy"])                                             # joined on a
    cy_b = await b.connect(await b.login(cy.welcome["account"]["username"]))
    sent = await cy_b.ok("chat.send", case_id=cid, room="joint", client_msg_id="c1", body="I am here")
    assert sent["message"]["sender"]["name"] == "Cy"
    await med.ok("case.close", case_id=cid, outcome="failed")                                   # closed on a
    await filer_b.error("chat.send", "conflict", case_id=cid, room="joint", client_msg_id="f1", body="too late")
    conn = await asyncpg.connect(cluster.database_url)
    try:
        rows = await conn.fetch("SELECT seq, client_msg_id FROM case_messages WHERE case_id = $1 ORDER BY seq",
                                uuid.UUID(cid))
        assert [(r["seq"], r["client_msg_id"]) for r in rows] == [(1, "m1"), (2, "c1")]
    finally:
        await conn.close()


async def test_concurrent_messages_share_statements_and_keep_every_rooms_seq(hl):
    """ChatBatch: messages of concurrent senders go to PostgreSQL together; each room's seq stays gap-free
    in submission order; a re-sent id inside a batch, and a message checked against an old version of
    its case, affect no other message of the batch."""
    s = await setup_case(hl)
    cid = s["id"]
    svc = hl.app[MEDIATION]
    filer, other, med, agency = s["clients"]
    version = (await filer.ok("cases.mine"))["cases"][0]["version"]

    def item(sender: Client, room: str, cm: str, body: str, v: int = version) -> dict[str, Any]:
        return dict(case_id=cid, version=v, room=room, sender_id=sender.account_id, sender_name="x",
                    sender_role="resident", client_msg_id=cm, body=body, via="ws")

    rooms = ["joint", f"caucus:{filer.account_id}", f"caucus:{other.account_id}"]
    items = [item(filer if k % 2 else other, rooms[k % 3], f"m{k}", f"body {k}") for k in range(60)]
    before = svc.chat.batches
    results = await asyncio.gather(*[svc.chat.send(it) for it in items])
    assert svc.chat.batches - before < len(items)              # shared statements
    by_room: dict[str, list[tuple[int, str]]] = {}
    for it, res in zip(items, results):
        assert res is not None and res[1] is True
        by_room.setdefault(it["room"], []).append((res[0]["seq"], it["client_msg_id"]))
    for room, got in by_room.items():
        assert [seq for seq, _ in got] == list(range(1, len(got) + 1)), room   # submission order, no gap
    # one batch holding a new message, a message sent twice, a re-send of m1 and a stale one
    more = [item(filer, "joint", "n1", "new"), item(other, "joint", "twice", "once"),
            item(other, "joint", "twice", "twice"), item(filer, rooms[1], "m1", "a re-send of m1"),
            item(other, "joint", "stale", "checked against an old version", v=version - 1)]
    new, once, twice, resent, stale = await asyncio.gather(*[svc.chat.send(it) for it in more])
    assert new[1] is True and new[0]["seq"] == len(by_room["joint"]) + 1
    assert {once[1], twice[1]} == {True, False} and once[0]["seq"] == twice[0]["seq"]
    assert resent == (results[1][0], False)
    assert stale is None
    conn = await asyncpg.connect(hl.database_url)
    try:
        n = await conn.fetchval("SELECT count(*) FROM case_messages WHERE case_id = $1", uuid.UUID(cid))
    finally:
        await conn.close()
    assert n == 62
