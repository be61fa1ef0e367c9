"""The admin console's routes (issue 21): accounts, suspension, reset codes, sessions, the audit log."""
from __future__ import annotations

import asyncio
import csv
import io
import json
from typing import Any

import aiohttp
import asyncpg

from testkit.accounts import PASSWORD
from testkit.client import http

GRID = "D01"


async def sql(hl: Any, query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(hl.database_url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def add_grid(hl: Any, code: str = GRID) -> None:
    await sql(hl, "INSERT INTO grids (code, name, level, parent, path, geometry, bbox) VALUES"
              " ($1, $1, 'district', NULL, ARRAY[$1], '{\"type\":\"Polygon\",\"coordinates\":[]}'::jsonb,"
              " box(point(0,0), point(1,1)))", code)


async def admin(hl: Any, username: str = "root1") -> str:
    await hl.add_user(username, "admin", name="Root")
    token: str = await hl.login(username)
    return token


async def audit_rows(hl: Any, action: str) -> list[Any]:
    return list(await sql(hl, "SELECT l.*, a.username FROM audit_log l LEFT JOIN accounts a ON a.id = l.actor_id"
                              " WHERE action = $1 ORDER BY l.id", action))


async def test_create_find_and_edit_accounts_with_their_audit_entries(hl):
    token = await admin(hl)
    await add_grid(hl)
    st, body = await http("POST", hl.base + "/api/admin/accounts", token=token, json={
        "username": "medic7", "role": "responder", "name": "Li Wei", "phone": "13800138007",
        "skills": ["medical", "fire"], "grids": [GRID], "password": "S3cure-pass"})
    assert st == 201, body
    acc = body["account"]
    assert (acc["username"], acc["role"], acc["phone"], acc["skills"], acc["grids"], acc["suspended"]) == \
        ("medic7", "responder", "+8613800138007", ["fire", "medical"], [GRID], False)
    assert "reset" not in body and "password_hash" not in acc
    await hl.login("medic7", "S3cure-pass")

    # find: by text in the username, the name or the phone; by role, grid, suspension
    for q in ("dic7", "li wei", "138007"):
        st, found = await http("GET", hl.base + f"/api/admin/accounts?q={q}", token=token)
        assert st == 200 and [a["username"] for a in found["accounts"]] == ["medic7"], q
    st, found = await http("GET", hl.base + "/api/admin/accounts?role=admin", token=token)
    assert [a["username"] for a in found["accounts"]] == ["root1"]
    st, found = await http("GET", hl.base + f"/api/admin/accounts?grid={GRID}", token=token)
    assert [a["username"] for a in found["accounts"]] == ["medic7"]
    st, found = await http("GET", hl.base + "/api/admin/accounts?suspended=true", token=token)
    assert found["accounts"] == []

    # edit: rename, new name and phone, fewer skills, no grids; a role change ends the sessions
    st, body = await http("POST", hl.base + f"/api/admin/accounts/{acc['id']}", token=token, json={
        "username": "medic8", "name": "Li Wei (nights)", "phone": "", "skills": ["medical"], "grids": []})
    assert st == 200, body
    got = body["account"]
    assert (got["username"], got["name"], got["phone"], got["skills"], got["grids"]) == \
        ("medic8", "Li Wei (nights)", None, ["medical"], [])
    assert body["sessions_ended"] is False
    st, body = await http("POST", hl.base + f"/api/admin/accounts/{acc['id']}", token=token,
                          json={"role": "dispatcher", "supervisor": True})
    assert st == 200 and body["account"]["role"] == "dispatcher" and body["account"]["supervisor"]
    assert body["sessions_ended"] is True

    created = await audit_rows(hl, "account.create")
    assert [(r["username"], r["actor_role"], r["subject_id"], r["address"]) for r in created] == \
        [("root1", "admin", acc["id"], "127.0.0.1")]
    edits = await audit_rows(hl, "account.edit")
    assert [json.loads(r["detail"])["fields"] for r in edits] == \
        [["username", "name", "phone", "skills", "grids"], ["role", "supervisor"]]
    assert all(r["username"] == "root1" for r in edits)
    assert len(await audit_rows(hl, "accounts.list")) == 6      # the finds are reads, audited too


async def test_bad_input_names_the_field_and_writes_nothing(hl):
    token = await admin(hl)
    await add_grid(hl)
    await hl.add_user("taken1", "mediator", phone="+8613800138001")
    base = {"role": "mediator", "password": "S3cure-pass"}
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"username": "taken1"}, 409, "username"),
        ({"username": "bad name!"}, 400, "username"),
        ({"username": "new1", "phone": "12"}, 400, "phone"),
        ({"username": "new1", "phone": "+86 138 0013 8001"}, 409, "phone"),
        ({"username": "new1", "grids": ["NOPE"]}, 400, "grids"),
        ({"username": "new1", "role": "pilot"}, 400, "role"),
        ({"username": "new1", "role": "resident"}, 400, "role"),
        ({"username": "new1", "name": "138 0013 8001"}, 400, "name"),
        ({"username": "new1", "skills": ["medical"]}, 400, "skills"),
        ({"username": "new1", "password": "short"}, 400, "password"),
        ({"username": "new1", "area_limited": True}, 400, "area_limited"),
        ({"username": "new1", "agency_type": "court"}, 400, "agency_type"),       # a mediator has no kind
        ({"username": "new1", "role": "agency", "agency_type": "embassy"}, 400, "agency_type"),
    ]
    for fields, status, field in cases:
        st, body = await http("POST", hl.base + "/api/admin/accounts", token=token, json={**base, **fields})
        assert st == status and field in body["error"]["message"], (fields, body)
    # nothing half-written: the grid check comes after the account row, in the same transaction
    assert [r["username"] for r in await sql(hl, "SELECT username FROM accounts WHERE username = 'new1'")] == []
    st, body = await http("POST", hl.base + "/api/admin/accounts", token=token, json={"username": "x1"})
    assert st == 400 and "role" in body["error"]["message"]

    taken = (await sql(hl, "SELECT id FROM accounts WHERE username = 'taken1'"))[0]["id"]
    await hl.add_user("other1", "mediator")
    other = (await sql(hl, "SELECT id FROM accounts WHERE username = 'other1'"))[0]["id"]
    edits: list[tuple[dict[str, Any], int, str]] = [
        ({"username": "taken1"}, 409, "username"), ({"phone": "+8613800138001"}, 409, "phone"),
        ({"skills": ["medical"]}, 400, "skills"), ({"grids": ["NOPE"]}, 400, "grids"),
        ({"name": "Mo", "grids": ["NOPE"]}, 400, "grids")]
    for fields, status, field in edits:
        st, body = await http("POST", hl.base + f"/api/admin/accounts/{other}", token=token, json=fields)
        assert st == status and field in body["error"]["message"], (fields, body)
    row = (await sql(hl, "SELECT username, name, phone FROM accounts WHERE id = $1", other))[0]
    assert tuple(row) == ("other1", "other1", None)          # the refused edit with a good name left no trace
    st, body = await http("POST", hl.base + "/api/admin/accounts/not-an-id/suspend", token=token)
    assert st == 404 and "account" in body["error"]["message"]
    st, body = await http("GET", hl.base + "/api/admin/accounts?suspended=maybe", token=token)
    assert st == 400 and "suspended" in body["error"]["message"]
    st, body = await http("GET", hl.base + "/api/admin/accounts?grid=NOPE", token=token)
    assert st == 400 and "grid" in body["error"]["message"]
    assert taken != other


