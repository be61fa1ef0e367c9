"""Cases followed up (issue 15 part 1) over real WebSockets, PostgreSQL and Redis: the case event log and who
reads it, deadlines and the overdue sweep (the clock moved, or a configuration in seconds), case.extend, and
the parties' satisfaction answers by WebSocket and by SMS."""
from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest

from handlers.context import MEDIATION
from mediation.purge import purge_cases
from testkit.stack import query as q
from testkit.twilio import sms_in
from tests.integration.test_mediation import case_is, mediated_case, open_case


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


async def kinds(hl: Any, case_id: str) -> list[str]:
    return [r["kind"] for r in await q(hl, "SELECT kind FROM case_events WHERE case_id = $1 ORDER BY id",
                                       uuid.UUID(case_id))]


async def metric(hl: Any, name: str) -> float:
    async with aiohttp.ClientSession() as s, s.get(hl.base + "/metrics") as r:
        text = await r.text()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def move_clock(hl: Any, by: timedelta) -> None:
    base = datetime.now(UTC)
    hl.app[MEDIATION].clock = lambda: base + by


# ------------------------------------------------------------------ the event log

async def test_event_log_of_a_case_life_read_by_its_mediator_and_admins_only(hl):
    s = await mediated_case(hl)
    case, med, filer, other, agency = s["case"], s["med"], s["filer"], s["other"], s["agency"]
    await med.ok("case.extend", case_id=case["id"], days=5, reason="the surveyor comes next week")
    await med.ok("agreement.propose", case_id=case["id"], text="Bo repairs the pipe.")
    await filer.ok("agreement.sign", case_id=case["id"])
    await other.ok("agreement.sign", case_id=case["id"])

    log = (await med.ok("case.events", case_id=case["id"]))["events"]
    assert [e["kind"] for e in log] == ["opened", "joined", "taken", "invited", "extended", "proposed", "signed",
                                        "signed", "settled"]
    by = {e["kind"]: e for e in log}
    assert by["taken"]["actor"] == {"id": med.account_id, "name": "Mediator Ma", "role": "mediator"}
    assert by["joined"]["actor"]["id"] == other.account_id and by["settled"]["actor"] is None
    assert by["invited"]["data"] == {"agency_id": agency.account_id}
    assert by["extended"]["data"]["reason"] == "the surveyor comes next week" and by["extended"]["data"]["days"] == 5
    assert all(e["at"].endswith("Z") for e in log) and [e["id"] for e in log] == sorted(e["id"] for e in log)

    admin = await hl.user("admin")
    assert [e["kind"] for e in (await admin.ok("case.events", case_id=case["id"]))["events"]] == [
        e["kind"] for e in log]
    stranger = await hl.user("mediator", name="Other Mediator")
    for c in (filer, other, stranger, agency, await hl.user("clerk"), await hl.user("dispatcher")):
        await c.error("case.events", "forbidden", case_id=case["id"])
    await med.error("case.events", "not_found", case_id=str(uuid.uuid4()))
    await med.error("case.events", "bad_request", case_id="not-a-uuid")


async def test_event_log_closes_withdraws_and_refers_and_is_append_only(hl):
    s = await mediated_case(hl)
    case, med = s["case"], s["med"]
    await med.ok("case.close", case_id=case["id"], outcome="referred")
    assert (await kinds(hl, case["id"]))[-1] == "referred"
    s2_filer, c2 = await open_case(hl, phone="+8613800000009")
    await s2_filer.ok("case.withdraw", case_id=c2["id"])
    assert await kinds(hl, c2["id"]) == ["opened", "withdrawn"]

    conn = await asyncpg.connect(hl.database_url)
    try:
        for sql in ("UPDATE case_events SET kind = 'x'", "DELETE FROM case_events",
                    "UPDATE case_events SET data = '{}'"):
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute(sql)
    finally:
        await conn.close()
    assert (await kinds(hl, case["id"]))[-1] == "referred"


# ------------------------------------------------------------------ deadlines

