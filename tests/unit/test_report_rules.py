"""reports/rules.py: a report's parameters, its area rule, the assign-target rule and the CSV, without I/O."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from infra.errors import BadRequest, Forbidden
from reports import rules

TZ = ZoneInfo("Asia/Shanghai")
TODAY = date(2026, 3, 15)


def parse(**q: str) -> rules.Query:
    return rules.parse_query(q, today=TODAY, tz=TZ)


def test_days_of_the_city_to_included():
    q = parse(**{"from": "2026-03-01", "to": "2026-03-31"}, by="week")
    assert q.start == datetime(2026, 3, 1, tzinfo=TZ) and q.end == datetime(2026, 4, 1, tzinfo=TZ)
    assert q.start.utcoffset() is not None and q.start.isoformat() == "2026-03-01T00:00:00+08:00"
    assert q.by == rules.Grouping.WEEK and q.grid is None and not q.csv


def test_defaults_the_last_30_days_by_category():
    q = parse()
    assert (q.first_day, q.last_day, q.by) == (date(2026, 2, 14), TODAY, rules.Grouping.CATEGORY)
    assert parse(format="csv", grid="D01").csv and parse(grid="D01").grid == "D01"


@pytest.mark.parametrize("q,field", [
    ({"from": "2026-03-02", "to": "2026-03-01"}, "from:"),
    ({"from": "2025-01-01", "to": "2026-02-05"}, "to:"),          # 401 days
    ({"from": "2026-13-01"}, "from:"), ({"to": "2026-3-1"}, "to:"), ({"to": "tomorrow"}, "to:"),
    ({"by": "agency"}, "by:"), ({"by": ""}, None), ({"format": "pdf"}, "format:"), ({"grid": "a b"}, "grid:"),
])
def test_bad_parameters_name_the_field(q, field):
    if field is None:       # empty is the default
        parse(**q)
        return
    with pytest.raises(BadRequest) as e:
        parse(**q)
    assert e.value.message.startswith(field)


def test_400_days_is_the_longest_period():
    assert parse(**{"from": "2025-01-01", "to": "2026-02-04"}).last_day == date(2026, 2, 4)      # 400 days


def test_each_report_has_its_groupings():
    with pytest.raises(BadRequest):
        rules.parse_query({"by": "day"}, today=TODAY, tz=TZ, groupings=rules.CASE_GROUPINGS)
    assert rules.parse_query({"by": "month"}, today=TODAY, tz=TZ, groupings=rules.CASE_GROUPINGS).by == "month"
    assert rules.parse_query({"by": "agency"}, today=TODAY, tz=TZ, groupings=rules.CASE_GROUPINGS).by == "agency"
    with pytest.raises(BadRequest):      # incidents are not referred to agencies
        rules.parse_query({"by": "agency"}, today=TODAY, tz=TZ, groupings=rules.INCIDENT_GROUPINGS)
    assert rules.case_columns()[:8] == ["group", "label", "filed", "taken", "settled", "failed", "referred",
                                        "withdrawn"]
    assert rules.case_columns()[8:] == ["overdue", "days_to_take_p50", "days_to_take_p90", "days_to_close_p50",
                                        "days_to_close_p90", "satisfaction_answers", "satisfaction_mean"]


def test_area_rule():
    rules.check_area(False, [], "D2", ["D2"])                  # unlimited: any area
    rules.check_area(True, ["D1"], None, None)                 # limited, no pick: their own
    rules.check_area(True, ["D1"], "G1", ["D1", "S1", "G1"])   # under their district
    with pytest.raises(Forbidden):
        rules.check_area(True, ["G1"], "D1", ["D1"])           # the district above their grid
    with pytest.raises(BadRequest):
        rules.check_area(False, [], "nope", None)


def test_within_target_leaves_out_a_cancel_before_anyone_could_be_sent():
    assert rules.within_target(60, None, 60) is True
    assert rules.within_target(61, 300, 60) is False
    assert rules.within_target(None, 30, 60) is None
    assert rules.within_target(None, 90, 60) is False and rules.within_target(None, None, 60) is False


def test_csv_has_a_bom_flattened_percentiles_and_reads_back():
    rows = [{"group": "医疗", "label": "医疗", "received": 3, "escalated": 0, "cancelled": 0, "resolved": 2,
             "false_alarms": 1, "press_to_first_offer": {"p50": 2.0, "p90": 2.8, "p95": 2.9},
             "press_to_assigned": {"p50": None, "p90": None, "p95": None},
             "assigned_to_on_scene": {"p50": 1 / 3, "p90": 1.0, "p95": 1.0},
             "press_to_resolved": {"p50": 10.0, "p90": 10.0, "p95": 10.0},
             "offers": 3, "offers_accepted": 1, "offer_acceptance": 1 / 3, "offers_per_incident": 1.0,
             "assigned_within_target": None}]
    text = rules.csv_table(rules.incident_columns(), rows)
    assert text.startswith("\ufeffgroup,label,received,") and "\r\n" in text
    back = list(csv.DictReader(io.StringIO(text[1:])))
    assert back[0]["group"] == "医疗" and back[0]["press_to_first_offer_p90_s"] == "2.8"
    assert back[0]["assigned_to_on_scene_p50_s"] == "0.333" and back[0]["press_to_assigned_p50_s"] == ""
    assert back[0]["assigned_within_target"] == "" and back[0]["offers_per_incident"] == "1"
    assert list(back[0]) == rules.incident_columns()


def test_export_parameters_and_cursor():
    q = rules.parse_export({"since": "2026-03-01"}, TZ)
    assert q.since.isoformat() == "2026-03-01T00:00:00+08:00" and q.after is None and q.limit == rules.EXPORT_PAGE
    assert rules.parse_export({"since": "2026-03-01T10:00:00"}, TZ).since.isoformat() == "2026-03-01T10:00:00+00:00"
    at = datetime(2026, 3, 2, 1, 2, 3, 456789, tzinfo=ZoneInfo("UTC"))
    c = rules.cursor(at, "35d04374-4c2c-43f8-b181-74e73f5f36df")
    assert rules.parse_export({"since": "2026-03-01", "cursor": c, "limit": "7"}, TZ).after == (
        at, "35d04374-4c2c-43f8-b181-74e73f5f36df")
    day = "2026-03-01"
    for bad, fld in (({}, "since:"), ({"since": "soon"}, "since:"), ({"since": day, "cursor": "eA"}, "cursor:"),
                     ({"since": day, "limit": "-1"}, "limit:"), ({"since": day, "limit": "1001"}, "limit:")):
        with pytest.raises(BadRequest) as e:
            rules.parse_export(bad, TZ)
        assert e.value.message.startswith(fld)