async def test_an_agency_account_has_its_kind(hl):
    token = await admin(hl)
    st, body = await http("POST", hl.base + "/api/admin/accounts", token=token, json={
        "username": "court1", "role": "agency", "name": "District court", "password": "S3cure-pass",
        "agency_type": "court"})
    assert st == 201 and body["account"]["agency_type"] == "court", body
    aid = body["account"]["id"]
    st, body = await http("POST", hl.base + f"/api/admin/accounts/{aid}", token=token,
                          json={"agency_type": "justice"})
    assert st == 200 and body["account"]["agency_type"] == "justice", body
    st, body = await http("POST", hl.base + "/api/admin/accounts", token=token, json={
        "username": "body2", "role": "agency", "password": "S3cure-pass"})
    assert st == 201 and body["account"]["agency_type"] == "other"          # no kind given: other


async def test_the_last_active_admin_cannot_be_suspended_or_demoted(hl):
    token = await admin(hl)
    me = (await sql(hl, "SELECT id FROM accounts WHERE username = 'root1'"))[0]["id"]
    for path, body in ((f"/api/admin/accounts/{me}/suspend", None), (f"/api/admin/accounts/{me}", {"role": "clerk"})):
        st, ans = await http("POST", hl.base + path, token=token, json=body)
        assert st == 409 and ans["error"]["code"] == "conflict" and "last active admin" in ans["error"]["message"]
    # a second admin: now either may go, but not both
    await hl.add_user("root2", "admin")
    other = (await sql(hl, "SELECT id FROM accounts WHERE username = 'root2'"))[0]["id"]
    st, _ = await http("POST", hl.base + f"/api/admin/accounts/{other}/suspend", token=token)
    assert st == 200
    st, ans = await http("POST", hl.base + f"/api/admin/accounts/{me}", token=token, json={"role": "dispatcher"})
    assert st == 409
    assert [r["role"] for r in await sql(hl, "SELECT role FROM accounts WHERE id = $1", me)] == ["admin"]
    # a suspended admin does not count; reinstated, it does again
    st, _ = await http("POST", hl.base + f"/api/admin/accounts/{other}/reinstate", token=token)
    assert st == 200
    st, ans = await http("POST", hl.base + f"/api/admin/accounts/{me}", token=token, json={"role": "dispatcher"})
    assert st == 200 and ans["account"]["role"] == "dispatcher"
    assert [r["subject_id"] for r in await audit_rows(hl, "account.suspend")] == [str(other)]
    assert [r["subject_id"] for r in await audit_rows(hl, "account.reinstate")] == [str(other)]


