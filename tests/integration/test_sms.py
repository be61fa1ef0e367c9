"""The SMS channel end to end: signed webhooks in, the real twilio client out to a local stand-in."""
from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg

from handlers.context import SMS, SMS_ROUTER
from sms import texts as sms_mod
from testkit.client import http, incident_is
from testkit.geo import near
from testkit.runtime import until
from testkit.stack import query as q
from testkit.twilio import TW_FROM, FakeTwilio, sms_in, status_in, twilio_signature

PHONE = "+8613800138000"
PHONE_US = "+14155550100"


async def outbox(app: Any, phone: str) -> list[asyncpg.Record]:
    return await q(app, "SELECT * FROM sms_outbox WHERE to_phone = $1 ORDER BY id", phone)


async def sms_incident(app: Any, phone: str) -> dict[str, Any] | None:
    rows = await q(app, "SELECT i.* FROM incidents i JOIN accounts a ON a.id = i.reporter_id WHERE a.phone = $1"
                        " ORDER BY i.created_at DESC", phone)
    return dict(rows[0]) if rows else None


async def test_help_locate_accept_resident_told_by_sms(shl, fake):
    disp = await shl.user("dispatcher")
    await disp.ok("queue.watch")
    medic = await shl.user("responder", name="Medic Wang", skills=["medical"])
    await medic.ok("duty.start", **near(0.002))

    st, xml = await sms_in(shl.base, PHONE_US, "HELP I fell down the stairs")
    assert st == 200 and xml.startswith("<?xml")
    inc = (await disp.push("incident.updated", lambda m: m["incident"]["channel"] == "sms"))["incident"]
    assert inc["status"] == "escalated" and inc["note"] == "I fell down the stairs"
    assert inc["category"] == "medical" and inc["lat"] is None
    assert f"<Message>Helpline {inc['ref_no']}:" in xml

    await disp.ok("incident.locate", incident_id=inc["id"], **near(0))
    offer = await medic.push("offer", lambda m: m["incident"]["id"] == inc["id"])
    await medic.ok("offer.accept", offer_id=offer["offer_id"])

    told = await until(lambda: [m for m in fake.to(PHONE_US) if "Medic Wang" in m["Body"]], what="assigned SMS")
    msg = told[0]
    assert inc["ref_no"] in msg["Body"] and sms_mod.one_segment(msg["Body"])
    assert msg["From"] == TW_FROM and msg["StatusCallback"] == shl.base + "/sms/status"
    # the escalation was in the webhook's reply; then "searching" (after locate) and "assigned"
    assert [m["Body"] for m in fake.to(PHONE_US)] == [
        f"Helpline {inc['ref_no']}: we are contacting a helper near you.",
        f"Helpline {inc['ref_no']}: Medic Wang is coming to help you."]

    await medic.ok("incident.progress", incident_id=inc["id"], status="en_route")
    await until(lambda: len(fake.to(PHONE_US)) == 3, what="en_route SMS")
    assert "on the way" in fake.to(PHONE_US)[-1]["Body"]
    rows = await outbox(shl, PHONE_US)
    assert [r["status"] for r in rows] == ["sent"] * 3 and all(r["provider_sid"] for r in rows)

    # a delivery callback is recorded; a late, earlier state does not overwrite it
    sid = fake.to(PHONE_US)[-1]["sid"]
    assert await status_in(shl.base, sid, "delivered") == 204
    assert await status_in(shl.base, sid, "sent") == 204
    rows = await q(shl, "SELECT delivery_status FROM sms_outbox WHERE provider_sid = $1", sid)
    assert rows[0]["delivery_status"] == "delivered"


