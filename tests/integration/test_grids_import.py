"""Grids (issue 14, contract §9): `helpline grids import`, accounts' grids, GET /api/grids."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from grids import store
from infra import db
from testkit import city
from testkit.client import http
from testkit.geo import near
from testkit.nodes import InProcess
from testkit.runtime import REPO
from testkit.stack import query as q

SAMPLE = Path(REPO) / "data" / "city-sample.geojson"
SAMPLE_FEATURES = json.loads(SAMPLE.read_text(encoding="utf-8"))["features"]


def cli(app: InProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server.cli", *args], env=app.env, cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def square(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def feat(code: str, level: str, parent: str | None, geometry: dict[str, Any], name: str | None = None) -> Any:
    return {"type": "Feature", "properties": {"code": code, "name": name or code, "level": level, "parent": parent},
            "geometry": geometry}


def write(tmp_path: Path, name: str, features: list[Any]) -> str:
    f = tmp_path / name
    f.write_text(json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False),
                 encoding="utf-8")
    return str(f)


async def _sample(hl: InProcess) -> None:
    run = cli(hl, "grids", "import", str(SAMPLE))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"added={len(SAMPLE_FEATURES)} updated=0 unchanged=0 bad=0"


async def test_the_sample_city_imports_and_again_changes_nothing(hl):
    await _sample(hl)
    rows = {r["code"]: r for r in await q(hl, "SELECT code, name, level, parent, path, bbox::text AS bbox"
                                              " FROM grids")}
    assert len(rows) == len(SAMPLE_FEATURES)
    first_grid = next(f["properties"] for f in SAMPLE_FEATURES if f["properties"]["level"] == "grid")
    code = first_grid["code"]
    assert rows[code]["name"] == first_grid["name"] and rows[code]["level"] == "grid"
    assert rows[code]["path"] == code.split("-")[:1] + ["-".join(code.split("-")[:i]) for i in (2, 3, 4)]
    # the sample places and the test city's home lie in grids: the tagging of incidents finds one
    inner = await q(hl, "SELECT code FROM grids WHERE level = 'grid' AND bbox @> point($1, $2)",
                    near(0)["lon"], near(0)["lat"])
    assert len(inner) >= 1
    again = cli(hl, "grids", "import", str(SAMPLE))
    assert again.returncode == 0 and again.stdout.strip() == (
        f"added=0 updated=0 unchanged={len(SAMPLE_FEATURES)} bad=0")


async def test_a_bad_file_reports_features_by_index_and_loads_the_rest(hl, tmp_path):
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    path = write(tmp_path, "bad.geojson", [
        feat("G1", "grid", "C", square(0, 0, 1, 1)),                 # a child before its parent
        feat("C", "community", "D", square(0, 0, 2, 1)),
        feat("D", "district", None, square(0, 0, 4, 2)),
        feat("X1", "grid", "C", bowtie),
        feat("X2", "grid", "nowhere", square(0, 0, 1, 1)),
        feat("X3", "grid", "C", square(3, 0, 3.5, 1)),               # outside its community
        feat("G1", "grid", "C", square(1, 0, 2, 1)),                 # the same code again
        {"type": "Feature", "properties": {"code": "L", "name": "L", "level": "grid", "parent": "C"},
         "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}},
    ])
    run = cli(hl, "grids", "import", path)
    assert run.returncode == 1, run.stderr
    assert run.stdout.strip() == "added=3 updated=0 unchanged=0 bad=5"
    errs = run.stderr.splitlines()
    assert errs == ["bad.geojson: feature 3: invalid geometry: Self-intersection[0.5 0.5]",
                    "bad.geojson: feature 4: unknown parent nowhere (neither in this file nor loaded)",
                    "bad.geojson: feature 5: not inside its parent C",
                    "bad.geojson: feature 6: duplicate code G1 (feature 0 has it)",
                    "bad.geojson: feature 7: geometry must be a Polygon or MultiPolygon, not LineString"]
    rows = await q(hl, "SELECT code, path FROM grids ORDER BY path")
    assert [(r["code"], r["path"]) for r in rows] == [("D", ["D"]), ("C", ["D", "C"]), ("G1", ["D", "C", "G1"])]
    # not a FeatureCollection: nothing is read
    broken = tmp_path / "broken.geojson"
    broken.write_text("{not json", encoding="utf-8")
    run = cli(hl, "grids", "import", str(broken))
    assert run.returncode == 2 and "not JSON" in run.stderr
    missing = cli(hl, "grids", "import", str(tmp_path / "none.geojson"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


async def test_reimport_updates_by_code_and_a_moved_parent_recomputes_paths(hl, tmp_path):
    city = [feat("D1", "district", None, square(0, 0, 4, 2)), feat("D2", "district", None, square(4, 0, 8, 2)),
            feat("S", "street", "D1", square(0, 0, 2, 2)), feat("C", "community", "S", square(0, 0, 2, 1)),
            feat("G1", "grid", "C", square(0, 0, 1, 1)), feat("G2", "grid", "C", square(1, 0, 2, 1))]
    assert cli(hl, "grids", "import", write(tmp_path, "city.geojson", city)).returncode == 0
    # D2 grows west over S's area and S moves into it, renamed; G1 and the others are not in this file
    moved = [feat("D2", "district", None, square(0, 0, 8, 2)),
             feat("S", "street", "D2", square(0, 0, 2, 2), name="新街道 (New Subdistrict)"),
             feat("D1", "district", None, square(0, 0, 4, 2)), feat("N", "street", "D1", square(2, 0, 4, 2))]
    run = cli(hl, "grids", "import", write(tmp_path, "moved.geojson", moved))
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["added=1 updated=2 unchanged=1 bad=0",
                                       "paths recomputed for 3 loaded grid(s) under moved ones"]
    rows = {r["code"]: r for r in await q(hl, "SELECT code, name, parent, path, bbox::text AS bbox FROM grids")}
    assert rows["S"]["parent"] == "D2" and rows["S"]["name"] == "新街道 (New Subdistrict)"
    assert rows["S"]["path"] == ["D2", "S"] and rows["C"]["path"] == ["D2", "S", "C"]
    assert rows["G1"]["path"] == ["D2", "S", "C", "G1"] and rows["G2"]["path"] == ["D2", "S", "C", "G2"]
    assert rows["D2"]["bbox"] == "(8,2),(0,0)" and rows["N"]["path"] == ["D1", "N"]
    # a move the loaded grids cannot follow is refused, and nothing of it is written
    shrink = [feat("C", "community", "S", square(0, 0, 1, 1))]      # G2 would be left outside
    run = cli(hl, "grids", "import", write(tmp_path, "shrink.geojson", shrink))
    assert run.returncode == 1
    assert "feature 0: G2, a loaded grid under it, would no longer be inside it" in run.stderr
    assert (await q(hl, "SELECT bbox::text AS b FROM grids WHERE code = 'C'"))[0]["b"] == "(2,1),(0,0)"


async def test_user_grids_on_add_and_set(hl):
    await _sample(hl)
    codes = sorted(f["properties"]["code"] for f in SAMPLE_FEATURES)
    grid, community = codes[-1], codes[-1].rsplit("-", 1)[0]
    run = cli(hl, "user", "add", "gw1", "--role", "responder", "--password", "Pw-123456!", "--skills", "general",
              "--grids", f"{grid}, {community}")
    assert run.returncode == 0, run.stderr
    account_id = run.stdout.strip()

    async def grids_of(aid: str) -> list[str]:
        return [r["code"] for r in await q(hl, "SELECT code FROM account_grids WHERE account_id = $1 ORDER BY code",
                                           aid)]
    assert await grids_of(account_id) == sorted([grid, community])
    # an unknown code is refused by name, and the account is not made
    bad = cli(hl, "user", "add", "gw2", "--role", "responder", "--password", "Pw-123456!", "--grids",
              f"{grid},NOPE-1,NOPE-2")
    assert bad.returncode == 1 and "grids: no grid NOPE-1, NOPE-2" in bad.stderr
    assert await q(hl, "SELECT id FROM accounts WHERE username = 'gw2'") == []
    # set replaces; an unknown code leaves them as they were; '' clears
    assert cli(hl, "user", "set", "gw1", "--grids", community).returncode == 0
    assert await grids_of(account_id) == [community]
    bad = cli(hl, "user", "set", "gw1", "--grids", "NOPE-3", "--name", "Renamed")
    assert bad.returncode == 1 and "no grid NOPE-3" in bad.stderr
    assert await grids_of(account_id) == [community]
    assert (await q(hl, "SELECT name FROM accounts WHERE id = $1", account_id))[0]["name"] == "gw1"
    assert cli(hl, "user", "set", "gw1", "--grids", "").returncode == 0
    assert await grids_of(account_id) == []
    # made a resident: the grids go
    assert cli(hl, "user", "set", "gw1", "--grids", grid).returncode == 0
    assert cli(hl, "user", "set", "gw1", "--role", "resident").returncode == 0
    assert await grids_of(account_id) == []
    # a resident belongs to no grid
    res = cli(hl, "user", "add", "res1", "--role", "resident", "--password", "Pw-123456!", "--grids", grid)
    assert res.returncode == 1 and "a resident belongs to no grid" in res.stderr


async def test_area_limited_dispatchers_and_the_account_view(hl):
    await _sample(hl)
    district = SAMPLE_FEATURES[0]["properties"]["code"]
    run = cli(hl, "user", "add", "ops1", "--role", "dispatcher", "--password", "Pw-123456!", "--grids", district,
              "--area-limited")
    assert run.returncode == 0, run.stderr
    st, body = await http("POST", hl.base + "/api/auth/login", json={"username": "ops1", "password": "Pw-123456!"})
    assert st == 200 and body["account"]["grids"] == [district] and body["account"]["area_limited"] is True
    client = await hl.connect(body["token"])
    assert client.welcome["account"]["grids"] == [district]
    assert cli(hl, "user", "set", "ops1", "--no-area-limited").returncode == 0
    assert (await q(hl, "SELECT area_limited FROM accounts WHERE username = 'ops1'"))[0]["area_limited"] is False
    # limited without grids: allowed, with a warning
    warn = cli(hl, "user", "add", "ops2", "--role", "dispatcher", "--password", "Pw-123456!", "--area-limited")
    assert warn.returncode == 0 and "limited to an area but has no grids" in warn.stderr
    # only dispatchers; a role change away from dispatcher lifts it
    bad = cli(hl, "user", "add", "med1", "--role", "mediator", "--password", "Pw-123456!", "--area-limited")
    assert bad.returncode == 1 and "only dispatchers can be limited to an area" in bad.stderr
    assert cli(hl, "user", "set", "ops2", "--role", "admin").returncode == 0
    assert (await q(hl, "SELECT area_limited FROM accounts WHERE username = 'ops2'"))[0]["area_limited"] is False


async def test_api_grids_counts_open_incidents_up_the_tree(hl):
    await _sample(hl)
    grids = [f["properties"] for f in SAMPLE_FEATURES if f["properties"]["level"] == "grid"]
    g1, g2 = grids[0], grids[-1]
    resident = await hl.device_token()
    ids = []
    for i in range(3):
        st, body = await http("POST", hl.base + "/api/help", token=resident,
                              json={"request_id": uuid.uuid4().hex, "category": "other", **near(0.001 * i)})
        assert st == 201, body
        ids.append(body["incident"]["id"])
    # tagging at intake is issue 14's other part: tag these by hand; one of g1's is closed
    await q(hl, "UPDATE incidents SET grid_code = $1 WHERE id = ANY($2::uuid[])", g1["code"], ids[:2])
    await q(hl, "UPDATE incidents SET grid_code = $1 WHERE id = $2::uuid", g2["code"], ids[2])
    await q(hl, "UPDATE incidents SET status = 'resolved' WHERE id = $1::uuid", ids[1])
    token = await hl.login(await _user(hl, "dispatcher"))
    st, body = await http("GET", hl.base + "/api/grids", token=token)
    assert st == 200 and body["type"] == "FeatureCollection"
    feats = {f["properties"]["code"]: f for f in body["features"]}
    assert len(feats) == len(SAMPLE_FEATURES)
    one = feats[g1["code"]]
    assert one["type"] == "Feature" and one["geometry"]["type"] == "Polygon"
    assert one["properties"] == {"code": g1["code"], "name": g1["name"], "level": "grid", "parent": g1["parent"],
                                 "path": one["properties"]["path"], "open": 1}
    assert one["properties"]["path"][-1] == g1["code"] and len(one["properties"]["path"]) == 4
    d1, d2 = one["properties"]["path"][0], feats[g2["code"]]["properties"]["path"][0]
    assert d1 != d2 and feats[d1]["properties"]["open"] == 1 and feats[d2]["properties"]["open"] == 1
    assert feats[g1["parent"]]["properties"]["open"] == 1
    assert sum(f["properties"]["open"] for f in body["features"] if f["properties"]["level"] == "grid") == 2
    # parents before children
    order = [f["properties"]["code"] for f in body["features"]]
    assert all(order.index(f["properties"]["parent"]) < order.index(c) for c, f in feats.items()
               if f["properties"]["parent"])
    async with aiohttp.ClientSession() as session, session.get(
            hl.base + "/api/grids", headers={"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"}) as r:
        assert r.content_type == "application/geo+json" and r.headers["Content-Encoding"] == "gzip"
        assert (await r.json(content_type=None))["features"] == body["features"]
    st, body = await http("GET", hl.base + "/api/grids?level=district", token=token)
    assert st == 200 and {f["properties"]["level"] for f in body["features"]} == {"district"}
    assert sum(f["properties"]["open"] for f in body["features"]) == 2
    st, body = await http("GET", hl.base + "/api/grids?level=ward", token=token)
    assert st == 400 and body["error"]["code"] == "bad_request" and "level" in body["error"]["message"]
    st, _ = await http("GET", hl.base + "/api/grids", token=resident)
    assert st == 403
    st, _ = await http("GET", hl.base + "/api/grids")
    assert st == 401


async def test_api_grids_with_no_grids_loaded_is_an_empty_collection(hl):
    token = await hl.login(await _user(hl, "mediator"))
    st, body = await http("GET", hl.base + "/api/grids", token=token)
    assert st == 200 and body == {"type": "FeatureCollection", "features": []}


async def test_a_generated_city_loads_and_tags_points(hl):
    conn = await db.connect(hl.database_url)
    try:
        summary = await city.load(conn, 500)
        assert summary.added == len(city.features(500)) and summary.bad == 0
        home = await store.tag(conn, near(0)["lat"], near(0)["lon"])
        assert home is not None and len(home.path) == 4 and home.code.startswith(home.path[2])
        assert (await city.load(conn, 500)).unchanged == summary.added
    finally:
        await conn.close()


async def _user(hl: InProcess, role: str) -> str:
    name = f"{role}-{uuid.uuid4().hex[:6]}"
    await hl.add_user(name, role)
    return name