async def test_suspension_closes_the_accounts_sockets_at_once_and_refuses_login(hl):
    token = await admin(hl)
    await hl.add_user("disp9", "dispatcher")
    disp = await hl.connect(await hl.login("disp9"))
    await disp.ok("queue.watch")
    target = disp.account_id
    st, body = await http("POST", hl.base + f"/api/admin/accounts/{target}/suspend", token=token)
    assert st == 200 and body["account"]["suspended"] is True
    await asyncio.wait_for(disp.reader, 5)
    assert disp.close_code == 1008
    st, _ = await http("POST", hl.base + "/api/auth/login", json={"username": "disp9", "password": PASSWORD})
    assert st == 401
    st, found = await http("GET", hl.base + "/api/admin/accounts?suspended=true", token=token)
    assert [a["username"] for a in found["accounts"]] == ["disp9"]
    st, _ = await http("POST", hl.base + f"/api/admin/accounts/{target}/reinstate", token=token)
    assert st == 200
    await hl.login("disp9")


async def test_sessions_are_listed_across_their_connections_and_ended_one_or_all(hl):
    token = await admin(hl)
    await hl.add_user("med5", "mediator")
    first = await hl.connect(await hl.login("med5"))
    second = await hl.connect(await hl.login("med5"))
    target = first.account_id
    st, body = await http("GET", hl.base + f"/api/admin/accounts/{target}/sessions", token=token)
    assert st == 200
    sessions = body["sessions"]
    assert len(sessions) == 2
    assert all(s["address"] == "127.0.0.1" and s["node"] and s["since"] for s in sessions)
    assert "token_id" not in sessions[0]

    # end one: that token's socket closes, the other stays
    st, body = await http("POST", hl.base + f"/api/admin/accounts/{target}/sessions/end", token=token,
                          json={"session": sessions[0]["id"]})
    assert st == 200 and body["ended"] == [sessions[0]["id"]]
    await asyncio.wait_for(first.reader, 5)
    assert first.close_code == 1008
    await second.ok("cases.watch")
    st, body = await http("GET", hl.base + f"/api/admin/accounts/{target}/sessions", token=token)
    assert [s["id"] for s in body["sessions"]] == [sessions[1]["id"]]
    st, body = await http("POST", hl.base + f"/api/admin/accounts/{target}/sessions/end", token=token,
                          json={"session": sessions[0]["id"]})
    assert st == 404 and "session" in body["error"]["message"]

    # end all: the rest closes, and its token is no good any more
    st, body = await http("POST", hl.base + f"/api/admin/accounts/{target}/sessions/end", token=token, json={})
    assert st == 200 and body["ended"] == [sessions[1]["id"]]
    await asyncio.wait_for(second.reader, 5)
    assert second.close_code == 1008
    ends = await audit_rows(hl, "sessions.end")
    assert [r["username"] for r in ends] == ["root1", "root1"]
    assert len(await audit_rows(hl, "sessions.read")) == 2