async def test_follow_up_text_is_a_live_note(shl, fake):
    disp = await shl.user("dispatcher")
    await disp.ok("queue.watch")
    medic = await shl.user("responder", name="Dr Li", skills=["general"])
    await medic.ok("duty.start", **near(0.001))
    await sms_in(shl.base, PHONE, "HELP")
    inc = (await disp.push("incident.updated", lambda m: m["incident"]["channel"] == "sms"))["incident"]
    assert inc["category"] == "other" and inc["note"] == ""
    await disp.ok("incident.locate", incident_id=inc["id"], **near(0))
    offer = await medic.push("offer")
    await medic.ok("offer.accept", offer_id=offer["offer_id"])

    st, xml = await sms_in(shl.base, PHONE, "Room 302, the door is open")
    assert st == 200 and "message passed on" in xml
    got = await medic.push("incident.updated", lambda m: "Room 302" in m["incident"]["note"])
    assert got["incident"]["id"] == inc["id"]
    await disp.push("incident.updated", lambda m: "Room 302" in m["incident"]["note"])
    # a second HELP adds to the open request instead of opening another
    st, xml = await sms_in(shl.base, PHONE, "HELP still here")
    assert inc["ref_no"] in xml and "still open" in xml
    assert len(await q(shl, "SELECT 1 FROM incidents")) == 1
    latest = await sms_incident(shl, PHONE)
    assert latest is not None and latest["note"] == "Room 302, the door is open\nstill here"


async def test_safe_cancels_and_nothing_else_is_sent(shl, fake):
    disp = await shl.user("dispatcher")
    await disp.ok("queue.watch")
    await sms_in(shl.base, PHONE_US, "SOS smoke in the kitchen")
    inc = (await disp.push("incident.updated", lambda m: m["incident"]["channel"] == "sms"))["incident"]
    assert inc["category"] == "fire"
    st, xml = await sms_in(shl.base, PHONE_US, "safe")
    assert st == 200 and f"Helpline {inc['ref_no']}: cancelled" in xml
    await disp.push("incident.updated", incident_is(inc["id"], "cancelled"))
    st, xml = await sms_in(shl.base, PHONE_US, "SAFE")
    assert "no open request" in xml
    await asyncio.sleep(0.5)
    assert await outbox(shl, PHONE_US) == [] and fake.to(PHONE_US) == []   # the replies said it all


async def test_stop_silences_until_start(shl, fake):
    disp = await shl.user("dispatcher")
    await disp.ok("queue.watch")
    medic = await shl.user("responder", name="Medic Zhao", skills=["medical"])
    await medic.ok("duty.start", **near(0.001))
    await sms_in(shl.base, PHONE_US, "HELP my chest hurts")
    inc = (await disp.push("incident.updated", lambda m: m["incident"]["channel"] == "sms"))["incident"]

    st, xml = await sms_in(shl.base, PHONE_US, "Stop")
    assert st == 200 and "<Message>" not in xml
    await disp.ok("incident.locate", incident_id=inc["id"], **near(0))     # escalated → offered
    offer = await medic.push("offer")
    rows = await until(lambda: outbox(shl, PHONE_US), what="status text queued")
    await until(lambda: _statuses(shl, PHONE_US, {"skipped"}), what="status text skipped")
    assert fake.to(PHONE_US) == [] and fake.posts == 0 and len(rows) == 1

    st, xml = await sms_in(shl.base, PHONE_US, "START")
    assert "texts are on again" in xml
    await medic.ok("offer.accept", offer_id=offer["offer_id"])
    await until(lambda: [m for m in fake.to(PHONE_US) if "Medic Zhao" in m["Body"]], what="SMS after START")

    # STOP from a stranger opts out and is never an incident
    for word in ("STOPALL", "unsubscribe", "CANCEL", "end", "Quit", "退订"):
        await sms_in(shl.base, "+8613900000001", word)
    assert len(await q(shl, "SELECT 1 FROM incidents")) == 1
    assert (await q(shl, "SELECT opted_out FROM sms_contacts WHERE phone = '+8613900000001'"))[0]["opted_out"]
    assert await q(shl, "SELECT 1 FROM accounts WHERE phone = '+8613900000001'") == []


async def _statuses(app: Any, phone: str, want: set[str]) -> bool:
    rows = await outbox(app, phone)
    return bool(rows) and all(r["status"] in want for r in rows)


