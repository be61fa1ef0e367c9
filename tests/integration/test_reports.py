"""The incident report (issue 16) on a hand-built history: every count, ratio and percentile checked
against a plain calculation over the same history; the area rules; bad input; the CSV read back; the
facts the triggers keep equal to the facts recomputed from the whole log, on a real help flow too."""
from __future__ import annotations

import csv
import io
import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import pytest

from reports import store
from server.purge import purge
from testkit.client import http
from testkit.geo import near

TZ = ZoneInfo("Asia/Shanghai")
DAY0 = datetime(2026, 3, 2, 10, 0, tzinfo=TZ)       # a Monday, 10:00 in the city
TARGET = 60.0


def pct(xs: list[float], q: float) -> float | None:
    """The plain calculation: linear interpolation between the closest ranks (percentile_cont)."""
    if not xs:
        return None
    s = sorted(xs)
    pos = (len(s) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@dataclass
class Inc:
    day: int
    category: str
    channel: str
    grid: str | None
    status: str
    disposition: str | None = None
    # (kind, seconds after the press, data)
    events: list[tuple[str, float, dict[str, Any]]] = field(default_factory=list)

    def first(self, kind: str) -> float | None:
        return next((t for k, t, _ in self.events if k == kind), None)

    @property
    def created(self) -> datetime:
        return DAY0 + timedelta(days=self.day)


def offered(t: float) -> tuple[str, float, dict[str, Any]]:
    return ("offered", t, {})


def accepted(t: float) -> tuple[str, float, dict[str, Any]]:
    return ("assigned", t, {"by": "accept"})


HISTORY = [
    Inc(0, "medical", "ws", "G1", "resolved", None,
        [offered(2), accepted(12), ("en_route", 20, {}), ("on_scene", 300, {}), ("resolved", 900, {})]),
    Inc(0, "medical", "sms", "G1", "resolved", None,
        [offered(3), ("offer_declined", 10, {}), offered(11), accepted(40), ("on_scene", 400, {}),
         ("resolved", 1500, {})]),
    Inc(1, "medical", "ws", "G2", "resolved", "resolved",
        [offered(1.5), ("offer_expired", 21.5, {}), offered(22), ("offer_expired", 42, {}), ("escalated", 42, {}),
         ("assigned", 95, {"by": "dispatcher"}), ("on_scene", 700, {}), ("closed", 2000, {})]),
    Inc(1, "fire", "http", "G2", "cancelled", "false_alarm",
        [offered(4), accepted(30), ("closed", 100, {})]),
    Inc(2, "fire", "ws", "G1", "cancelled", None, [offered(5), ("cancelled", 30, {})]),
    Inc(7, "police", "phone", None, "resolved", None,
        [offered(2.5), accepted(50), ("on_scene", 250, {}), ("resolved", 600, {})]),
    Inc(8, "police", "ws", "G2", "escalated", None, [("escalated", 0.5, {})]),
    Inc(9, "fire", "ws", "G1", "offered", None, [offered(6)]),
]


def expected(incs: list[Inc]) -> dict[str, Any]:
    def times(f: Any) -> list[float]:
        return [x for x in (f(i) for i in incs) if x is not None]

    def ps(xs: list[float]) -> dict[str, float | None]:
        return {"p50": pct(xs, .5), "p90": pct(xs, .9), "p95": pct(xs, .95)}

    def on_scene(i: Inc) -> float | None:
        a, s = i.first("assigned"), i.first("on_scene")
        return s - a if a is not None and s is not None else None

    def resolved(i: Inc) -> float | None:
        return next((t for k, t, _ in i.events if k in ("resolved", "closed")), None) if i.status == "resolved" \
            else None

    def closed(i: Inc) -> float | None:
        return next((t for k, t, _ in i.events if k in ("resolved", "closed", "cancelled")), None) \
            if i.status in ("resolved", "cancelled") else None

    offers = sum(1 for i in incs for k, _, _ in i.events if k == "offered")
    acc = sum(1 for i in incs for k, _, d in i.events if k == "assigned" and d.get("by") == "accept")
    within = [i for i in incs if not (i.first("assigned") is None and (closed(i) or 1e9) <= TARGET)]
    return {
        "received": len(incs), "escalated": sum(any(k == "escalated" for k, _, _ in i.events) for i in incs),
        "cancelled": sum(i.status == "cancelled" and i.disposition != "false_alarm" for i in incs),
        "resolved": sum(i.status == "resolved" for i in incs),
        "false_alarms": sum(i.disposition == "false_alarm" for i in incs),
        "press_to_first_offer": ps(times(lambda i: i.first("offered"))),
        "press_to_assigned": ps(times(lambda i: i.first("assigned"))),
        "assigned_to_on_scene": ps(times(on_scene)),
        "press_to_resolved": ps(times(resolved)),
        "offers": offers, "offers_accepted": acc,
        "offer_acceptance": acc / offers if offers else None,
        "offers_per_incident": offers / len(incs) if incs else None,
        "assigned_within_target": (sum(1 for i in within if (i.first("assigned") or 1e9) <= TARGET) / len(within)
                                   if within else None),
    }


def close_to(got: dict[str, Any], want: dict[str, Any]) -> None:
    for k, v in want.items():
        g = got[k]
        if isinstance(v, dict):
            close_to(g, v)
        elif isinstance(v, float):
            assert g is not None and math.isclose(g, v, rel_tol=1e-9, abs_tol=1e-6), (k, g, v)
        else:
            assert g == v, (k, g, v)


async def build(database_url: str, incs: list[Inc]) -> list[str]:
    """The history written as the service would have: the incident row, then its log (the triggers keep the
    facts); the grids D1 > G1 and D2 > G2."""
    conn = await asyncpg.connect(database_url)
    try:
        box = '{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}'
        for code, level, parent, path in (("D1", "district", None, ["D1"]), ("G1", "grid", "D1", ["D1", "G1"]),
                                          ("D2", "district", None, ["D2"]), ("G2", "grid", "D2", ["D2", "G2"])):
            await conn.execute("INSERT INTO grids (code, name, level, parent, path, geometry, bbox) VALUES"
                               " ($1, $1 || ' name', $2, $3, $4, $5::jsonb, box(point(0,0), point(1,1)))",
                               code, level, parent, path, box)
        reporter = await conn.fetchval("INSERT INTO accounts (role, name) VALUES ('resident', 'Li Lei') RETURNING id")
        ids = []
        for n, i in enumerate(incs):
            iid = await conn.fetchval(
                "INSERT INTO incidents (ref_no, reporter_id, request_id, status, category, skill, priority, lat, lon,"
                " note, channel, disposition, grid_code, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, 'general', 2, 31.2, 121.4, 'smoke on the stairs', $6, $7, $8, $9, $9)"
                " RETURNING id", f"H-{n}", reporter, uuid.uuid4().hex, i.status, i.category, i.channel,
                i.disposition, i.grid, i.created)
            ids.append(str(iid))
            for kind, t, data in [("reported", 0.0, {"lat": 31.2, "lon": 121.4}), *i.events]:
                await conn.execute("INSERT INTO incident_events (incident_id, at, kind, data) VALUES ($1, $2, $3, $4)",
                                   iid, i.created + timedelta(seconds=t), kind, json.dumps(data))
        return ids
    finally:
        await conn.close()


async def staff(hl: Any, role: str, *, grids: list[str] | None = None, limited: bool = False) -> str:
    name = f"{role}-{uuid.uuid4().hex[:6]}"
    aid = await hl.add_user(name, role, name=name)
    if grids:
        conn = await asyncpg.connect(hl.database_url)
        try:
            await conn.execute("INSERT INTO account_grids (account_id, code) SELECT $1, unnest($2::text[])",
                               aid, grids)
            await conn.execute("UPDATE accounts SET area_limited = $2 WHERE id = $1", aid, limited)
        finally:
            await conn.close()
    token: str = await hl.login(name)
    return token


async def report(hl: Any, token: str, **q: str) -> tuple[int, Any]:
    return await http("GET", hl.base + "/api/reports/incidents?" + "&".join(f"{k}={v}" for k, v in q.items()),
                      token=token)


PERIOD = {"from": "2026-03-02", "to": "2026-03-31"}


async def test_every_grouping_matches_a_plain_calculation(hl):
    await build(hl.database_url, HISTORY)
    admin = await staff(hl, "admin")
    keys: dict[str, Any] = {
        "category": lambda i: i.category, "channel": lambda i: i.channel, "grid": lambda i: i.grid or "",
        "day": lambda i: i.created.strftime("%Y-%m-%d"),
        "week": lambda i: (i.created - timedelta(days=i.created.weekday())).strftime("%Y-%m-%d"),
        "month": lambda i: i.created.strftime("%Y-%m")}
    for by, key in keys.items():
        status, body = await report(hl, admin, by=by, **PERIOD)
        assert status == 200, body
        groups = sorted({key(i) for i in HISTORY})
        assert [r["group"] for r in body["rows"]] == groups, by
        for row in body["rows"]:
            close_to(row, expected([i for i in HISTORY if key(i) == row["group"]]))
        close_to(body["total"], expected(HISTORY))
    # the figures in words: 4 resolved, one false alarm, one cancelled, 2 of the 8 escalated; 9 offers, 4 accepted
    status, body = await report(hl, admin, **PERIOD)
    t = body["total"]
    assert (t["received"], t["resolved"], t["false_alarms"], t["cancelled"], t["escalated"]) == (8, 4, 1, 1, 2)
    assert (t["offers"], t["offers_accepted"]) == (9, 4)
    # assigned within 60 s: 12, 40, 30, 50 of 7 (the one cancelled unassigned within 30 s is left out)
    assert math.isclose(t["assigned_within_target"], 4 / 7)
    grid = (await report(hl, admin, by="grid", **PERIOD))[1]
    assert [(r["group"], r["label"]) for r in grid["rows"]] == [("", ""), ("G1", "G1 name"), ("G2", "G2 name")]
    # a shorter period: the first two days only
    status, body = await report(hl, admin, **{"from": "2026-03-02", "to": "2026-03-03"})
    close_to(body["total"], expected([i for i in HISTORY if i.day <= 1]))


async def test_areas_a_limited_dispatcher_sees_only_theirs(hl):
    await build(hl.database_url, HISTORY)
    limited = await staff(hl, "dispatcher", grids=["D1"], limited=True)
    free = await staff(hl, "dispatcher", grids=["D1"])
    admin = await staff(hl, "admin")
    status, body = await report(hl, limited, **PERIOD)
    assert status == 200
    close_to(body["total"], expected([i for i in HISTORY if i.grid == "G1"]))
    status, body = await report(hl, limited, grid="G1", **PERIOD)
    assert status == 200 and body["total"]["received"] == 4
    status, body = await report(hl, limited, grid="D2", **PERIOD)
    assert status == 403 and "grid" in body["error"]["message"]
    status, body = await report(hl, free, **PERIOD)          # not limited: everything
    assert body["total"]["received"] == len(HISTORY)
    status, body = await report(hl, admin, grid="D2", **PERIOD)
    close_to(body["total"], expected([i for i in HISTORY if i.grid == "G2"]))
    status, body = await report(hl, admin, grid="G9", **PERIOD)
    assert status == 400 and body["error"]["message"].startswith("grid:")


async def test_bad_input_names_the_field(hl):
    admin = await staff(hl, "admin")
    for q, fld in ((dict(PERIOD, by="colour"), "by:"), ({"from": "2026-03-05", "to": "2026-03-01"}, "from:"),
                   ({"from": "2025-01-01", "to": "2026-03-01"}, "to:"), ({"from": "2026-02-30"}, "from:"),
                   ({"to": "yesterday"}, "to:"), (dict(PERIOD, format="xls"), "format:")):
        status, body = await report(hl, admin, **q)
        assert status == 400 and body["error"]["code"] == "bad_request", (q, body)
        assert body["error"]["message"].startswith(fld), (q, body)
    status, body = await report(hl, admin, **{"from": "2025-02-24", "to": "2026-03-30"})   # 400 days: fine
    assert status == 200


async def test_csv_reads_back_with_the_csv_module(hl):
    await build(hl.database_url, HISTORY)
    admin = await staff(hl, "admin")
    _, body = await report(hl, admin, by="grid", **PERIOD)
    async with aiohttp.ClientSession() as s, s.get(
            hl.base + "/api/reports/incidents", params={**PERIOD, "by": "grid", "format": "csv"},
            headers={"Authorization": f"Bearer {admin}"}) as r:
        assert r.status == 200 and r.content_type == "text/csv"
        raw = await r.read()
    assert raw.startswith(b"\xef\xbb\xbf")
    table = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [t["group"] for t in table] == [r["group"] for r in body["rows"]] + ["total"]
    for t, row in zip(table, [*body["rows"], body["total"]]):
        assert int(t["received"]) == row["received"] and int(t["false_alarms"]) == row["false_alarms"]
        for name in ("press_to_first_offer", "press_to_assigned", "assigned_to_on_scene", "press_to_resolved"):
            for p in ("p50", "p90", "p95"):
                want = row[name][p]
                cell = t[f"{name}_{p}_s"]
                assert (cell == "" if want is None else math.isclose(float(cell), want, abs_tol=0.0006)), \
                    (name, p, cell, want)
    assert table[1]["label"] == "G1 name"


async def test_the_facts_kept_equal_the_facts_recomputed(hl):
    """A real flow through the service (report, offer, accept, en route, on scene, resolved; a cancel; two
    declines, an escalation and a false alarm closed by a dispatcher): the facts the trigger kept are those
    recomputed from the log."""
    med = await hl.user("responder", skills=["medical", "general"])
    await med.ok("duty.start", **near(0.001))
    res = await hl.resident()
    inc = (await res.ok("help.request", request_id=uuid.uuid4().hex, category="medical", **near(0)))["incident"]
    offer = await med.push("offer", lambda m: m["incident"]["id"] == inc["id"])
    await med.ok("offer.accept", offer_id=offer["offer_id"])
    for st in ("en_route", "on_scene", "resolved"):
        await med.ok("incident.progress", incident_id=inc["id"], status=st)
    other = (await res.ok("help.request", request_id=uuid.uuid4().hex, category="medical", **near(0)))["incident"]
    await res.ok("help.cancel", incident_id=other["id"])
    # declined by both responders in turn, escalated, closed by a dispatcher as a false alarm
    med2 = await hl.user("responder", skills=["medical"])
    await med2.ok("duty.start", **near(0.002))
    disp = await hl.user("dispatcher")
    third = (await res.ok("help.request", request_id=uuid.uuid4().hex, category="medical", **near(0)))["incident"]
    for who in (med, med2):
        offer = await who.push("offer", lambda m: m["incident"]["id"] == third["id"])
        await who.ok("offer.decline", offer_id=offer["offer_id"])
    await res.push("incident.updated", lambda m: m["incident"]["id"] == third["id"]
                   and m["incident"]["status"] == "escalated")
    await disp.ok("incident.close", incident_id=third["id"], disposition="false_alarm")
    conn = await asyncpg.connect(hl.database_url)
    try:
        ids = [str(r["id"]) for r in await conn.fetch("SELECT id FROM incidents")]
        kept = [dict(r) for r in await store.facts(conn, ids)]
        plain = [dict(r) for r in await store.facts_of(conn, ids)]
    finally:
        await conn.close()
    assert len(kept) == 3 and kept == plain
    done = next(k for k in kept if str(k["incident_id"]) == inc["id"])
    assert done["status"] == "resolved" and done["offers"] == done["offers_accepted"] == 1
    assert 0 <= done["first_offer_s"] <= done["assigned_s"] <= done["on_scene_s"] <= done["closed_s"]
    cancelled = next(k for k in kept if str(k["incident_id"]) == other["id"])
    assert cancelled["status"] == "cancelled" and cancelled["closed_s"] is not None and not cancelled["escalated"]
    false = next(k for k in kept if str(k["incident_id"]) == third["id"])
    assert false["escalated"] and false["offers"] == 2 and false["offers_accepted"] == 0
    assert false["disposition"] == "false_alarm" and false["assigned_s"] is None
    assert 0 <= false["first_offer_s"] <= false["closed_s"]


async def test_the_same_report_after_a_purge(hl):
    """helpline purge blanks names, phones, notes, positions and what a call-taker wrote of the caller; the
    report of the period is the same before and after, for every grouping."""
    ids = await build(hl.database_url, HISTORY)
    conn = await asyncpg.connect(hl.database_url)
    try:
        await conn.execute("UPDATE incidents SET caller_name = 'Wang Fang', address = '12 Elm Road', place_id = 'p1'")
        caller = {"caller_name": "Wang Fang", "caller_phone": "+86138****0000", "address": "12 Elm Road"}
        await conn.execute("INSERT INTO incident_events (incident_id, at, kind, data)"
                           " VALUES ($1, $2, 'opened_for_caller', $3)", ids[0], HISTORY[0].created, json.dumps(caller))
    finally:
        await conn.close()
    admin = await staff(hl, "admin")
    groupings = ("category", "grid", "channel", "day", "week", "month")
    before = {by: (await report(hl, admin, by=by, **PERIOD))[1] for by in groupings}
    conn = await asyncpg.connect(hl.database_url)
    try:
        done = await purge(conn, 180)        # the history is from March; the run is later than September
        assert done["incidents"] == 6        # the closed ones; the two still open are kept as they are
        left = await conn.fetch("SELECT note, lat, lon, caller_name, address, place_id FROM incidents"
                                " WHERE purged_at IS NOT NULL")
        assert {tuple(r) for r in left} == {("", None, None, None, None, None)}
        data = await conn.fetch("SELECT data FROM incident_events WHERE incident_id = ANY($1::uuid[])"
                                " AND kind IN ('reported', 'opened_for_caller')", ids[:5])
        assert all(not set(json.loads(r["data"])) & {"lat", "lon", "caller_name", "caller_phone", "address"}
                   for r in data)
        assert await conn.fetchval("SELECT name FROM accounts WHERE role = 'resident'") == "Li Lei"  # open ones
    finally:
        await conn.close()
    after = {by: (await report(hl, admin, by=by, **PERIOD))[1] for by in groupings}
    assert after == before
    close_to(after["category"]["total"], expected(HISTORY))


# ---------------------------------------------------------------- the case report
# (category, grid, status, days after DAY0 filed, days to take or None, days to close or None)
CASES = [
    ("neighbour", "G1", "settled", 0, 0.5, 6.0),
    ("neighbour", "G1", "failed", 0, 1.25, 20.0),
    ("neighbour", "G2", "in_mediation", 1, 2.0, None),
    ("family", "G2", "referred", 3, 0.1, 1.5),
    ("family", None, "withdrawn", 10, None, 0.75),
    ("labour", "G1", "filed", 40, None, None),         # April
]
OVERDUE = {2, 5}                                       # still open past a deadline
SCORES = {0: [5, 4], 1: [2], 3: [3]}                   # the parties' satisfaction answers (one asked, unanswered)


async def build_cases(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        filer = await conn.fetchval("INSERT INTO accounts (role, name) VALUES ('resident', 'Han Mei') RETURNING id")
        med = await conn.fetchval("INSERT INTO accounts (role, name) VALUES ('mediator', 'Zhao') RETURNING id")
        for n, (cat, grid, status, day, take, close) in enumerate(CASES):
            at = DAY0 + timedelta(days=day)
            cid = await conn.fetchval(
                "INSERT INTO cases (ref_no, filer_id, status, category, summary, mediator_id, created_at, updated_at,"
                " closed_at, grid_code) VALUES ($1, $2, $3, $4, 'a wall', $5, $6, $6, $7, $8) RETURNING id",
                f"M-{n}", filer, status, cat, med if take is not None else None, at,
                at + timedelta(days=close) if close is not None else None, grid)
            if take is not None:
                await conn.execute("INSERT INTO case_events (case_id, at, actor_id, kind) VALUES ($1, $2, $3, 'taken')",
                                   cid, at + timedelta(days=take), med)
            if n in OVERDUE:
                await conn.execute("UPDATE cases SET overdue_since = created_at + interval '2 days' WHERE id = $1", cid)
            for score in [*SCORES.get(n, []), None]:
                party = await conn.fetchval("INSERT INTO accounts (role, name) VALUES ('resident', 'p') RETURNING id")
                await conn.execute("INSERT INTO case_feedback (case_id, party_id, asked_via, score, answered_via,"
                                   " answered_at) VALUES ($1, $2, 'ws', $3, $4, $5)", cid, party, score,
                                   "ws" if score else None, at + timedelta(days=30) if score else None)
    finally:
        await conn.close()


def expected_cases(cases: list[tuple[Any, ...]]) -> dict[str, Any]:
    takes = [c[4] for c in cases if c[4] is not None]
    closes = [c[5] for c in cases if c[5] is not None]
    scores = [x for c in cases for x in SCORES.get(CASES.index(c), [])]
    return {"filed": len(cases), "taken": len(takes),
            "overdue": sum(CASES.index(c) in OVERDUE for c in cases), "satisfaction_answers": len(scores),
            "satisfaction_mean": sum(scores) / len(scores) if scores else None,
            **{s: sum(c[2] == s for c in cases) for s in ("settled", "failed", "referred", "withdrawn")},
            "days_to_take": {"p50": pct(takes, .5), "p90": pct(takes, .9)},
            "days_to_close": {"p50": pct(closes, .5), "p90": pct(closes, .9)}}


async def test_the_case_report(hl):
    await build(hl.database_url, [])       # the grids
    await build_cases(hl.database_url)
    mediator, admin, dispatcher = await staff(hl, "mediator"), await staff(hl, "admin"), await staff(hl, "dispatcher")
    period = {"from": "2026-03-01", "to": "2026-04-30"}

    async def cases(token: str, **q: str) -> tuple[int, Any]:
        return await http("GET", hl.base + "/api/reports/cases?" + "&".join(f"{k}={v}" for k, v in q.items()),
                          token=token)

    keys: dict[str, Any] = {"category": lambda c: c[0], "grid": lambda c: c[1] or "",
            "month": lambda c: (DAY0 + timedelta(days=c[3])).strftime("%Y-%m")}
    for by, key in keys.items():
        status, body = await cases(mediator, by=by, **period)
        assert status == 200, body
        assert [r["group"] for r in body["rows"]] == sorted({key(c) for c in CASES})
        for row in body["rows"]:
            close_to(row, expected_cases([c for c in CASES if key(c) == row["group"]]))
        close_to(body["total"], expected_cases(CASES))
    status, body = await cases(admin, grid="D1", **period)
    close_to(body["total"], expected_cases([c for c in CASES if c[1] == "G1"]))
    assert (await cases(dispatcher, **period))[0] == 403
    # by the type of the body a referred case went to: an agency account's type, or one named outside
    conn = await asyncpg.connect(hl.database_url)
    try:
        court = await conn.fetchval("INSERT INTO accounts (role, name, agency_type) VALUES ('agency', 'Court',"
                                    " 'court') RETURNING id")
        await conn.execute("UPDATE cases SET referred_to_agency = $1 WHERE ref_no = 'M-3'", court)
    finally:
        await conn.close()
    status, body = await cases(admin, by="agency", **period)
    assert status == 200 and [r["group"] for r in body["rows"]] == ["", "court"]
    close_to(body["rows"][1], expected_cases([CASES[3]]))
    close_to(body["rows"][0], expected_cases([c for i, c in enumerate(CASES) if i != 3]))
    status, body = await cases(admin, by="channel", **period)
    assert status == 400 and body["error"]["message"].startswith("by:")
    async with aiohttp.ClientSession() as s, s.get(
            hl.base + "/api/reports/cases", params={**period, "format": "csv"},
            headers={"Authorization": f"Bearer {admin}"}) as r:
        table = list(csv.DictReader(io.StringIO((await r.read()).decode("utf-8-sig"))))
    assert table[-1]["group"] == "total" and int(table[-1]["filed"]) == len(CASES)
    assert math.isclose(float(table[-1]["days_to_close_p90"]), pct([6.0, 20.0, 1.5, 0.75], .9) or 0, abs_tol=6e-4)


@pytest.mark.config(database_pool_min=1, database_pool_max=1)
async def test_a_report_with_one_connection_to_spare_does_not_wait_for_a_second(hl):
    """The route takes a second connection for the total only if one is free at once: with a pool of one, the
    report is one statement, with the same figures."""
    await build(hl.database_url, HISTORY)
    admin = await staff(hl, "admin")
    status, body = await report(hl, admin, by="grid", **PERIOD)
    assert status == 200
    close_to(body["total"], expected(HISTORY))
    assert [r["group"] for r in body["rows"]] == ["", "G1", "G2"]
