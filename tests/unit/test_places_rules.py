"""The gazetteer's pure rules (dispatch/places.py): row validation, stable ids, query plans, ranking."""
from __future__ import annotations

import json

import pytest

from dispatch import places as pl


def test_csv_rows_judged_alone_by_line():
    text = ("\ufeffname,address,lat,lon,aliases,id\n"
            "Park,1 Road,31.2,121.4,Green|  |Green,park-1\n"
            "\n"
            "Bad id,2 Road,31.2,121.4,,has space\n"
            "Too,many,31,121,a,b,c\n"
            "Nowhere,3 Road,,121.4,,\n"
            "Inf,4 Road,inf,121.4,,\n"
            "Park again,9 Road,31.3,121.5,,park-1\n")
    got = pl.parse("x.csv", text.encode())
    assert [(line, p.id, p.aliases) for line, p in got.places] == [(2, "park-1", ("Green",))]
    assert [(e.where, e.message.split(":")[0]) for e in got.errors] == [
        (4, "id must be 1-64 letters, digits, _ . "), (5, "7 fields, expected at most 6"),
        (6, "lat and lon are required"), (7, "lat must be between -90 and 90"),
        (8, "the same place (id park-1) as line 2")]


def test_csv_without_header_uses_the_column_order():
    got = pl.parse("x.csv", b"A,b,1,2\n")
    assert got.places[0][1] == pl.Place(pl.stable_id("A", "b"), "A", "b", 1.0, 2.0)


def test_unknown_column_and_bad_encoding_refuse_the_file():
    with pytest.raises(pl.FileError):
        pl.parse("x.csv", b"name,lat,lon,colour\nA,1,2,red\n")
    with pytest.raises(pl.FileError):
        pl.parse("x.csv", b"name,lat,lon\n\xff,1,2\n")


def test_geojson_features_by_index():
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [121.4, 31.2]}, "id": 7,
         "properties": {"name": "A", "aliases": ["x", "y"]}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [121.4]}, "properties": {"name": "B"}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [200, 31]}, "properties": {"name": "C"}},
        {"type": "Feature", "geometry": None, "properties": {"name": "D"}},
        "nonsense",
    ]}
    got = pl.parse("x.geojson", json.dumps(doc).encode())
    assert [(i, p.id, p.lat, p.lon, p.aliases) for i, p in got.places] == [(0, "7", 31.2, 121.4, ("x", "y"))]
    assert [e.where for e in got.errors] == [1, 2, 3, 4] and got.unit == "feature"


def test_stable_id_ignores_case_and_spacing():
    assert pl.stable_id("Heping  Hospital", "1 Road") == pl.stable_id("heping hospital", " 1 Road ")
    assert pl.stable_id("和平医院", "a") != pl.stable_id("和平医院", "b")


def test_grams_and_query_plans():
    assert pl.grams("和平 park 医院") == sorted(["和", "平", "和平", "医", "院", "医院"])
    assert pl.plan_query("和").mode == "prefix"
    assert pl.plan_query("li").mode == "prefix"
    q = pl.plan_query(" 和平医院 ")
    assert q.mode == "cjk" and q.grams == ("医院", "和平", "平医") and q.key == "和平医院"
    assert pl.plan_query("Heping Hosp").mode == "text"
    assert pl.plan_query("50%_off").like == "50\\%\\_off"
    assert pl.check_limit(None) == 10 and pl.check_limit(500) == pl.LIMIT_MAX


def test_ranking_exact_then_prefix_then_contains_then_address_then_similar():
    def key(name: str, aliases: list[str], address: str, sim: float = 0.0) -> tuple[int, bool, float, int, str]:
        return pl.rank_key("光明医院", pl.normalise(name), [pl.normalise(a) for a in aliases], address, sim)

    rows = {
        "similar": key("光华医院", [], "x", 0.5),
        "address": key("诊所", [], "光明医院旁", 0.0),
        "contains": key("徐汇光明医院", [], "x"),
        "prefix-long": key("光明医院东院区", [], "x"),
        "prefix": key("光明医院东", [], "x"),
        "alias-exact": key("某医院", ["光明医院"], "x"),
        "exact": key("光明医院", [], "x"),
    }
    order = sorted(rows, key=lambda k: rows[k])
    assert order == ["exact", "alias-exact", "prefix", "prefix-long", "contains", "address", "similar"]


def test_words_a_typo_stage_may_correct_leave_out_chinese_numbers_and_short_words() -> None:
    assert pl.words_of("光明医院 | guangming hospital | no. 12 road 3b xuhui_guangming") == \
        ["guangming", "hospital", "road", "xuhui"]
    assert pl.words_of("光明医院 12") == []


def test_a_corrected_query_replaces_whole_words_only() -> None:
    fixes = {"hospitl": "hospital", "guangmng": "guangming"}
    assert pl.corrected("guangmng hospitl no. 3", fixes) == "guangming hospital no. 3"
    assert pl.corrected("hospitls", fixes) == "hospitls"      # not a word of the query: left as typed