async def test_forged_and_missing_signatures_are_refused(shl, fake):
    params = {"From": PHONE, "Body": "HELP"}
    for sig in ("", "not-a-signature", twilio_signature(shl.base + "/sms/inbound", {"x": "y"}),
                twilio_signature(shl.base + "/elsewhere", {**params})):
        st, body = await sms_in(shl.base, PHONE, "HELP", signature=sig)
        assert st == 403 and '"forbidden"' in body, (sig, st, body)
    st, body = await sms_in(shl.base, PHONE, "HELP", token="d" * 32)          # signed with another token
    assert st == 403
    st, body = await sms_in(shl.base, PHONE, "HELP", path="/sms/status", signature="")
    assert st == 403
    st, body = await http("POST", shl.base + "/sms/status", data={"MessageSid": "SM1", "MessageStatus": "failed"},
                          headers={"X-Twilio-Signature": "abc"})
    assert st == 403 and body["error"]["code"] == "forbidden"
    assert await q(shl, "SELECT 1 FROM incidents") == [] and await q(shl, "SELECT 1 FROM sms_inbound") == []


async def test_replayed_message_sid_is_handled_once(shl, fake):
    sid = "SM" + uuid.uuid4().hex
    a = await sms_in(shl.base, PHONE, "HELP fire!", sid=sid)
    b = await sms_in(shl.base, PHONE, "HELP fire!", sid=sid)
    assert a == b and a[0] == 200 and "<Message>" in a[1]
    assert len(await q(shl, "SELECT 1 FROM incidents")) == 1
    # a follow-up replayed, sequentially and concurrently: one note
    sid2 = "SM" + uuid.uuid4().hex
    await sms_in(shl.base, PHONE, "second floor", sid=sid2)
    await asyncio.gather(*(sms_in(shl.base, PHONE, "second floor", sid=sid2) for _ in range(3)))
    sid3 = "SM" + uuid.uuid4().hex
    await asyncio.gather(*(sms_in(shl.base, PHONE, "door code 1234", sid=sid3) for _ in range(4)))
    notes = await q(shl, "SELECT data FROM incident_events WHERE kind = 'note_added' ORDER BY id")
    assert [json.loads(n["data"])["text"] for n in notes] == ["second floor", "door code 1234"]
    latest = await sms_incident(shl, PHONE)
    assert latest is not None and latest["note"] == "fire!\nsecond floor\ndoor code 1234"
    # a HELP replayed concurrently from a new phone: one incident
    sid4 = "SM" + uuid.uuid4().hex
    replies = await asyncio.gather(*(sms_in(shl.base, PHONE_US, "HELP", sid=sid4) for _ in range(4)))
    assert {st for st, _ in replies} == {200}
    assert len(await q(shl, "SELECT 1 FROM incidents")) == 2


async def test_429_twice_then_one_sms(shl, fake):
    fake.fail_next = [429, 429]
    await shl.app[SMS].send(PHONE_US, "hello there")
    await until(lambda: fake.to(PHONE_US), what="SMS after two 429s")
    await asyncio.sleep(1.0)
    assert len(fake.to(PHONE_US)) == 1 and fake.posts == 3
    (row,) = await outbox(shl, PHONE_US)
    assert row["status"] == "sent" and row["attempts"] == 3 and row["provider_sid"] == fake.to(PHONE_US)[0]["sid"]


async def test_500_is_failed_not_retried(shl, fake):
    fake.fail_next = [500]
    await shl.app[SMS].send(PHONE_US, "hello there")
    await until(lambda: _statuses(shl, PHONE_US, {"failed"}), what="failed")
    await asyncio.sleep(1.5)
    assert fake.posts == 1 and fake.sent == []
    (row,) = await outbox(shl, PHONE_US)
    assert row["attempts"] == 1 and "500" in row["error"]


async def test_timeout_after_sending_is_failed_not_retried(shl, fake):
    fake.delay_s = 3.0
    shl.app[SMS].gateway.http.timeout_s = 0.5
    await shl.app[SMS].send(PHONE_US, "slow")
    await until(lambda: _statuses(shl, PHONE_US, {"failed"}), what="failed")
    (row,) = await outbox(shl, PHONE_US)
    assert "outcome unknown" in row["error"]
    await asyncio.sleep(1.5)
    assert fake.posts == 1


