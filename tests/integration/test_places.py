"""The gazetteer (issue 13): `helpline places import` and the search by WebSocket and HTTP."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from dispatch import places as pl
from testkit.client import http
from testkit.nodes import InProcess
from testkit.runtime import REPO
from testkit.stack import query as q

SAMPLE = Path(REPO) / "data" / "places-sample.csv"


def cli(app: InProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server.cli", *args], env=app.env, cwd=REPO, capture_output=True,
                          text=True, timeout=120)


CSV = """name,address,lat,lon,aliases
和平医院,静安区和平路12号 (12 Heping Road),31.2301,121.4701,Heping Hospital|和平
Riverside Park,1 Linjiang Road,31.2402,121.4902,
,no name here,31.2,121.4,
Bad Lat Clinic,2 Road,95,121.4,
"Quoted, with comma","multi
line address",31.21,121.41,Quoted Alias
和平医院,静安区和平路12号 (12 Heping Road),31.2301,121.4701,
Not a number,3 Road,north,121.4,
"""


async def test_import_reports_bad_rows_by_line_and_reimport_updates(hl, tmp_path):
    f = tmp_path / "city.csv"
    f.write_text(CSV, encoding="utf-8")
    run = cli(hl, "places", "import", str(f))
    assert run.returncode == 1, run.stderr     # some rows were bad: the rest went in
    assert run.stdout.strip() == "added=3 updated=0 unchanged=0 bad=4"
    errs = run.stderr
    assert "city.csv: line 4: name is empty" in errs
    assert "city.csv: line 5: lat must be between -90 and 90" in errs
    assert "city.csv: line 8: the same place" in errs and "as line 2" in errs
    assert "city.csv: line 9: lat must be a number, not 'north'" in errs
    rows = await q(hl, "SELECT id, name, address, aliases FROM places ORDER BY name")
    assert [r["name"] for r in rows] == ["Quoted, with comma", "Riverside Park", "和平医院"]
    assert rows[0]["address"] == "multi line address"     # a line break in a field is a space
    assert rows[2]["aliases"] == ["Heping Hospital", "和平"]
    assert rows[2]["id"] == pl.stable_id("和平医院", "静安区和平路12号 (12 Heping Road)")

    # the same file again: nothing changes; a moved place and a new one by id
    again = cli(hl, "places", "import", str(f))
    assert again.stdout.strip() == "added=0 updated=0 unchanged=3 bad=4"
    moved = tmp_path / "moved.csv"
    moved.write_text("id,name,address,lat,lon\n"
                     f"{rows[2]['id']},和平医院,静安区和平路12号 (12 Heping Road),31.2311,121.4711\n"
                     "clinic-7,Clinic Seven,7 Road,31.2,121.4\n", encoding="utf-8")
    upd = cli(hl, "places", "import", str(moved))
    assert upd.returncode == 0, upd.stderr
    assert upd.stdout.strip() == "added=1 updated=1 unchanged=0 bad=0"
    (lat, aliases), = [(r["lat"], r["aliases"]) for r in await q(hl, "SELECT * FROM places WHERE id = $1",
                                                                    rows[2]["id"])]
    assert lat == 31.2311 and aliases == []     # the file is the truth: no aliases column, none kept
    assert len(await q(hl, "SELECT id FROM places")) == 4


async def test_import_geojson_reports_bad_features_by_index(hl, tmp_path):
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "g1", "geometry": {"type": "Point", "coordinates": [121.47, 31.23]},
         "properties": {"name": "人民广场地铁站", "address": "黄浦区", "aliases": ["People's Square Station"]}},
        {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[121, 31], [121.1, 31.1]]},
         "properties": {"name": "A road"}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [121.48, 31.24]},
         "properties": {"name": "Market", "aliases": "Wet market|菜场"}},
    ]}
    f = tmp_path / "city.geojson"
    f.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    run = cli(hl, "places", "import", str(f))
    assert run.stdout.strip() == "added=2 updated=0 unchanged=0 bad=1"
    assert "city.geojson: feature 1: geometry must be a Point" in run.stderr
    got = {r["id"]: r for r in await q(hl, "SELECT * FROM places")}
    assert got["g1"]["aliases"] == ["People's Square Station"] and got["g1"]["lon"] == 121.47
    bad = tmp_path / "bad.geojson"
    bad.write_text("{not json", encoding="utf-8")
    broken = cli(hl, "places", "import", str(bad))
    assert broken.returncode == 2 and "not JSON" in broken.stderr


async def staff(hl: InProcess, role: str = "dispatcher") -> tuple[str, Any]:
    """A staff account's token and its connected client."""
    name = f"{role}-{uuid.uuid4().hex[:6]}"
    await hl.add_user(name, role)
    token = await hl.login(name)
    return token, await hl.connect(token)


