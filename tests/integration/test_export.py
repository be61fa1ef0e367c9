"""The export for other departments (issue 16): closed incidents paged without personal data, for admins and
API keys of scope export (a revoked key 401 at once), `helpline export`, and a CAP 1.2 alert valid against
the OASIS schema (tests/vendor/CAP-v1.2.xsd)."""
from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import xmlschema

from testkit.client import http
from testkit.nodes import InProcess
from tests.integration.test_reports import HISTORY, build, staff

REPO = Path(__file__).resolve().parents[2]
CAP_XSD = REPO / "tests" / "vendor" / "CAP-v1.2.xsd"
PERSONAL = {"note", "lat", "lon", "accuracy_m", "reporter", "reporter_id", "caller_name", "address", "place_id",
            "phone", "name", "responder", "responder_id"}


def cli(app: InProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server.cli", *args], env=app.env, cwd=REPO, capture_output=True,
                          text=True, timeout=120)


async def acli(app: InProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(cli, app, *args)


async def test_pages_of_closed_incidents_without_personal_data(hl):
    ids = await build(hl.database_url, HISTORY)
    closed = {ids[n] for n, i in enumerate(HISTORY) if i.status in ("resolved", "cancelled")}
    admin = await staff(hl, "admin")
    got, cursor, pages = [], None, 0
    while True:
        q = "?since=2026-03-01&limit=4" + (f"&cursor={cursor}" if cursor else "")
        status, body = await http("GET", hl.base + "/api/export/incidents" + q, token=admin)
        assert status == 200, body
        got += body["incidents"]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            break
    assert pages == 2 and [len(got)] == [6]
    assert {g["id"] for g in got} == closed
    assert [g["closed_at"] for g in got] == sorted(g["closed_at"] for g in got)
    for g in got:
        assert not set(g) & PERSONAL
    first = next(g for g in got if g["id"] == ids[0])
    assert (first["category"], first["grid_code"], first["grid_name"], first["status"]) == \
        ("medical", "G1", "G1 name", "resolved")
    assert (first["press_to_assigned_s"], first["press_to_on_scene_s"], first["press_to_closed_s"],
            first["assigned_to_on_scene_s"], first["offers"]) == (12, 300, 900, 288, 1)
    # since: closed on or after the city's 4 March: those received on the 4th and the 9th (closed the same day)
    status, body = await http("GET", hl.base + "/api/export/incidents?since=2026-03-04", token=admin)
    assert [g["id"] for g in body["incidents"]] == [ids[4], ids[5]] and body["next"] is None
    status, body = await http("GET", hl.base + "/api/export/incidents?since=2026-03-04T02:00:31Z", token=admin)
    assert [g["id"] for g in body["incidents"]] == [ids[5]]     # ids[4] was closed at 02:00:30 UTC
    for q, fld in (("", "since:"), ("?since=March", "since:"), ("?since=2026-03-01&cursor=zzz", "cursor:"),
                   ("?since=2026-03-01&limit=0", "limit:"), ("?since=2026-03-01&limit=5000", "limit:")):
        status, body = await http("GET", hl.base + "/api/export/incidents" + q, token=admin)
        assert status == 400 and body["error"]["message"].startswith(fld), (q, body)


async def test_api_keys_add_list_revoke(hl):
    await build(hl.database_url, HISTORY)
    add = await acli(hl, "apikey", "add", "stats-bureau", "--scope", "export")
    assert add.returncode == 0, add.stderr
    key = add.stdout.strip()
    assert key.startswith("hlk_")
    status, body = await http("GET", hl.base + "/api/export/incidents?since=2026-03-01", token=key)
    assert status == 200 and len(body["incidents"]) == 6
    status, _ = await http("GET", hl.base + "/api/export/incidents?since=2026-03-01", token=key[:-2] + "xx")
    assert status == 401
    assert (await acli(hl, "apikey", "add", "stats-bureau", "--scope", "export")).returncode == 1   # name taken
    listed = await acli(hl, "apikey", "list")
    assert "stats-bureau\texport\t" in listed.stdout and "active" in listed.stdout and key not in listed.stdout
    assert (await acli(hl, "apikey", "revoke", "stats-bureau")).returncode == 0
    status, body = await http("GET", hl.base + "/api/export/incidents?since=2026-03-01", token=key)
    assert status == 401 and "revoked" in body["error"]["message"]
    assert "revoked" in (await acli(hl, "apikey", "list")).stdout
    assert (await acli(hl, "apikey", "revoke", "nobody")).returncode == 1
    # a key opens the export only: not the reports, not the API of staff
    key2 = (await acli(hl, "apikey", "add", "fire-dept", "--scope", "export")).stdout.strip()
    status, _ = await http("GET", hl.base + "/api/reports/incidents", token=key2)
    assert status == 401


async def test_cli_export_json_and_csv(hl):
    ids = await build(hl.database_url, HISTORY)
    run = await acli(hl, "export", "--since", "2026-03-01", "--format", "json")
    assert run.returncode == 0, run.stderr
    lines = [json.loads(x) for x in run.stdout.splitlines()]
    assert len(lines) == 6 and all(not set(x) & PERSONAL for x in lines)
    run = await acli(hl, "export", "--since", "2026-03-01", "--format", "csv")
    table = list(csv.DictReader(io.StringIO(run.stdout)))
    assert [t["id"] for t in table] == [x["id"] for x in lines]
    assert next(t for t in table if t["id"] == ids[0])["press_to_closed_s"] == "900.0"
    assert (await acli(hl, "export", "--since", "soon")).returncode == 1


async def test_one_incident_as_a_valid_cap_alert(hl):
    ids = await build(hl.database_url, HISTORY)
    admin = await staff(hl, "admin")
    schema = xmlschema.XMLSchema(str(CAP_XSD))
    for n in (0, 3, 5):       # resolved in a grid, a false alarm, resolved in no grid
        async with aiohttp.ClientSession() as s, s.get(
                hl.base + f"/api/export/incidents/{ids[n]}",
                headers={"Authorization": f"Bearer {admin}", "Accept": "application/cap+xml"}) as r:
            assert r.status == 200 and r.content_type == "application/cap+xml"
            xml = await r.read()
        schema.validate(xml.decode("utf-8"))
        alert: Any = schema.to_dict(xml.decode("utf-8"))
        assert alert["identifier"] == f"helpline-H-{n}" and alert["status"] == "Actual"
        assert b"smoke on the stairs" not in xml and b"Li Lei" not in xml and b"31.2" not in xml
    assert alert["info"][0]["area"][0]["areaDesc"] == "not within a known grid"
    status, body = await http("GET", hl.base + f"/api/export/incidents/{ids[0]}", token=admin)
    assert status == 200 and body["ref_no"] == "H-0" and body["grid_code"] == "G1"
    status, _ = await http("GET", hl.base + f"/api/export/incidents/{ids[7]}", token=admin)     # still open
    assert status == 404
    status, _ = await http("GET", hl.base + "/api/export/incidents/not-an-id", token=admin)
    assert status == 404