async def test_deadlines_overdue_marked_once_pushed_counted_then_cleared(hl):
    svc = hl.app[MEDIATION]
    watcher = await hl.user("mediator", name="Watcher Wu")
    await watcher.ok("cases.watch")
    filer, case = await open_case(hl)
    created = parse(case["created_at"])
    assert abs(parse(case["due_at"]) - created - timedelta(days=30)) < timedelta(seconds=5)
    assert abs(parse(case["take_by"]) - created - timedelta(hours=24)) < timedelta(seconds=5)
    assert case["overdue"] is False and case["extended_at"] is None
    assert await svc.sweep_overdue() == 0

    move_clock(hl, timedelta(hours=25))       # past take_by, nobody took it
    assert await svc.sweep_overdue() == 1
    seen = (await watcher.push("case.updated", lambda m: m["case"]["id"] == case["id"] and m["case"]["overdue"]))
    assert seen["case"]["take_by"] == case["take_by"]
    await filer.push("case.updated", lambda m: m["case"]["overdue"] is True)
    assert await svc.sweep_overdue() == 0 and await svc.sweep_overdue() == 0     # marked once
    events = (await hl.user("admin")).ok
    log = (await events("case.events", case_id=case["id"]))["events"]
    assert [e["kind"] for e in log].count("overdue") == 1
    assert log[-1]["data"]["reason"] == "take" and log[-1]["actor"] is None
    assert await metric(hl, "helpline_cases_overdue") == 1
    assert await metric(hl, "helpline_cases_became_overdue_total") == 1

    med = await hl.user("mediator", name="Late Li")
    taken = (await med.ok("case.take", case_id=case["id"]))["case"]
    assert taken["overdue"] is False and taken["take_by"] is None       # in time again: due_at is far
    assert await svc.sweep_overdue() == 0 and await metric(hl, "helpline_cases_overdue") == 0

    move_clock(hl, timedelta(days=31))        # past due_at
    assert await svc.sweep_overdue() == 1
    await watcher.push("case.updated", lambda m: m["case"]["id"] == case["id"] and m["case"]["overdue"]
                       and m["case"]["mediator"] is not None)
    assert (await events("case.events", case_id=case["id"]))["events"][-1]["data"]["reason"] == "due"
    assert await metric(hl, "helpline_cases_became_overdue_total") == 2

    ext = (await med.ok("case.extend", case_id=case["id"], days=10, reason="parties abroad until December"))["case"]
    assert ext["overdue"] is False and parse(ext["due_at"]) - parse(taken["due_at"]) == timedelta(days=10)
    assert ext["extended_at"] is not None
    await watcher.push("case.updated", lambda m: m["case"]["id"] == case["id"] and not m["case"]["overdue"]
                       and m["case"]["extended_at"] is not None)
    assert await svc.sweep_overdue() == 0


@pytest.mark.config(mediation_take_within_h="0.0003", mediation_sweep_s="0.2")
async def test_the_sweep_on_every_node_marks_an_untaken_case_within_seconds(hl):
    watcher = await hl.user("mediator", name="Watcher Wu")
    await watcher.ok("cases.watch")
    _, case = await open_case(hl)           # take_by about a second after filing
    got = await watcher.push("case.updated", lambda m: m["case"]["id"] == case["id"] and m["case"]["overdue"],
                             timeout=15)
    assert got["case"]["status"] == "filed"
    assert await kinds(hl, case["id"]) == ["opened", "overdue"]


async def test_extend_rules_over_the_wire(hl):
    s = await mediated_case(hl)
    case, med, filer = s["case"], s["med"], s["filer"]
    await med.error("case.extend", "bad_request", case_id=case["id"], days=5, reason="   ")
    await med.error("case.extend", "bad_request", case_id=case["id"], days=0, reason="why")
    await med.error("case.extend", "bad_request", case_id=case["id"], days=91, reason="why")
    err = await med.error("case.extend", "bad_request", case_id=case["id"], days=5)
    assert "reason" in err["message"]
    await (await hl.user("mediator")).error("case.extend", "forbidden", case_id=case["id"], days=5, reason="x")
    await filer.error("case.extend", "forbidden", case_id=case["id"], days=5, reason="x")
    before = (await med.ok("case.extend", case_id=case["id"], days=7, reason="expert opinion"))["case"]
    await med.error("case.extend", "conflict", case_id=case["id"], days=3, reason="once more")
    after = (await med.ok("cases.mine"))["cases"][0]
    assert after["due_at"] == before["due_at"]
    assert (await kinds(hl, case["id"])).count("extended") == 1