async def test_expired_leases(shl, fake):
    """A text whose sender died mid-send is failed (it may have gone out); one only claimed is sent."""
    await q(shl, "INSERT INTO sms_outbox (to_phone, body, status, lease_owner, lease_until, attempts) VALUES"
                 " ($1, 'was sending', 'sending', 'dead-node', now() - interval '1 second', 1),"
                 " ($1, 'was claimed', 'claimed', 'dead-node', now() - interval '1 second', 0)", PHONE_US)
    await until(lambda: _statuses(shl, PHONE_US, {"failed", "sent"}), what="both settled")
    rows = {r["body"]: r for r in await outbox(shl, PHONE_US)}
    assert rows["was sending"]["status"] == "failed" and "outcome unknown" in rows["was sending"]["error"]
    assert rows["was claimed"]["status"] == "sent"
    assert [m["Body"] for m in fake.to(PHONE_US)] == ["was claimed"]


async def test_error_21610_marks_the_number_opted_out(shl, fake):
    fake.fail_next = [(400, 21610)]
    await shl.app[SMS].send(PHONE_US, "one")
    await until(lambda: _statuses(shl, PHONE_US, {"failed"}), what="failed")
    assert (await q(shl, "SELECT opted_out FROM sms_contacts WHERE phone = $1", PHONE_US))[0]["opted_out"]
    await shl.app[SMS].send(PHONE_US, "two")
    await until(lambda: _statuses(shl, PHONE_US, {"failed", "skipped"}), what="skipped")
    assert fake.posts == 1


async def test_refused_connection_is_retried_until_twilio_is_back(stack, clean_db):
    from testkit.twilio import sms_app

    later = FakeTwilio()                      # its port is chosen, nothing listens there yet
    app = await sms_app(stack, later)
    try:
        await app.app[SMS].send(PHONE_US, "are you there")
        await until(lambda: _has_error(app, PHONE_US), what="a refused attempt")
        await later.start()
        await until(lambda: later.to(PHONE_US), timeout=15, what="SMS once Twilio is back")
        await asyncio.sleep(0.5)
        assert len(later.to(PHONE_US)) == 1
        (row,) = await outbox(app, PHONE_US)
        assert row["status"] == "sent" and row["attempts"] >= 2
    finally:
        await app.stop()
        await later.stop()


async def _has_error(app: Any, phone: str) -> bool:
    rows = await outbox(app, phone)
    return bool(rows and rows[0]["error"] and "connection not opened" in rows[0]["error"])


async def test_chinese_keywords_and_full_width(shl, fake):
    disp = await shl.user("dispatcher")
    await disp.ok("queue.watch")
    medic = await shl.user("responder", skills=["medical"])
    await medic.ok("duty.start", **near(0.001))
    st, xml = await sms_in(shl.base, PHONE, "求助 我摔倒了，腿很疼")
    inc = (await disp.push("incident.updated", lambda m: m["incident"]["channel"] == "sms"))["incident"]
    assert inc["category"] == "medical" and inc["note"] == "我摔倒了，腿很疼" and inc["status"] == "escalated"
    assert f"求助{inc['ref_no']}已收到" in xml
    # status texts go out in the language the resident wrote in
    await disp.ok("incident.locate", incident_id=inc["id"], **near(0))
    await until(lambda: fake.to(PHONE), what="status SMS")
    body = fake.to(PHONE)[0]["Body"]
    assert body.startswith(f"求助{inc['ref_no']}") and sms_mod.sms_length(body) <= 70
    st, xml = await sms_in(shl.base, PHONE, "平安")
    assert f"求助{inc['ref_no']}已取消" in xml
    await disp.push("incident.updated", incident_is(inc["id"], "cancelled"))

    other = "+8613700000002"
    st, xml = await sms_in(shl.base, other, "救命")
    inc2 = (await disp.push("incident.updated", lambda m: m["incident"]["channel"] == "sms"
                            and m["incident"]["id"] != inc["id"]))["incident"]
    st, xml = await sms_in(shl.base, other, "取消")
    await disp.push("incident.updated", incident_is(inc2["id"], "cancelled"))

    st, xml = await sms_in(shl.base, PHONE_US, "ＨＥＬＰ　ｆｉｒｅ")
    inc3 = (await disp.push("incident.updated", lambda m: m["incident"]["channel"] == "sms"
                            and m["incident"]["status"] == "escalated"
                            and m["incident"]["id"] not in (inc["id"], inc2["id"])))["incident"]
    assert inc3["category"] == "fire" and f"Helpline {inc3['ref_no']}" in xml