async def _sample(hl: InProcess) -> None:
    run = cli(hl, "places", "import", str(SAMPLE))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "added=300 updated=0 unchanged=0 bad=0"


RANKED = """name,address,lat,lon,aliases
光明医院,宝山区金桥街1193号 (1193 Jinqiao Street),31.30,121.42,Guangming Hospital
徐汇光明医院,徐汇区翠竹弄446号 (446 Cuizhu Lane),31.30,121.42,Guangming Hospital Xuhui|Xuhui Guangming Hospital
光明医院东院区,闵行区枫林街1281号 (1281 Fenglin Street),31.30,121.42,
和平小学,光明路3号 (3 Guangming Road),31.20,121.40,Heping Primary School
和平公园,育才大道62号 (62 Yucai Avenue),31.21,121.41,Heping Park
育才中学,育才大道70号 (70 Yucai Avenue),31.21,121.41,Yucai Middle School
Riverside Park,1 Linjiang Road,31.24,121.49,江边公园
"""


async def test_search_chinese_english_ranked_ws_and_http(hl, tmp_path):
    f = tmp_path / "ranked.csv"
    f.write_text(RANKED, encoding="utf-8")
    assert cli(hl, "places", "import", str(f)).returncode == 0
    token, disp = await staff(hl)

    async def names(text: str, **kw: Any) -> list[str]:
        return [p["name"] for p in (await disp.ok("places.search", q=text, **kw))["places"]]
    # the exact name, then names starting with it, then names containing it, then addresses holding it
    assert await names("光明医院") == ["光明医院", "光明医院东院区", "徐汇光明医院"]
    assert await names("光明") == ["光明医院", "光明医院东院区", "徐汇光明医院", "和平小学"]
    # English through the aliases, any case: the alias that is the query first
    assert await names("GUANGMING hospital") == ["光明医院", "徐汇光明医院"]
    assert await names("guangming hospital", limit=1) == ["光明医院"]
    # a typo, when nothing matches as typed
    assert (await names("guangmng hospitl"))[:2] == ["光明医院", "徐汇光明医院"]
    # the words in another order, one of them mistyped
    assert set(await names("hospitl guangming")) >= {"光明医院", "徐汇光明医院"}
    # an address in English or Chinese; an alias in Chinese
    assert await names("Yucai Avenue") == ["和平公园", "育才中学"]
    assert await names("育才") == ["育才中学", "和平公园"]
    assert await names("江边") == ["Riverside Park"]
    # one character: the start of names only
    assert await names("和") == ["和平公园", "和平小学"]
    assert await names("zzqqxx") == []
    one = (await disp.ok("places.search", q="光明医院"))["places"][0]
    assert set(one) == {"id", "name", "address", "lat", "lon"} and (one["lat"], one["lon"]) == (31.30, 121.42)
    # HTTP answers the same
    st, body = await http("GET", hl.base + "/api/places?q=%E5%85%89%E6%98%8E", token=token)
    assert st == 200 and [p["name"] for p in body["places"]] == await names("光明")
    st, body = await http("GET", hl.base + "/api/places?q=GUANGMING+hospital&limit=1", token=token)
    assert st == 200 and [p["name"] for p in body["places"]] == ["光明医院"]


async def test_the_shipped_sample_imports_and_answers(hl):
    await _sample(hl)
    token, disp = await staff(hl)
    first = next(iter(SAMPLE.read_text(encoding="utf-8").splitlines()[1:])).split(",")[0]
    got = (await disp.ok("places.search", q=first))["places"]
    assert got[0]["name"] == first


async def test_search_bad_input(hl):
    token, disp = await staff(hl)
    await disp.error("places.search", "bad_request", q="")
    await disp.error("places.search", "bad_request", q="   ")
    await disp.error("places.search", "bad_request", q="x" * 101)
    await disp.error("places.search", "bad_request", q="park", limit=0)
    await disp.error("places.search", "bad_request", q="park", limit="ten")
    for path in ("/api/places", "/api/places?q=", "/api/places?q=park&limit=x", "/api/places?q=park&limit=999"):
        st, body = await http("GET", hl.base + path, token=token)
        assert st == 400 and body["error"]["code"] == "bad_request", path
    st, _ = await http("GET", hl.base + "/api/places?q=park")
    assert st == 401