async def test_a_reset_code_sets_a_password_once_and_expires(hl):
    token = await admin(hl)
    # an account made without a password comes with its first code
    st, body = await http("POST", hl.base + "/api/admin/accounts", token=token,
                          json={"username": "clerk3", "role": "clerk", "name": "Front desk"})
    assert st == 201 and body["reset"]["code"] and body["reset"]["expires_at"]
    code = body["reset"]["code"]
    account_id = body["account"]["id"]
    stored = await sql(hl, "SELECT code_hash FROM password_resets WHERE account_id = $1", account_id)
    assert len(stored) == 1 and code not in stored[0]["code_hash"]       # only a hash is kept

    reset = hl.base + "/api/auth/reset"
    st, body = await http("POST", reset, json={"username": "clerk3", "code": code, "password": "short"})
    assert st == 400 and "password" in body["error"]["message"]
    st, _ = await http("POST", reset, json={"username": "clerk3", "code": code.lower().replace("-", " "),
                                            "password": "New-pass-1"})
    assert st == 204
    await hl.login("clerk3", "New-pass-1")
    st, body = await http("POST", reset, json={"username": "clerk3", "code": code, "password": "Other-pass-2"})
    assert st == 401                                                       # used once
    st, body = await http("POST", reset, json={"username": "clerk3", "code": "12", "password": "Other-pass-2"})
    assert st == 400 and "code" in body["error"]["message"]

    # a code the admin issues later: shown once, the earlier sessions end when it is used; expired: refused
    clerk = await hl.connect(await hl.login("clerk3", "New-pass-1"))
    st, body = await http("POST", hl.base + f"/api/admin/accounts/{account_id}/reset", token=token)
    assert st == 200
    second = body["code"]
    await sql(hl, "UPDATE password_resets SET expires_at = now() - interval '1 second' WHERE account_id = $1",
              account_id)
    st, _ = await http("POST", reset, json={"username": "clerk3", "code": second, "password": "Other-pass-2"})
    assert st == 401
    st, body = await http("POST", hl.base + f"/api/admin/accounts/{account_id}/reset", token=token)
    third = body["code"]
    st, _ = await http("POST", reset, json={"username": "clerk3", "code": third, "password": "Other-pass-2"})
    assert st == 204
    await asyncio.wait_for(clerk.reader, 5)
    assert clerk.close_code == 1008
    await hl.login("clerk3", "Other-pass-2")
    assert [r["subject_id"] for r in await audit_rows(hl, "account.reset_code")] == [account_id, account_id]
    used = await audit_rows(hl, "password.reset")
    assert [r["username"] for r in used] == ["clerk3", "clerk3"]
    assert all(code not in r["detail"] for r in await audit_rows(hl, "account.create"))