async def test_opening_incidents_by_sms_is_rate_limited(shl, fake):
    for i in range(10):
        st, xml = await sms_in(shl.base, PHONE_US, f"HELP {i}")
        assert "we got your message" in xml, xml
        st, xml = await sms_in(shl.base, PHONE_US, "SAFE")
        assert "cancelled" in xml
    st, xml = await sms_in(shl.base, PHONE_US, "HELP again")
    assert "too many requests" in xml and "call 110" in xml
    assert len(await q(shl, "SELECT 1 FROM incidents")) == 10


async def test_other_text_goes_to_mediation_or_gets_usage(shl, fake):
    st, xml = await sms_in(shl.base, PHONE_US, "hello?")
    assert "text HELP" in xml
    seen: list[tuple[str, str]] = []

    class Mediation:
        async def handle_sms(self, phone: str, body: str) -> str | None:
            seen.append((phone, body))
            return "Case M-7: your message was sent to the mediator." if "case" in body else None

    router = shl.app[SMS_ROUTER]
    router.mediation = lambda phone, body, parsed: Mediation().handle_sms(phone, body)
    st, xml = await sms_in(shl.base, PHONE_US, "about my case")
    assert "Case M-7" in xml
    st, xml = await sms_in(shl.base, PHONE_US, "something else")
    assert "text HELP" in xml
    assert seen == [(PHONE_US, "about my case"), (PHONE_US, "something else")]
    assert await q(shl, "SELECT 1 FROM incidents") == []


async def test_console_simulator(hl):
    phone = "+8613800000009"
    disp = await hl.user("dispatcher")
    await disp.ok("queue.watch")
    medic = await hl.user("responder", skills=["medical"])
    await medic.ok("duty.start", **near(0.001))
    st, xml = await http("POST", hl.base + "/sms/simulate", json={"from": phone, "body": "HELP fell off a bike"})
    assert st == 200 and "<Message>Helpline H-" in xml
    inc = (await disp.push("incident.updated", lambda m: m["incident"]["channel"] == "sms"))["incident"]
    await disp.ok("incident.locate", incident_id=inc["id"], **near(0))
    got = await until(lambda: _console_out(hl, phone), what="console text")
    assert got[0]["status"] == "sent" and inc["ref_no"] in got[0]["body"]
    # the real webhook still needs a signature, and there is no token in console mode
    st, _ = await sms_in(hl.base, phone, "HELP")
    assert st == 403
    st, _ = await http("POST", hl.base + "/sms/simulate", json={"from": phone, "body": "x"},
                       headers={"X-Forwarded-For": "203.0.113.9"})
    assert st == 403


async def _console_out(app: Any, phone: str) -> list[dict[str, Any]]:
    st, body = await http("GET", app.base + "/sms/simulate/outbox", params={"phone": phone})
    assert st == 200
    return [m for m in body["messages"] if m["status"] == "sent"]


async def test_trainer_tool(shl, fake):
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPLINE_")}
    env.update({k: v for k, v in shl.env.items() if k.startswith("HELPLINE_")})
    env["HELPLINE_SERVER_PUBLIC_URL"] = shl.base
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "handlers.sms_sim", "--url", shl.base, "--from", PHONE, "HELP fell down",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    inc = await sms_incident(shl, PHONE)
    assert inc is not None and inc["ref_no"] in out.decode() and inc["channel"] == "sms"
