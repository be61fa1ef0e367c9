"""The console rings (issue 12): a dispatcher's "I'm on it" (incident.ack) in the incident log and on every
console, and the supervisors texted about an escalation nobody took, through the real WebSocket, the real
CLI and the Twilio stand-in."""
from __future__ import annotations

import functools
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from testkit.client import Client, http, incident_is
from testkit.geo import near
from testkit.nodes import InProcess
from testkit.runtime import REPO, until
from testkit.stack import Stack, query
from testkit.twilio import FakeTwilio, sms_app

SUP_PHONE = "+8613900001111"
SUP2_PHONE = "+8613900002222"
DISP_PHONE = "+8613900003333"
RESIDENT_PHONE = "+8613900004444"


async def escalated(hl: Any, note: str = "", category: str = "other") -> dict[str, Any]:
    """A report no one can be offered (no responder on duty): escalated at once."""
    resident = await hl.resident()
    inc: dict[str, Any] = (await resident.ok("help.request", request_id=uuid.uuid4().hex, category=category,
                                             note=note, **near(0)))["incident"]
    assert inc["status"] == "escalated", inc
    return inc


def acked_by(m: dict[str, Any], *ids: str) -> bool:
    return [a["id"] for a in m["incident"]["acknowledged_by"]] == list(ids)


async def metrics(app: Any) -> str:
    st, text = await http("GET", app.base + "/metrics")
    assert st == 200
    return str(text)


async def events(c: Client, incident_id: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in (await c.ok("incident.events", incident_id=incident_id))["events"] if e["kind"] == kind]


# ------------------------------------------------------------------ incident.ack

async def test_ack_is_logged_shown_on_every_console_and_idempotent(hl):
    one = await hl.user("dispatcher", name="Ops Zhang")
    two = await hl.user("dispatcher", name="Ops Li")
    for d in (one, two):
        await d.ok("queue.watch")
    inc = await escalated(hl)
    assert inc["acknowledged_by"] == []

    got = (await one.ok("incident.ack", incident_id=inc["id"]))["incident"]
    assert [(a["id"], a["name"], a["status"]) for a in got["acknowledged_by"]] == [
        (one.account_id, "Ops Zhang", "escalated")]
    assert got["status"] == "escalated" and got["acknowledged_by"][0]["at"].endswith("Z")
    # the other console is told who took it
    seen = await two.push("incident.updated",
                          lambda m: m["incident"]["id"] == inc["id"] and acked_by(m, one.account_id))
    assert seen["incident"]["acknowledged_by"][0]["name"] == "Ops Zhang"
    logged = await events(two, inc["id"], "acknowledged")
    assert len(logged) == 1 and logged[0]["actor"]["id"] == one.account_id
    assert logged[0]["data"] == {"status": "escalated"}

    # again: nothing new, no event, no push, the same version
    again = (await one.ok("incident.ack", incident_id=inc["id"]))["incident"]
    assert again["version"] == got["version"] and again["acknowledged_by"] == got["acknowledged_by"]
    assert len(await events(one, inc["id"], "acknowledged")) == 1

    # a second dispatcher joins in: both are shown
    both = (await two.ok("incident.ack", incident_id=inc["id"]))["incident"]
    assert [a["id"] for a in both["acknowledged_by"]] == [one.account_id, two.account_id]
    await one.push("incident.updated", lambda m: m["incident"]["id"] == inc["id"]
                   and acked_by(m, one.account_id, two.account_id))
    await one.no_push("incident.updated", lambda m: m["incident"]["id"] == inc["id"]
                      and len(m["incident"]["acknowledged_by"]) == 1 and m["incident"]["version"] > got["version"])
    # an admin may take it too
    admin = await hl.user("admin")
    assert len((await admin.ok("incident.ack", incident_id=inc["id"]))["incident"]["acknowledged_by"]) == 3
    # /metrics counts the three recorded acknowledgements, not the repeated one
    assert 'helpline_incident_acks_total{via="ws"} 3.0' in await metrics(hl)