async def test_the_audit_log_read_by_filters_and_pages_and_as_csv(hl):
    token = await admin(hl)
    await hl.add_user("disp2", "dispatcher", name="Zhang 张")
    disp_id = (await sql(hl, "SELECT id FROM accounts WHERE username = 'disp2'"))[0]["id"]
    for _ in range(3):
        await http("GET", hl.base + f"/api/admin/accounts/{disp_id}", token=token)
    st, body = await http("GET", hl.base + f"/api/admin/audit?subject=account:{disp_id}&limit=2", token=token)
    assert st == 200 and len(body["entries"]) == 2 and body["next_after"]
    assert {(e["actor"], e["action"], e["subject_id"], e["subject_name"], e["address"]) for e in body["entries"]} == \
        {("root1", "account.read", str(disp_id), "disp2", "127.0.0.1")}
    st, more = await http("GET", hl.base + f"/api/admin/audit?subject=account:{disp_id}&limit=2"
                          f"&after={body['next_after']}", token=token)
    assert len(more["entries"]) == 1 and more["next_after"] is None
    st, body = await http("GET", hl.base + "/api/admin/audit?actor=disp2", token=token)
    assert body["entries"] == []
    st, by_name = await http("GET", hl.base + "/api/admin/audit?subject=account:disp2", token=token)
    assert [e["subject_name"] for e in by_name["entries"]] == ["disp2"] * 3
    st, body = await http("GET", hl.base + "/api/admin/audit?subject=account:nobody", token=token)
    assert st == 404 and "subject" in body["error"]["message"]
    st, body = await http("GET", hl.base + "/api/admin/audit?since=2999-01-01", token=token)
    assert body["entries"] == []
    for bad, field in (("actor=nobody", "actor"),
                       ("subject=account:no%20body", "subject"), ("since=yesterday", "since"), ("limit=0", "limit"),
                       ("since=2026-02-01&until=2026-01-01", "until")):
        st, body = await http("GET", hl.base + f"/api/admin/audit?{bad}", token=token)
        assert st in (400, 404) and field in body["error"]["message"], bad
    # reading the log is itself in the log, with the filters used
    reads = await audit_rows(hl, "audit.read")
    assert reads and reads[0]["username"] == "root1"
    first = json.loads(reads[0]["detail"])
    assert first == {"filters": {"subject_type": "account", "subject_id": str(disp_id)}}

    async with aiohttp.ClientSession() as s, s.get(
            hl.base + "/api/admin/audit.csv?subject=account", headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
        assert "attachment" in r.headers["Content-Disposition"]
        raw = await r.read()
    assert raw.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert list(rows[0]) == ["at", "actor", "role", "action", "subject_type", "subject_id", "subject_name", "address",
                             "detail"]
    assert [(r["actor"], r["action"], r["subject_id"], r["subject_name"], r["address"]) for r in rows] == \
        [("root1", "account.read", str(disp_id), "disp2", "127.0.0.1")] * 3
    assert len(await audit_rows(hl, "audit.export")) == 1
    st, body = await http("GET", hl.base + "/api/admin/audit.csv?actor=nobody", token=token)
    assert st == 404 and "actor" in body["error"]["message"]


async def test_non_admins_are_refused_everything(hl):
    token = await admin(hl)
    some = (await sql(hl, "SELECT id FROM accounts WHERE username = 'root1'"))[0]["id"]
    await hl.add_user("disp3", "dispatcher")
    other = await hl.login("disp3")
    resident = await hl.device_token()
    for method, path in (("GET", "/api/admin/accounts"), ("POST", "/api/admin/accounts"),
                         ("GET", f"/api/admin/accounts/{some}"), ("POST", f"/api/admin/accounts/{some}/suspend"),
                         ("POST", f"/api/admin/accounts/{some}/reset"), ("GET", f"/api/admin/accounts/{some}/sessions"),
                         ("GET", "/api/admin/audit"), ("GET", "/api/admin/audit.csv")):
        for who in (other, resident):
            st, body = await http(method, hl.base + path, token=who, json={})
            assert st == 403 and body["error"]["code"] == "forbidden", (method, path)
        st, _ = await http(method, hl.base + path)
        assert st == 401
    assert token


async def test_a_ws_commands_audit_entry_has_its_address_and_a_dead_nodes_sessions_are_not_listed(hl):
    import time

    import redis.asyncio as aioredis

    from infra.keys import Keys

    token = await admin(hl)
    disp = await hl.user("dispatcher")
    await disp.ok("queue.watch")
    watched = await audit_rows(hl, "watch")
    assert [(r["subject_type"], r["address"]) for r in watched] == [("queue", "127.0.0.1")]
    # an entry a node that died left behind (not refreshed for longer than infra/sessions.py STALE_S)
    r = aioredis.Redis.from_url(hl.redis_url)
    key = Keys(hl.prefix).sessions(disp.account_id)
    try:
        await r.hset(key, "dead-node:1", json.dumps({"id": "dead-node:1", "node": "dead-node", "since": "x",
                                                    "seen": time.time() - 3600, "token_id": "t"}))
        st, body = await http("GET", hl.base + f"/api/admin/accounts/{disp.account_id}/sessions", token=token)
        assert st == 200 and [s["node"] != "dead-node" for s in body["sessions"]] == [True]
        assert not await r.hexists(key, "dead-node:1")          # dropped on the way
    finally:
        await r.aclose()
    # a resident's connections are not listed (infra/sessions.py)
    resident = await hl.resident()
    st, body = await http("GET", hl.base + f"/api/admin/accounts/{resident.account_id}/sessions", token=token)
    assert st == 200 and body["sessions"] == []


async def test_sessions_on_another_node_are_listed_and_ended_from_this_one(cluster):
    a, b = await cluster.start_node(), await cluster.start_node()
    await a.add_user("root1", "admin")
    token = await a.login("root1")
    disp = await b.user("dispatcher")
    st, body = await http("GET", a.base + f"/api/admin/accounts/{disp.account_id}/sessions", token=token)
    assert st == 200 and len(body["sessions"]) == 1
    listed = body["sessions"][0]
    st, mine = await http("GET", a.base + f"/api/admin/accounts/{(await a.connect(token)).account_id}/sessions",
                          token=token)
    assert listed["node"] != mine["sessions"][0]["node"]          # B's connection, read through A
    st, body = await http("POST", a.base + f"/api/admin/accounts/{disp.account_id}/sessions/end", token=token,
                          json={"session": listed["id"]})
    assert st == 200
    await asyncio.wait_for(disp.reader, 5)
    assert disp.close_code == 1008


async def test_two_admins_suspending_each_other_at_once_leave_one_active(hl):
    one, two = await admin(hl, "root1"), await admin(hl, "root2")
    ids = {r["username"]: str(r["id"]) for r in await sql(hl, "SELECT id, username FROM accounts")}
    answers = await asyncio.gather(
        http("POST", hl.base + f"/api/admin/accounts/{ids['root2']}/suspend", token=one),
        http("POST", hl.base + f"/api/admin/accounts/{ids['root1']}/suspend", token=two))
    statuses = sorted(st for st, _ in answers)
    # the second to take the lock sees one active admin left (or its own session already ended: 401)
    assert statuses[0] == 200 and statuses[1] in (401, 409), answers
    active = await sql(hl, "SELECT username FROM accounts WHERE role = 'admin' AND NOT disabled")
    assert len(active) == 1


async def test_a_reset_code_sent_twice_at_once_sets_one_password(hl):
    token = await admin(hl)
    await hl.add_user("med6", "mediator")
    target = str((await sql(hl, "SELECT id FROM accounts WHERE username = 'med6'"))[0]["id"])
    st, body = await http("POST", hl.base + f"/api/admin/accounts/{target}/reset", token=token)
    code = body["code"]
    answers = await asyncio.gather(*(
        http("POST", hl.base + "/api/auth/reset", json={"username": "med6", "code": code, "password": pw})
        for pw in ("First-pass-1", "Second-pass-2")))
    assert sorted(st for st, _ in answers) == [204, 401]
    winner = "First-pass-1" if answers[0][0] == 204 else "Second-pass-2"
    await hl.login("med6", winner)
