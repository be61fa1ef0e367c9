"""The operators' CLI (issue 21): `helpline user list|show` and `helpline audit`."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

from testkit.nodes import InProcess
from testkit.runtime import REPO

CITY = Path(REPO) / "data" / "city-sample.geojson"


def cli(app: InProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server.cli", *args], env=app.env, cwd=REPO, capture_output=True,
                          text=True, timeout=120)


async def test_user_list_by_role_and_grid_and_show(hl):
    assert cli(hl, "grids", "import", str(CITY)).returncode == 0
    grid = json.loads(CITY.read_text(encoding="utf-8"))["features"][-1]["properties"]     # a grid, last
    community = grid["parent"]
    assert cli(hl, "user", "add", "medic1", "--role", "responder", "--password", "pw-123456", "--name", "Li Wei",
               "--skills", "medical", "--phone", "+8613800138001", "--grids", grid["code"]).returncode == 0
    assert cli(hl, "user", "add", "disp1", "--role", "dispatcher", "--password", "pw-123456", "--grids", community,
               "--area-limited").returncode == 0
    assert cli(hl, "user", "add", "med1", "--role", "mediator", "--password", "pw-123456").returncode == 0
    await hl.device_token()                                   # a resident: not listed unless asked for

    run = cli(hl, "user", "list")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["username", "role", "name", "phone", "grids", "state"]
    assert [ln.split()[0] for ln in lines[1:]] == ["disp1", "med1", "medic1"]      # by role, then name
    assert "area_limited" in lines[1] and "+8613800138001" in lines[3] and grid["code"] in lines[3]
    assert "(3 accounts)" in run.stderr

    rows = json.loads(cli(hl, "user", "list", "--json").stdout)
    medic = next(r for r in rows if r["username"] == "medic1")
    assert medic["skills"] == ["medical"] and medic["grids"] == [grid["code"]] and "password_hash" not in medic
    assert [r["username"] for r in json.loads(cli(hl, "user", "list", "--role", "mediator", "--json").stdout)] \
        == ["med1"]
    assert len(json.loads(cli(hl, "user", "list", "--role", "resident", "--json").stdout)) == 1
    # by grid: the grid's own worker, and the community's dispatcher only when asking for the community
    assert [r["username"] for r in json.loads(cli(hl, "user", "list", "--grid", grid["code"], "--json").stdout)] \
        == ["medic1"]
    district = grid["code"].split("-")[0]                    # codes are D01-S02-C03-G04
    by_district = json.loads(cli(hl, "user", "list", "--grid", district, "--json").stdout)
    assert sorted(r["username"] for r in by_district) == ["disp1", "medic1"]
    bad = cli(hl, "user", "list", "--grid", "NOPE-1")
    assert bad.returncode == 1 and "no grid 'NOPE-1'" in bad.stderr

    shown = cli(hl, "user", "show", "medic1")
    assert shown.returncode == 0 and "Li Wei" in shown.stdout and "medical" in shown.stdout
    assert "password" not in shown.stdout
    missing = cli(hl, "user", "show", "nobody")
    assert missing.returncode == 1 and "no account 'nobody'" in missing.stderr


async def test_audit_prints_who_did_what_filtered_and_as_csv(hl):
    disp = await hl.user("dispatcher", name="Zhang Min")
    made = await disp.ok("incident.create", request_id="c-1", category="medical", channel="phone",
                         caller={"name": "Zhao Lan", "phone": "+8613800138333"}, lat=31.23, lon=121.47)
    iid = made["incident"]["id"]
    await disp.ok("incident.events", incident_id=iid)                       # a staff read: audited too
    other = await hl.user("dispatcher")
    await other.ok("queue.watch")

    run = cli(hl, "audit", "--since", "2020-01-01")
    assert run.returncode == 0, run.stderr
    assert f"incident.create  incident {iid}" in run.stdout and "(dispatcher)" in run.stdout
    username = disp.welcome["account"]["username"]
    mine = cli(hl, "audit", "--since", "2020-01-01", "--actor", username, "--format", "json")
    entries = [json.loads(ln) for ln in mine.stdout.splitlines()]
    actions = {e["action"] for e in entries}
    assert actions >= {"incident.create", "read"} and "watch" not in actions
    assert all(e["actor"] == username for e in entries)
    about = cli(hl, "audit", "--since", "2020-01-01", "--subject", f"incident:{iid}", "--format", "csv")
    table = list(csv.DictReader(io.StringIO(about.stdout)))
    assert table and {r["subject_id"] for r in table} == {iid}
    assert {r["address"] for r in table} == {"127.0.0.1"}           # from where: the WebSocket's client
    assert {e["address"] for e in entries} == {"127.0.0.1"}
    assert cli(hl, "audit", "--since", "2999-01-01").stdout == ""
    for args, says in [(["--since", "yesterday"], "--since: a date"),
                       (["--since", "2026-11-29", "--until", "2026-11-28"], "--until: must be after --since"),
                       (["--since", "2026-11-29", "--actor", "nobody"], "--actor: no account 'nobody'")]:
        bad = cli(hl, "audit", *args)
        assert bad.returncode == 1 and says in bad.stderr, bad.stderr
