"""The 3+N agency directory (issue 15, contract §10): agency accounts with a type, grids they cover,
`agencies.list` with its filters and the covering-first order, and the CLI that makes them.

Real PostgreSQL and Redis; grids rows are inserted by SQL (the import is another module's).
"""
from __future__ import annotations

import json
from typing import Any

from infra import accounts, db
from testkit.stack import query as q

SQUARE = json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]})


async def agency(hl: Any, username: str, name: str, kind: str | None, grids: tuple[str, ...] = (),
                 phone: str | None = None) -> str:
    conn = await db.connect(hl.database_url)
    try:
        aid = await accounts.create(conn, username=username, role="agency", password="S3cure-pass", name=name,
                                    phone=phone, agency_type=kind)
        for code in grids:
            await conn.execute("INSERT INTO account_grids (account_id, code) VALUES ($1, $2)", aid, code)
        return aid
    finally:
        await conn.close()


async def city(hl: Any) -> None:
    """A district D1 with street S1 and its community C1 and grid G1; another district D2."""
    rows = [("D1", "district", None, ["D1"]), ("S1", "street", "D1", ["D1", "S1"]),
            ("C1", "community", "S1", ["D1", "S1", "C1"]), ("G1", "grid", "C1", ["D1", "S1", "C1", "G1"]),
            ("D2", "district", None, ["D2"])]
    for code, level, parent, path in rows:
        await q(hl, "INSERT INTO grids (code, name, level, parent, path, geometry, bbox)"
                    " VALUES ($1, $1, $2, $3, $4, $5::jsonb, box(point(0,0), point(1,1)))",
                code, level, parent, path, SQUARE)


async def test_agencies_list_filters_by_type_and_name_and_puts_the_covering_ones_first(hl):
    await city(hl)
    court = await agency(hl, "court1", "Riverside People's Court", "court", ("D1",), phone="+8613800000101")
    police = await agency(hl, "police1", "Riverside Police Station", "police", ("S1",))
    far = await agency(hl, "justice2", "Hilltop Justice Office", "justice", ("D2",))
    women = await agency(hl, "wf1", "Women's Federation", "womens_federation", ("G1", "D2"))
    other = await agency(hl, "misc", "Aardvark Committee", None)        # no type given: `other`
    await hl.add_user("med-dir", "mediator")
    med = await hl.connect(await hl.login("med-dir"))

    everyone = (await med.ok("agencies.list"))["agencies"]
    assert [a["id"] for a in everyone] == [other, far, court, police, women]      # by name
    first = everyone[2]
    assert first == {"id": court, "name": "Riverside People's Court", "agency_type": "court",
                     "phone": "+8613800000101", "grids": ["D1"], "covers_case": False}
    assert everyone[0]["agency_type"] == "other" and everyone[0]["grids"] == []
    assert everyone[4]["grids"] == ["D2", "G1"]

    assert [a["id"] for a in (await med.ok("agencies.list", agency_type="court"))["agencies"]] == [court]
    assert [a["id"] for a in (await med.ok("agencies.list", q="riverSIDE"))["agencies"]] == [court, police]
    assert [a["id"] for a in (await med.ok("agencies.list", q="riverside", agency_type="police"))["agencies"]] == [
        police]
    assert (await med.ok("agencies.list", q="nobody by that name"))["agencies"] == []

    # a case in community C1: the agencies covering C1 or an ancestor (S1, D1) first; G1 is below, D2 apart
    filer = await hl.user("resident", name="Ann")
    case = (await filer.ok("case.open", category="neighbour", summary="Wall", other_parties=[{"name": "Bo"}]))["case"]
    await q(hl, "UPDATE cases SET grid_code = 'C1' WHERE id = $1", case["id"])
    ranked = (await med.ok("agencies.list", case_id=case["id"]))["agencies"]
    assert [a["id"] for a in ranked] == [court, police, other, far, women]
    assert [a["covers_case"] for a in ranked] == [True, True, False, False, False]
    # a case in grid G1: the women's federation covers G1 itself
    await q(hl, "UPDATE cases SET grid_code = 'G1' WHERE id = $1", case["id"])
    ranked = (await med.ok("agencies.list", case_id=case["id"], agency_type="womens_federation"))["agencies"]
    assert [(a["id"], a["covers_case"]) for a in ranked] == [(women, True)]

    bad = await med.call("agencies.list", agency_type="fire_brigade")
    assert bad["code"] == "bad_request" and "agency_type" in bad["message"] and "womens_federation" in bad["message"]
    missing = await med.call("agencies.list", case_id="00000000-0000-0000-0000-000000000000")
    assert missing["code"] == "not_found" and "case_id" in missing["message"]

    # a disabled agency is not in the directory
    await q(hl, "UPDATE accounts SET disabled = true WHERE id = $1", far)
    assert far not in [a["id"] for a in (await med.ok("agencies.list"))["agencies"]]