# ------------------------------------------------------------------ satisfaction

async def test_feedback_by_websocket_once_per_party_never_shown_to_others(hl):
    s = await mediated_case(hl)
    case, med, filer, other = s["case"], s["med"], s["filer"], s["other"]
    await filer.error("case.feedback", "conflict", case_id=case["id"], score=4)        # not closed yet
    await med.ok("case.close", case_id=case["id"], outcome="failed")
    mine = (await filer.push("case.updated", case_is(case["id"], "failed")))["case"]
    assert (await kinds(hl, case["id"]))[-1] == "closed"
    assert mine["feedback"]["score"] is None and mine["feedback"]["asked_at"]
    assert (await med.push("case.updated", case_is(case["id"], "failed")))["case"]["feedback"] is None

    await filer.error("case.feedback", "bad_request", case_id=case["id"], score=0)
    await filer.error("case.feedback", "bad_request", case_id=case["id"], score=6)
    for c in (await hl.user("resident"), med, s["agency"]):
        await c.error("case.feedback", "forbidden", case_id=case["id"], score=3)
    answered = (await filer.ok("case.feedback", case_id=case["id"], score=2, comment=" Too slow "))["case"]
    assert answered["feedback"]["score"] == 2 and answered["feedback"]["comment"] == "Too slow"
    await filer.error("case.feedback", "conflict", case_id=case["id"], score=5)
    rows = await q(hl, "SELECT party_id, score, comment, answered_via FROM case_feedback ORDER BY asked_at")
    assert {(str(r["party_id"]), r["score"], r["comment"]) for r in rows} == {
        (filer.account_id, 2, "Too slow"), (other.account_id, None, None)}

    theirs = next(c for c in (await other.ok("cases.mine"))["cases"] if c["id"] == case["id"])
    assert theirs["feedback"]["score"] is None and "Too slow" not in str(theirs)
    await other.ok("case.feedback", case_id=case["id"], score=5)
    for c in (med, s["agency"]):
        seen = next(x for x in (await c.ok("cases.mine"))["cases"] if x["id"] == case["id"])
        assert seen["feedback"] is None and "Too slow" not in str(seen)
    report = await q(hl, "SELECT asked, answered, mean_score, score_2, score_5 FROM case_satisfaction_monthly")
    assert [tuple(r) for r in report] == [(2, 2, 3.5, 1, 1)]
    conn = await asyncpg.connect(hl.database_url)
    try:
        for sql in ("UPDATE case_feedback SET score = 1", "DELETE FROM case_feedback"):
            with pytest.raises(asyncpg.RaiseError):
                await conn.execute(sql)
        # past the retention period `helpline purge` blanks the comment (a party's words); the score stays
        await conn.execute("UPDATE cases SET closed_at = now() - interval '400 days'")
        async with conn.transaction():
            await purge_cases(conn, 180)
        got = await conn.fetch("SELECT score, comment FROM case_feedback ORDER BY score")
        assert [tuple(r) for r in got] == [(2, None), (5, None)]
    finally:
        await conn.close()


BO = "+8613912345678"


