"""The Grafana dashboard (issue 21): docs/grafana/helpline.json loads, and every metric its panels and
variables name is one a running node really exports at /metrics."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from testkit.client import http

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "helpline.json"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
# the metrics the issue asks the dashboard to show
WANTED = {"helpline_ws_connections", "helpline_press_to_offer_seconds", "helpline_offer_outcomes_total",
          "helpline_offers_sent_total", "helpline_sms_total", "helpline_gc_pause_seconds",
          "helpline_ws_commands_shed_total", "helpline_ws_commands_total"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: what is left once strings, label matchers, range
    selectors and `by (…)` / `without (…)` / `on (…)` groupings are gone, less function calls, keywords and
    numbers; histogram series (_bucket, _sum, _count) by their histogram's name."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![A-Za-z0-9_:.])[A-Za-z_:][A-Za-z0-9_:]*", e):   # not a duration (5m)
        rest = e[m.end():].lstrip()
        if rest.startswith("(") or m.group() in KEYWORDS:
            continue       # a function call or a keyword
        name = m.group()
        for suffix in HISTOGRAM_SUFFIXES:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        names.add(name)
    return names


def expressions(dash: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable (label_values(metric, label))."""
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append((p["title"], t["expr"]))
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.fullmatch(r"label_values\((.+),\s*\w+\)", q)
            assert m, q
            out.append((f"variable {v['name']}", m.group(1)))
    return out


def exported(text: str) -> set[str]:
    """The names /metrics declares: gauges by name, counters as name_total, histograms by their name
    (a labelled metric with no sample yet is still declared by its # TYPE line)."""
    names = set()
    for fam in text_string_to_metric_families(text):
        names.add(fam.name + "_total" if fam.type == "counter" else fam.name)
        names.update(s.name for s in fam.samples if not s.name.endswith(HISTOGRAM_SUFFIXES))
    return names


def test_the_promql_names_are_read_as_grafana_would():
    assert metric_names('histogram_quantile(0.9, sum by (le, kind) (rate(a_seconds_bucket{x=~"$i"}[$__rate_interval])))'
                        ) == {"a_seconds"}
    assert metric_names('sum by (role) (b{role!="x(y)"}) / on (instance) group_left c_total') == {"b", "c_total"}
    assert metric_names("max(d) > bool 0 and e offset 5m") == {"d", "e"}


async def test_every_metric_of_the_dashboard_is_exported(hl):
    dash = json.loads(DASHBOARD.read_text())
    assert dash["title"] and dash["uid"] and dash["schemaVersion"] >= 36
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    for p in panels:
        assert p["targets"] and p["datasource"]["uid"] == "${datasource}", p["title"]
        assert 0 <= p["gridPos"]["x"] and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]
    status, text = await http("GET", hl.base + "/metrics")
    assert status == 200
    have = exported(text)
    used: dict[str, set[str]] = {}
    for where, expr in expressions(dash):
        names = metric_names(expr)
        assert names, (where, expr)
        for n in names:
            used.setdefault(n, set()).add(where)
    missing = {n: sorted(w) for n, w in used.items() if n not in have}
    assert not missing, f"the dashboard reads metrics the service does not export: {missing}"
    assert WANTED <= set(used), WANTED - set(used)
    assert any("histogram_quantile" in e and "helpline_press_to_offer_seconds_bucket" in e
               for _, e in expressions(dash))


async def test_a_metric_that_is_not_exported_is_caught(hl):
    status, text = await http("GET", hl.base + "/metrics")
    have = exported(text)
    assert "helpline_ws_connections" in have and "helpline_sms_total" in have
    assert "helpline_press_to_offer_seconds" in have and "helpline_offer_outcomes_total" in have
    assert metric_names("rate(helpline_no_such_metric_total[5m])") - have == {"helpline_no_such_metric_total"}