async def test_ack_refused_to_others_and_on_bad_or_finished_incidents(hl):
    disp = await hl.user("dispatcher")
    inc = await escalated(hl)
    for role in ("responder", "mediator", "agency"):
        c = await hl.user(role, skills=["medical"] if role == "responder" else None)
        await c.error("incident.ack", "forbidden", incident_id=inc["id"])
    reporter = await hl.resident()
    await reporter.error("incident.ack", "forbidden", incident_id=inc["id"])
    await disp.error("incident.ack", "bad_request", incident_id="not-a-uuid")
    await disp.error("incident.ack", "bad_request")
    await disp.error("incident.ack", "not_found", incident_id=str(uuid.uuid4()))
    # nothing of the refused ones landed
    assert (await disp.ok("incident.events", incident_id=inc["id"]))["incident"]["acknowledged_by"] == []
    await disp.ok("incident.close", incident_id=inc["id"], disposition="false_alarm")
    await disp.error("incident.ack", "conflict", incident_id=inc["id"])


async def test_a_new_p1_taken_while_offered_is_shown_taken_then_rings_again_if_it_escalates(hl):
    """The page rings by the same rule: the status in each acknowledgement says what it covered."""
    medic = await hl.user("responder", skills=["medical"])
    await medic.ok("duty.start", **near(0.001))
    disp = await hl.user("dispatcher")
    await disp.ok("queue.watch")
    resident = await hl.resident()
    inc = (await resident.ok("help.request", request_id=uuid.uuid4().hex, category="medical",
                             **near(0)))["incident"]
    assert inc["priority"] == 1 and inc["status"] == "offered"
    got = (await disp.ok("incident.ack", incident_id=inc["id"]))["incident"]
    assert got["acknowledged_by"][0]["status"] == "offered"
    offer = await medic.push("offer", lambda m: m["incident"]["id"] == inc["id"])
    await medic.ok("offer.decline", offer_id=offer["offer_id"])        # the only candidate: escalated
    await disp.push("incident.updated", incident_is(inc["id"], "escalated"))
    # the earlier ack covered the new P1, not the escalation: the same dispatcher's click counts again
    renewed = (await disp.ok("incident.ack", incident_id=inc["id"]))["incident"]
    assert [(a["id"], a["status"]) for a in renewed["acknowledged_by"]] == [(disp.account_id, "escalated")]
    assert [e["data"]["status"] for e in await events(disp, inc["id"], "acknowledged")] == ["offered", "escalated"]


# ------------------------------------------------------------------ supervisors

