"""Structured logs (issue 21): a `helpline serve` node with log.format json writes one JSON object a line,
with the ids of the command or request being handled, and no phone number, note or chat text anywhere."""
from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from testkit.client import http
from testkit.geo import near

pytestmark = pytest.mark.cluster

SMS_PHONE, CASE_PHONE, OTHER_PHONE = "+8613911112222", "+8613933334444", "+8613955556666"
NOTE = "Grandma-fell-behind-the-blue-door-7431"
SMS_NOTE = "kitchen-fire-near-stairwell-5520"
CHAT = "I-will-pay-for-the-ceiling-9917"
REQUIRED = ("time", "level", "logger", "message")


def lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [ln for ln in f.read().splitlines() if ln.strip()]


@pytest.mark.config(log_format="json", log_level="DEBUG")
async def test_json_lines_with_ids_and_no_personal_data(cluster):
    node = await cluster.start_node()
    # help by WebSocket: a resident with a note, a responder offered it who accepts
    medic = await node.user("responder", name="Medic Li", skills=["medical"], phone="+8613877778888")
    await medic.ok("duty.start", **near(0.001))
    resident = await node.resident()
    inc = (await resident.ok("help.request", request_id=uuid.uuid4().hex, category="medical",
                             note=NOTE, **near(0)))["incident"]
    offer = await medic.push("offer", lambda m: m["incident"]["id"] == inc["id"])
    await medic.ok("offer.accept", offer_id=offer["offer_id"])
    # help by SMS from a phone, with its words
    status, _ = await http("POST", node.base + "/sms/simulate", json={"from": SMS_PHONE, "body": f"HELP {SMS_NOTE}"})
    assert status == 200
    # a login code asked for by phone
    assert (await http("POST", node.base + "/api/auth/otp/request", json={"phone": CASE_PHONE}))[0] == 202
    # mediation: parties with phones, a chat line, an agreement
    filer = await node.user("resident", name="Ann Filer", phone=CASE_PHONE)
    case = (await filer.ok("case.open", category="neighbour", summary="Water through the ceiling",
                           other_parties=[{"name": "Bo Upstairs", "phone": OTHER_PHONE}]))["case"]
    med = await node.user("mediator", name="Mediator Ma")
    await med.ok("case.take", case_id=case["id"])
    await filer.ok("chat.send", case_id=case["id"], room="joint", client_msg_id=uuid.uuid4().hex, body=CHAT)
    # an HTTP request with the caller's request id, and one without
    rid = "http-" + uuid.uuid4().hex[:8]
    status, _ = await http("GET", f"{node.base}/api/incidents/{inc['id']}", token=await node.device_token(),
                           headers={"X-Request-Id": rid})
    assert status == 403
    # the console texts (a login code, an invitation) are counted as sent (the dashboard's SMS panel)
    sent = 0.0
    for _ in range(50):
        status, metrics = await http("GET", node.base + "/metrics")
        sent = sum(float(ln.rsplit(" ", 1)[1]) for ln in metrics.splitlines()
                   if ln.startswith('helpline_sms_total{result="sent"}'))
        if sent >= 2:
            break
        await asyncio.sleep(0.1)
    assert sent >= 2
    await node.stop()

    raw = lines(node.log_path)
    assert raw, "the node logged nothing"
    records = []
    for ln in raw:
        rec = json.loads(ln)            # every line is one JSON object
        assert isinstance(rec, dict) and all(k in rec for k in REQUIRED), ln
        records.append(rec)
    # a command's lines: its ref (testkit's clients number them r1, r2, ...) as the request id, the account,
    # the incident and its ref number
    help_lines = [r for r in records if r.get("command") == "help.request"]
    assert help_lines and all(r["account_id"] == resident.account_id and r["request_id"].startswith("r")
                              for r in help_lines)
    assert any(r.get("incident_id") == inc["id"] and r.get("ref") == inc["ref_no"] for r in help_lines)
    assert any(r.get("command") == "offer.accept" and r.get("offer_id") == offer["offer_id"]
               and r.get("account_id") == medic.account_id for r in records)
    assert any(r.get("command") == "chat.send" and r.get("case_id") == case["id"] for r in records)
    http_lines = [r for r in records if r.get("request_id") == rid]
    assert http_lines and all(r.get("incident_id") == inc["id"] for r in http_lines)
    assert any(r["logger"] == "sms.gateway" for r in records), "the console texts went out unlogged"
    # nothing personal in any line: no phone (with or without +86), note, chat line or agreement text
    text = "\n".join(raw)
    for secret in (SMS_PHONE, CASE_PHONE, OTHER_PHONE, "+8613877778888", NOTE, SMS_NOTE, CHAT,
                   "Ann Filer", "Bo Upstairs"):
        assert secret not in text, secret
        assert secret.removeprefix("+86") not in text, secret


@pytest.mark.config(log_format="yaml")
async def test_a_bad_log_format_is_refused_at_start(cluster):
    done = cluster.cli("migrate")
    assert done.returncode == 2 and "log.format" in done.stderr