async def test_feedback_by_sms_a_bare_digit_while_pending(shl, fake):
    filer = await shl.user("resident", name="Ann", phone="+8613800000001")
    case = (await filer.ok("case.open", category="property", summary="fence",
                           other_parties=[{"name": "Bo", "phone": BO}]))["case"]
    st, xml = await sms_in(shl.base, BO, f"JOIN {case['join_code']}")
    assert st == 200 and case["ref_no"] in xml
    st, xml = await sms_in(shl.base, BO, "3")      # before the case closes: a chat message, no answer
    assert "Delivered" in xml
    med = await shl.user("mediator", name="Med")
    await med.ok("case.take", case_id=case["id"])
    await med.ok("case.close", case_id=case["id"], outcome="failed")
    asked = await fake_wait(fake, BO, "Reply 1-5")
    assert case["ref_no"] in asked and "满意" in asked

    st, xml = await sms_in(shl.base, BO, "4")
    assert "Thank you: 4/5" in xml and case["ref_no"] in xml
    st, xml = await sms_in(shl.base, BO, "1")
    assert "already answered (4/5)" in xml
    rows = await q(shl, "SELECT score, answered_via FROM case_feedback WHERE asked_via = 'sms'")
    assert [tuple(r) for r in rows] == [(4, "sms")]
    await filer.error("case.feedback", "bad_request", case_id=case["id"], score=9)
    await filer.ok("case.feedback", case_id=case["id"], score=3)
    assert (await q(shl, "SELECT count(*) AS n FROM case_feedback WHERE score IS NOT NULL"))[0]["n"] == 2


async def fake_wait(fake: Any, phone: str, needle: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in fake.to(phone):
            if needle in m["Body"]:
                return str(m["Body"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"no SMS to {phone} with {needle!r}: {[m['Body'] for m in fake.to(phone)]}")



async def test_by_sms_the_pending_question_takes_a_bare_digit_before_a_note_on_an_open_incident(shl, fake):
    """The order of docs/sms.md: a bare 1-5 answers the pending question even while the party has an open
    report (whose note would otherwise take the text); afterwards digits are notes on that report again."""
    filer = await shl.user("resident", name="Ann", phone="+8613800000001")
    case = (await filer.ok("case.open", category="property", summary="fence",
                           other_parties=[{"name": "Bo", "phone": BO}]))["case"]
    await sms_in(shl.base, BO, f"JOIN {case['join_code']}")
    med = await shl.user("mediator", name="Med")
    await med.ok("case.take", case_id=case["id"])
    await med.ok("case.close", case_id=case["id"], outcome="referred")
    await fake_wait(fake, BO, "Reply 1-5")
    st, xml = await sms_in(shl.base, BO, "HELP the neighbour is shouting at my door")
    assert st == 200 and "H-" in xml
    st, xml = await sms_in(shl.base, BO, "５")              # full-width: read as 5
    assert "Thank you: 5/5" in xml
    st, xml = await sms_in(shl.base, BO, "2")               # answered: now a note on the open report
    assert "Thank you" not in xml and "already" not in xml
    notes = await q(shl, "SELECT note FROM incidents")
    assert "2" in notes[0]["note"]
    rows = await q(shl, "SELECT score, answered_via FROM case_feedback WHERE asked_via = 'sms'")
    assert [tuple(r) for r in rows] == [(5, "sms")]


async def test_sweeps_at_once_mark_each_case_once(hl):
    """Every node sweeps: sweeps running at the same moment (here five, sharing one database as nodes do)
    lock what they mark with SKIP LOCKED and never look at a marked case again: each case once."""
    svc = hl.app[MEDIATION]
    ids = []
    for n in range(4):                       # three cases each (a filer's cases are rate-limited)
        filer = await hl.user("resident", name=f"Filer {n}", phone=f"+861380000001{n}")
        ids += [(await filer.ok("case.open", category="other", summary=f"case {i}",
                                other_parties=[{"name": "Bo"}]))["case"]["id"] for i in range(3)]
    move_clock(hl, timedelta(hours=30))
    marked = await asyncio.gather(*(svc.sweep_overdue(limit=5) for _ in range(5)))
    while sum(marked) < len(ids):            # a sweep takes at most `limit`; the next ticks take the rest
        got = await svc.sweep_overdue(limit=5)
        assert got > 0
        marked.append(got)
    assert sum(marked) == len(ids)
    rows = await q(hl, "SELECT case_id, count(*) AS n FROM case_events WHERE kind = 'overdue' GROUP BY case_id")
    assert sorted(str(r["case_id"]) for r in rows) == sorted(ids) and {r["n"] for r in rows} == {1}
    assert await svc.sweep_overdue() == 0
