"""A help request checks its session in its own statement (dispatch/store.py REPORT_SQL): an account
disabled, given another role or another session epoch, or a token revoked, in the database only (no
Redis doorbell, before the periodic re-check), gets `unauthorized`, the socket closed with 1008, and
nothing written: no incident, no responder claimed."""
from __future__ import annotations

import asyncio
import base64
import json
import uuid
from typing import Any

import asyncpg
import pytest

from testkit.geo import near


async def sql(hl: Any, query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(hl.database_url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


def jti_of(token: str) -> str:
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"])


CHANGES = {
    "disabled": "UPDATE accounts SET disabled = true WHERE id = $1 AND $2::text IS NOT NULL",
    "epoch": "UPDATE accounts SET session_epoch = session_epoch + 1 WHERE id = $1 AND $2::text IS NOT NULL",
    "role": "UPDATE accounts SET role = 'agency' WHERE id = $1 AND $2::text IS NOT NULL",
    "revoked": ("INSERT INTO revoked_tokens (jti, expires_at) SELECT $2, now() + interval '1 hour'"
                " WHERE $1::uuid IS NOT NULL"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
async def test_a_help_request_from_an_ended_session_writes_nothing(hl, change):
    medic = await hl.user("responder", skills=["general", "medical"])
    await medic.ok("duty.start", **near(0.003))
    token = await hl.device_token()
    resident = await hl.connect(token)
    await sql(hl, CHANGES[change], uuid.UUID(resident.account_id), jti_of(token))
    ans = await resident.call("help.request", request_id="ended1", category="medical", **near(0))
    assert ans["type"] == "error" and ans["code"] == "unauthorized", ans
    await asyncio.wait_for(resident.reader, 5)
    assert resident.close_code == 1008
    assert (await sql(hl, "SELECT count(*) AS n FROM incidents"))[0]["n"] == 0
    assert (await sql(hl, "SELECT count(*) AS n FROM offers"))[0]["n"] == 0
    assert [r["status"] for r in await sql(hl, "SELECT status FROM responders")] == ["available"]


async def test_a_help_request_from_a_live_session_is_taken(hl):
    """The same check lets a session that still holds through (the check is not simply always false)."""
    medic = await hl.user("responder", skills=["general", "medical"])
    await medic.ok("duty.start", **near(0.003))
    resident = await hl.connect(await hl.device_token())
    inc = (await resident.ok("help.request", request_id="live1", category="medical", **near(0)))["incident"]
    assert inc["status"] == "offered"
    assert (await sql(hl, "SELECT count(*) AS n FROM incidents"))[0]["n"] == 1


async def test_grids_imported_after_untagged_reports_are_seen_by_the_very_next_report(hl):
    """A report made without a look at the grids (none held the last position) writes nothing when a grid's
    box holds its position, in the statement's own snapshot: grids loaded a moment ago tag the next report."""
    from testkit.squares import insert_grids

    resident = await hl.resident()
    before = (await resident.ok("help.request", request_id="u1", category="other", **near(0)))["incident"]
    assert before["grid"] is None
    await insert_grids(hl.database_url)
    after = (await resident.ok("help.request", request_id="u2", category="other", **near(0)))["incident"]
    assert after["grid"] is not None and after["grid"]["code"] == "G1"
    outside = (await resident.ok("help.request", request_id="u3", category="other", lat=39.9, lon=116.4))["incident"]
    assert outside["grid"] is None
    again = (await resident.ok("help.request", request_id="u4", category="other", **near(0)))["incident"]
    assert again["grid"] is not None and again["grid"]["code"] == "G1"
    rows = await sql(hl, "SELECT request_id, grid_code FROM incidents ORDER BY created_at")
    assert [(r["request_id"], r["grid_code"]) for r in rows] == [("u1", None), ("u2", "G1"), ("u3", None),
                                                                  ("u4", "G1")]