async def test_the_directory_is_for_mediators_dispatchers_and_admins(hl):
    await agency(hl, "court-x", "Court X", "court")
    for role, allowed in [("mediator", True), ("dispatcher", True), ("admin", True), ("resident", False),
                          ("responder", False), ("agency", False), ("clerk", False)]:
        c = await hl.user(role)
        got = await c.call("agencies.list")
        if allowed:
            assert got["type"] == "ok" and [a["name"] for a in got["agencies"]][:1] == ["Court X"], role
        else:
            assert got["code"] == "forbidden", role


async def test_inviting_an_account_that_is_not_an_agency_is_a_bad_request(hl):
    filer = await hl.user("resident", name="Ann")
    case = (await filer.ok("case.open", category="neighbour", summary="Wall", other_parties=[{"name": "Bo"}]))["case"]
    med = await hl.user("mediator")
    await med.ok("case.take", case_id=case["id"])
    other_med = await hl.user("mediator")
    refused = await med.call("case.invite", case_id=case["id"], account_id=other_med.account_id)
    assert refused["code"] == "bad_request" and "agency" in refused["message"]
    assert (await q(hl, "SELECT count(*) AS n FROM case_agencies"))[0]["n"] == 0
    court = await agency(hl, "court-y", "Court Y", "court")
    invited = (await med.ok("case.invite", case_id=case["id"], account_id=court))["case"]
    assert invited["agencies"] == [{"id": court, "name": "Court Y"}]


async def test_cli_makes_agencies_with_a_type_and_refuses_a_bad_one(cluster):
    r = cluster.cli("user", "add", "court-cli", "--role", "agency", "--agency-type", "court",
                    "--password", "S3cure-pass", "--name", "District Court", "--phone", "+8613800000202")
    assert r.returncode == 0, r.stderr
    aid = r.stdout.strip()
    row = (await q(cluster, "SELECT role, name, agency_type, phone FROM accounts WHERE id = $1", aid))[0]
    assert dict(row) == {"role": "agency", "name": "District Court", "agency_type": "court",
                         "phone": "+8613800000202"}

    bad = cluster.cli("user", "add", "bad-cli", "--role", "agency", "--agency-type", "fire",
                      "--password", "S3cure-pass")
    assert bad.returncode == 1 and "'fire' is not an agency type" in bad.stderr and "party_service" in bad.stderr
    not_agency = cluster.cli("user", "add", "med-cli", "--role", "mediator", "--agency-type", "court",
                             "--password", "S3cure-pass")
    assert not_agency.returncode == 1 and "only agency accounts" in not_agency.stderr
    made = await q(cluster, "SELECT count(*) AS n FROM accounts WHERE username IN ('bad-cli', 'med-cli')")
    assert made[0]["n"] == 0

    r = cluster.cli("user", "set", "court-cli", "--agency-type", "JUSTICE")
    assert r.returncode == 0, r.stderr
    r = cluster.cli("user", "set", "court-cli", "--agency-type", "nope")
    assert r.returncode == 1 and "'nope' is not an agency type" in r.stderr
    assert (await q(cluster, "SELECT agency_type FROM accounts WHERE id = $1", aid))[0]["agency_type"] == "justice"
    r = cluster.cli("user", "add", "plain-agency", "--role", "agency", "--password", "S3cure-pass")
    assert r.returncode == 0, r.stderr
    assert (await q(cluster, "SELECT agency_type FROM accounts WHERE username = 'plain-agency'"))[0][
        "agency_type"] == "other"
    r = cluster.cli("user", "add", "disp-cli", "--role", "dispatcher", "--password", "S3cure-pass")
    assert r.returncode == 0, r.stderr
    r = cluster.cli("user", "set", "disp-cli", "--agency-type", "police")
    assert r.returncode == 1 and "only agency accounts" in r.stderr
    # an agency made something else loses its type
    r = cluster.cli("user", "set", "court-cli", "--role", "mediator")
    assert r.returncode == 0, r.stderr
    assert (await q(cluster, "SELECT agency_type FROM accounts WHERE id = $1", aid))[0]["agency_type"] is None