def cli(app: InProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server.cli", *args], env=app.env, cwd=REPO, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
async def sup(stack: Stack, clean_db: None, fake: FakeTwilio) -> AsyncIterator[InProcess]:
    """Twilio at the stand-in; supervisors texted 1 s after an escalation nobody took."""
    app = await sms_app(stack, fake, dispatch_supervisor_after_s=1)
    try:
        yield app
    finally:
        await app.stop()


async def supervisors(app: InProcess) -> None:
    """A supervisor with a phone (marked by `user add`), one marked later by `user set` without a phone, one
    with a phone marked and then unmarked, and a plain dispatcher with a phone: only the first is texted."""
    assert cli(app, "user", "add", "boss", "--role", "dispatcher", "--password", "Pw-123456!", "--name", "Chief Wu",
               "--phone", SUP_PHONE, "--supervisor").returncode == 0
    await app.add_user("boss2", "dispatcher")
    assert cli(app, "user", "set", "boss2", "--supervisor").returncode == 0
    await app.add_user("ex-boss", "admin", phone=SUP2_PHONE)
    assert cli(app, "user", "set", "ex-boss", "--supervisor").returncode == 0
    assert cli(app, "user", "set", "ex-boss", "--no-supervisor").returncode == 0
    await app.add_user("plain", "dispatcher", phone=DISP_PHONE)
    rows = await query(app, "SELECT username FROM accounts WHERE supervisor ORDER BY username")
    assert [r["username"] for r in rows] == ["boss", "boss2"]


async def test_an_escalation_nobody_took_is_texted_once_to_supervisors_with_a_phone(sup, fake):
    await supervisors(sup)
    disp = await sup.user("dispatcher")
    inc = await escalated(sup, note=f"call me on {RESIDENT_PHONE}, third floor")
    texts = await until(lambda: fake.to(SUP_PHONE), timeout=15, what="the supervisor text")
    body = texts[0]["Body"]
    assert inc["ref_no"] in body and "other" in body and "/dispatch" in body
    assert RESIDENT_PHONE not in body and "third floor" not in body      # neither the resident's number nor words
    alerted = await events(disp, inc["id"], "supervisor_alerted")
    assert len(alerted) == 1 and alerted[0]["data"]["texted"] == 1 and alerted[0]["data"]["waited_s"] >= 1

    # a later escalation gets a text of its own, naming only itself: the first was not texted again meanwhile
    later = await escalated(sup, category="police")
    await until(lambda: len(fake.to(SUP_PHONE)) == 2, timeout=15, what="the second supervisor text")
    second = fake.to(SUP_PHONE)[1]["Body"]
    assert later["ref_no"] in second and inc["ref_no"] not in second and "more" not in second
    assert len(await events(disp, inc["id"], "supervisor_alerted")) == 1
    assert fake.to(SUP2_PHONE) == [] and fake.to(DISP_PHONE) == []       # unmarked; never marked
    rows = await query(sup, "SELECT to_phone, kind, status FROM sms_outbox WHERE kind = 'supervisor'")
    assert sorted(r["to_phone"] for r in rows) == [SUP_PHONE, SUP_PHONE]
    async def counted() -> bool:    # counted once its transaction committed: by then, or just after
        return "helpline_supervisor_texts_total 2.0" in await metrics(sup)
    await until(counted, what="two supervisor texts counted in /metrics")


async def test_no_text_when_acknowledged_in_time(sup, fake):
    await supervisors(sup)
    disp = await sup.user("dispatcher")
    taken = await escalated(sup)
    await disp.ok("incident.ack", incident_id=taken["id"])
    left = await escalated(sup, category="police")      # the barrier: its text proves the sweeper ran past 1 s
    await until(lambda: fake.to(SUP_PHONE), timeout=15, what="the supervisor text of the untaken incident")
    body = fake.to(SUP_PHONE)[0]["Body"]
    assert left["ref_no"] in body and taken["ref_no"] not in body and "more" not in body
    assert await events(disp, taken["id"], "supervisor_alerted") == []
    assert len(fake.to(SUP_PHONE)) == 1


async def test_several_escalations_at_once_cost_each_supervisor_one_text(sup, fake):
    await supervisors(sup)
    disp = await sup.user("dispatcher")
    incs = [await escalated(sup) for _ in range(4)]
    await until(lambda: fake.to(SUP_PHONE), timeout=15, what="the supervisor text")
    for inc in incs:
        assert len(await events(disp, inc["id"], "supervisor_alerted")) == 1     # all named in that one text
    texts = fake.to(SUP_PHONE)
    assert len(texts) == 1, texts
    assert "+3 more" in texts[0]["Body"] and incs[0]["ref_no"] in texts[0]["Body"]


async def test_without_a_supervisor_phone_nothing_is_sent_but_the_log_says_so(sup, fake):
    await sup.add_user("boss2", "dispatcher")
    assert cli(sup, "user", "set", "boss2", "--supervisor").returncode == 0
    disp = await sup.user("dispatcher")
    inc = await escalated(sup)
    alerted = await until(lambda: events(disp, inc["id"], "supervisor_alerted"), timeout=15, what="alerted")
    assert alerted[0]["data"]["texted"] == 0
    assert await query(sup, "SELECT id FROM sms_outbox WHERE kind = 'supervisor'") == []
    assert fake.sent == []


@pytest.mark.config(dispatch_supervisor_after_s=0)
async def test_supervisor_after_s_zero_texts_no_one(hl):
    await hl.add_user("boss", "dispatcher", phone=SUP_PHONE)
    assert cli(hl, "user", "set", "boss", "--supervisor").returncode == 0
    disp = await hl.user("dispatcher")
    inc = await escalated(hl)
    # the barrier: an offer expiring (2 s, by the same worker's tick) comes after several ticks past 1 s
    medic = await hl.user("responder", skills=["medical"])
    await medic.ok("duty.start", **near(0.001))
    other = (await (await hl.resident()).ok("help.request", request_id=uuid.uuid4().hex, category="medical",
                                            **near(0)))["incident"]
    offer = await medic.push("offer", lambda m: m["incident"]["id"] == other["id"])
    assert (await medic.push("offer.withdrawn", lambda m: m["offer_id"] == offer["offer_id"]))["reason"] == "expired"
    assert await events(disp, inc["id"], "supervisor_alerted") == []
    assert await query(hl, "SELECT id FROM sms_outbox WHERE kind = 'supervisor'") == []


async def test_supervisor_flags_through_the_cli_refuse_what_makes_no_sense(hl):
    await hl.add_user("medic", "responder", skills=["medical"])
    bad = cli(hl, "user", "set", "medic", "--supervisor")
    assert bad.returncode == 1 and "supervisor" in bad.stderr
    bad = cli(hl, "user", "add", "res1", "--role", "mediator", "--password", "Pw-123456!", "--supervisor")
    assert bad.returncode == 1 and "supervisor" in bad.stderr
    await hl.add_user("boss", "dispatcher")
    assert cli(hl, "user", "set", "boss", "--supervisor", "--phone", "139 0000 5555").returncode == 0
    rows = await query(hl, "SELECT supervisor, phone FROM accounts WHERE username = 'boss'")
    assert rows[0]["supervisor"] and rows[0]["phone"] == "+8613900005555"
    bad = cli(hl, "user", "set", "boss", "--phone", "12")
    assert bad.returncode == 1 and "phone" in bad.stderr
    # a role change away from dispatch staff ends it
    assert cli(hl, "user", "set", "boss", "--role", "mediator").returncode == 0
    rows = await query(hl, "SELECT supervisor FROM accounts WHERE username = 'boss'")
    assert not rows[0]["supervisor"]
    # the account's view says it
    await hl.add_user("boss3", "admin")
    assert cli(hl, "user", "set", "boss3", "--supervisor").returncode == 0
    token = await hl.login("boss3")
    c = await hl.connect(token)
    assert c.welcome["account"]["supervisor"] is True


TEXTED = "SELECT 1 FROM sms_outbox WHERE kind = 'supervisor' HAVING count(*) >= $1"


@pytest.mark.config(dispatch_supervisor_after_s=1)
async def test_two_nodes_text_each_burst_of_escalations_once(cluster):
    """Both nodes' sweepers look every tick; each burst is texted once, each incident logged alerted once."""
    nodes = [await cluster.start_node(), await cluster.start_node()]
    assert cluster.cli("user", "add", "boss", "--role", "admin", "--password", "Pw-123456!",
                       "--phone", SUP_PHONE, "--supervisor").returncode == 0
    disp = await nodes[0].user("dispatcher")
    seen: list[str] = []
    for burst in range(4):
        incs = [await escalated(nodes[i % 2]) for i in range(3)]
        seen += [i["id"] for i in incs]
        await until(functools.partial(query, cluster, TEXTED, burst + 1), timeout=20, what=f"text {burst + 1}")
        for inc in incs:
            assert len(await events(disp, inc["id"], "supervisor_alerted")) == 1
    rows = await query(cluster, "SELECT to_phone, incident_id FROM sms_outbox WHERE kind = 'supervisor' ORDER BY id")
    assert len(rows) == 4 and {r["to_phone"] for r in rows} == {SUP_PHONE}
    alerted = await query(cluster, "SELECT incident_id, count(*) AS n FROM incident_events"
                                   " WHERE kind = 'supervisor_alerted' GROUP BY incident_id")
    assert sorted(str(r["incident_id"]) for r in alerted) == sorted(seen) and {r["n"] for r in alerted} == {1}
