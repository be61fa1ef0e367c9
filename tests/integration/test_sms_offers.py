"""Offers that reach a locked phone (issue 12): duty without a page, offers by SMS, a responder's SMS words.

Real HTTP and WebSockets, the twilio library pointed at the local stand-in (FakeTwilio), signed webhooks.
"""
from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from sms import offers as sms_offers
from sms import texts as sms_texts
from testkit.client import Client, http, incident_is
from testkit.geo import near
from testkit.nodes import InProcess
from testkit.runtime import until
from testkit.stack import Stack
from testkit.stack import query as q
from testkit.twilio import FakeTwilio, sms_app, sms_in, voice_in

MEDIC_PHONE = "+14155550111"
OTHER_PHONE = "+14155550122"
RESIDENT_PHONE = "+14155550133"

App = Callable[..., Awaitable[InProcess]]


@pytest.fixture
async def make_app(stack: Stack, clean_db: None, fake: FakeTwilio) -> AsyncIterator[App]:
    """sms_app with settings of the test's own (section_key=value), stopped at the end."""
    apps: list[InProcess] = []

    async def make(**overrides: Any) -> InProcess:
        app = await sms_app(stack, fake, **{"dispatch_offer_timeout_s": "15", **overrides})
        apps.append(app)
        return app
    yield make
    for a in apps:
        await a.stop()


async def off_line_responder(app: InProcess, phone: str | None, at: float = 0.001, name: str = "Medic Wang",
                             skills: tuple[str, ...] = ("general", "medical")) -> str:
    """A responder who went on duty in the app and then closed it (a phone locking): their account id."""
    username = f"responder-{uuid.uuid4().hex[:8]}"
    rid = await app.add_user(username, "responder", name=name, skills=list(skills), phone=phone)
    c = await Client.connect(app.ws_url, await app.login(username))
    await c.ok("duty.start", **near(at))
    await c.close()
    await until(lambda: _online_gone(app, rid), what="presence gone")
    return rid


async def _online_gone(app: InProcess, rid: str) -> bool:
    from handlers.context import KEYS, REDIS
    return not await app.app[REDIS].exists(app.app[KEYS].online(rid))


async def report(app: InProcess, category: str = "other", at: float = 0.0) -> tuple[Client, dict[str, Any]]:
    resident = await app.resident()
    inc = (await resident.ok("help.request", request_id=uuid.uuid4().hex, category=category, **near(at)))["incident"]
    return resident, inc


async def events(app: InProcess, incident_id: str) -> list[tuple[str, dict[str, Any]]]:
    rows = await q(app, "SELECT kind, data FROM incident_events WHERE incident_id = $1 ORDER BY id", incident_id)
    return [(r["kind"], json.loads(r["data"]) if isinstance(r["data"], str) else r["data"]) for r in rows]


async def status_of(app: InProcess, incident_id: str) -> str:
    return str((await q(app, "SELECT status FROM incidents WHERE id = $1", incident_id))[0]["status"])


async def test_off_line_responder_gets_the_offer_by_sms_and_accepts_with_1(make_app, fake):
    app = await make_app()
    rid = await off_line_responder(app, MEDIC_PHONE)
    resident, inc = await report(app)
    assert inc["status"] == "offered"     # an off-line responder with a phone is a candidate

    (text,) = await until(lambda: fake.to(MEDIC_PHONE), what="the offer by SMS")
    body = text["Body"]
    assert inc["ref_no"] in body and "Reply 1 to accept, 2 to decline" in body and sms_texts.one_segment(body)
    assert "0.1 km" in body and "31.23040,121.47370" in body and "other" in body
    (row,) = await q(app, "SELECT kind, offer_id, expires_at, status FROM sms_outbox WHERE to_phone = $1",
                     MEDIC_PHONE)
    offer = (await q(app, "SELECT id, expires_at FROM offers WHERE responder_id = $1", rid))[0]
    assert row["kind"] == "offer" and row["offer_id"] == offer["id"] and row["status"] == "sent"
    # the text expires with the offer (its TTL is the offer's time left, at least MIN_TTL_S): never sent late
    assert row["expires_at"] <= offer["expires_at"] + timedelta(seconds=sms_offers.MIN_TTL_S)

    st, xml = await sms_in(app.base, MEDIC_PHONE, "1")
    assert st == 200 and f"Helpline {inc['ref_no']}: it is yours" in xml
    got = await resident.push("incident.updated", incident_is(inc["id"], "assigned"))
    assert got["incident"]["responder"]["id"] == rid
    log = await events(app, inc["id"])
    assert [k for k, _ in log] == ["reported", "offered", "assigned"]
    assert log[1][1]["channels"] == ["sms"] and log[2][1]["via"] == "sms"
    st, metrics = await http("GET", app.base + "/metrics")
    assert 'helpline_offers_sent_total{channel="sms"} 1.0' in metrics
    assert 'helpline_offer_answers_total{answer="accepted",channel="sms"} 1.0' in metrics
    assert 'helpline_offer_sms_seconds_count{kind="offer"} 1.0' in metrics
    assert fake.calls == []      # priority 3: no call


async def test_2_declines_and_the_next_candidate_is_offered(make_app, fake):
    app = await make_app()
    await off_line_responder(app, MEDIC_PHONE, at=0.001)          # nearer, even counted 1 km farther off line
    second = await app.user("responder", name="Online Li", skills=["general"])
    await second.ok("duty.start", **near(0.02))                     # about 2.2 km, on line
    resident, inc = await report(app)
    await until(lambda: fake.to(MEDIC_PHONE), what="the offer by SMS")
    st, xml = await sms_in(app.base, MEDIC_PHONE, "拒绝")
    assert st == 200 and f"{inc['ref_no']}：已拒绝" in xml           # answered in the language it came in
    offer = await second.push("offer", lambda m: m["incident"]["id"] == inc["id"])
    assert offer["incident"]["offer_attempts"] == 2
    log = await events(app, inc["id"])
    declined = [d for k, d in log if k == "offer_declined"]
    assert declined and declined[0]["via"] == "sms"
    assert [d["channels"] for k, d in log if k == "offered"] == [["sms"], ["ws"]]
    # a late 1 after the offer moved on: told so, nothing changes
    st, xml = await sms_in(app.base, MEDIC_PHONE, "1")
    assert f"{inc['ref_no']}" in xml and ("offer has ended" in xml or "已结束" in xml)
    assert await status_of(app, inc["id"]) == "offered"
    await second.ok("offer.accept", offer_id=offer["offer_id"])
    await resident.push("incident.updated", incident_is(inc["id"], "assigned"))


async def test_late_1_after_the_deadline_changes_nothing(make_app, fake):
    app = await make_app(dispatch_offer_timeout_s="1.5")
    await off_line_responder(app, MEDIC_PHONE)
    resident, inc = await report(app)
    await until(lambda: fake.to(MEDIC_PHONE), what="the offer by SMS")
    await resident.push("incident.updated", incident_is(inc["id"], "escalated"), timeout=15)
    st, xml = await sms_in(app.base, MEDIC_PHONE, "YES")
    assert st == 200 and f"Helpline {inc['ref_no']}: this offer has ended. Nothing changed." in xml
    assert await status_of(app, inc["id"]) == "escalated"
    assert [k for k, _ in await events(app, inc["id"])] == ["reported", "offered", "offer_expired", "escalated"]
    # a responder with no offer ever
    await off_line_responder(app, OTHER_PHONE, name="New One")
    st, xml = await sms_in(app.base, OTHER_PHONE, "1")
    assert "no offer is waiting for you" in xml


async def test_sms_accept_races_app_accept_and_dispatcher_assign(make_app, fake):
    """Each round: the responder's 1 by SMS, their app's accept and a dispatcher's assign to someone else, at
    once: exactly one responder ends up assigned, and the incident's log says so once."""
    app = await make_app(dispatch_offer_sms="always")
    disp = await app.user("dispatcher")
    for n in range(4):
        await _race_round(app, disp, fake, n)


async def _race_round(app: InProcess, disp: Client, fake: FakeTwilio, n: int) -> None:
    phone = f"+1415555{n:04d}"
    username = f"responder-{uuid.uuid4().hex[:8]}"
    rid = await app.add_user(username, "responder", name=f"Race {n}", skills=["general"], phone=phone)
    medic = await app.connect(await app.login(username))
    await medic.ok("duty.start", **near(0.001))
    other = await app.user("responder", name=f"Other {n}", skills=["general"])
    await other.ok("duty.start", **near(0.05))
    resident, inc = await report(app)
    offer = await medic.push("offer", lambda m: bool(m["incident"]["id"] == inc["id"]))
    await until(lambda: fake.to(phone), what="the offer by SMS too (always)")
    sms, app_accept, assign = await asyncio.gather(
        sms_in(app.base, phone, "1"), medic.call("offer.accept", offer_id=offer["offer_id"]),
        disp.call("incident.assign", incident_id=inc["id"], responder_id=other.account_id))
    assert sms[0] == 200
    wins = [app_accept.get("type") == "ok", "it is yours" in sms[1], assign.get("type") == "ok"]
    assert sum(wins) == 1, (sms, app_accept, assign)
    (row,) = await q(app, "SELECT responder_id FROM incidents WHERE id = $1", inc["id"])
    assert str(row["responder_id"]) == (other.account_id if wins[2] else rid)
    assert [k for k, _ in await events(app, inc["id"])].count("assigned") == 1
    busy = await q(app, "SELECT count(*) AS n FROM responders WHERE status = 'busy'")
    assert busy[0]["n"] == n + 1
    await medic.close()
    await other.close()


async def test_otw_arr_done_and_no_skipping(make_app, fake):
    app = await make_app()
    rid = await off_line_responder(app, MEDIC_PHONE)
    st, xml = await sms_in(app.base, MEDIC_PHONE, "OTW")
    assert "you have no assigned incident" in xml
    resident, inc = await report(app)
    await until(lambda: fake.to(MEDIC_PHONE), what="the offer by SMS")
    await sms_in(app.base, MEDIC_PHONE, "y")
    await resident.push("incident.updated", incident_is(inc["id"], "assigned"))
    st, xml = await sms_in(app.base, MEDIC_PHONE, "DONE")
    assert f"Helpline {inc['ref_no']}: not yet. First reply OTW." in xml
    assert await status_of(app, inc["id"]) == "assigned"
    for word, status, said in (("otw", "en_route", "on the way noted"), ("到达", "on_scene", "已记录到达"),
                               ("Done!", "resolved", "closed. Thank you")):
        st, xml = await sms_in(app.base, MEDIC_PHONE, word)
        assert st == 200 and said in xml, (word, xml)
        got = await resident.push("incident.updated", incident_is(inc["id"], status))
        assert got["incident"]["responder"]["id"] == rid
    log = await events(app, inc["id"])
    assert [d["via"] for k, d in log if k in ("en_route", "on_scene", "resolved")] == ["sms"] * 3
    (r,) = await q(app, "SELECT status FROM responders WHERE account_id = $1", rid)
    assert r["status"] == "available"


async def test_on_and_off_duty_by_sms(make_app, fake):
    app = await make_app()
    disp = await app.user("dispatcher")
    await disp.ok("queue.watch")
    rid = await off_line_responder(app, MEDIC_PHONE, at=0.004)
    st, xml = await sms_in(app.base, MEDIC_PHONE, "OFF")
    assert "you are off duty" in xml
    await disp.push("responder.updated",
                    lambda m: m["responder"]["id"] == rid and m["responder"]["status"] == "off_duty")
    _, inc = await report(app)
    assert inc["status"] == "escalated"           # off duty: no candidate
    st, xml = await sms_in(app.base, MEDIC_PHONE, "下班")
    assert "不在班" in xml
    st, xml = await sms_in(app.base, MEDIC_PHONE, "上班")
    assert "已按您最后的位置上班" in xml
    got = await disp.push("responder.updated", lambda m: m["responder"]["id"] == rid
                          and m["responder"]["status"] == "available")
    assert got["responder"]["lat"] == near(0.004)["lat"]          # the last known position kept
    _, inc2 = await report(app)
    assert inc2["status"] == "offered"
    await until(lambda: [m for m in fake.to(MEDIC_PHONE) if inc2["ref_no"] in m["Body"]], what="offer SMS")
    # a responder never placed cannot start duty by SMS
    await app.add_user(f"responder-{uuid.uuid4().hex[:8]}", "responder", skills=["general"], phone=OTHER_PHONE)
    st, xml = await sms_in(app.base, OTHER_PHONE, "ON")
    assert "no known position" in xml


async def test_a_number_of_no_responder_falls_through_to_the_resident_grammar(make_app, fake):
    app = await make_app()
    await off_line_responder(app, MEDIC_PHONE)
    resident, inc = await report(app)
    await until(lambda: fake.to(MEDIC_PHONE), what="the offer by SMS")
    for body in ("1", "YES", "OTW", "ON", "2"):
        st, xml = await sms_in(app.base, RESIDENT_PHONE, body)
        assert st == 200 and "text HELP" in xml, (body, xml)          # the usage text: no effect
    assert await status_of(app, inc["id"]) == "offered"
    assert await q(app, "SELECT 1 FROM incidents WHERE channel = 'sms'") == []
    # the resident's HELP then "1" is a note on their own report, never an acceptance
    await sms_in(app.base, RESIDENT_PHONE, "HELP fell")
    st, xml = await sms_in(app.base, RESIDENT_PHONE, "1")
    assert "message passed on" in xml
    assert await status_of(app, inc["id"]) == "offered"
    # a dispatcher's phone: staff, but no responder words either
    await app.add_user(f"dispatcher-{uuid.uuid4().hex[:8]}", "dispatcher", phone=OTHER_PHONE)
    st, xml = await sms_in(app.base, OTHER_PHONE, "1")
    assert "text HELP" in xml


async def test_replayed_message_sid_accepts_once(make_app, fake):
    app = await make_app()
    await off_line_responder(app, MEDIC_PHONE)
    _, inc = await report(app)
    await until(lambda: fake.to(MEDIC_PHONE), what="the offer by SMS")
    sid = "SM" + uuid.uuid4().hex
    replies = await asyncio.gather(*(sms_in(app.base, MEDIC_PHONE, "1", sid=sid) for _ in range(3)))
    assert len({r for r in replies}) == 1 and "it is yours" in replies[0][1]
    again = await sms_in(app.base, MEDIC_PHONE, "1", sid=sid)
    assert again == replies[0]
    assert [k for k, _ in await events(app, inc["id"])].count("assigned") == 1


async def test_offer_sms_never_and_always(make_app, fake):
    never = await make_app(dispatch_offer_sms="never")
    await off_line_responder(never, MEDIC_PHONE)
    _, inc = await report(never)
    assert inc["status"] == "escalated"        # off line and no SMS: nothing would reach them
    await asyncio.sleep(0.5)
    assert fake.to(MEDIC_PHONE) == []
    await never.stop()

    always = await make_app(dispatch_offer_sms="always")
    medic = await always.user("responder", name="Both Ways", skills=["general"], phone=OTHER_PHONE)
    await medic.ok("duty.start", **near(0.001))
    _, inc = await report(always)
    await medic.push("offer", lambda m: m["incident"]["id"] == inc["id"])
    await until(lambda: fake.to(OTHER_PHONE), what="the SMS as well")
    log = await events(always, inc["id"])
    assert [d["channels"] for k, d in log if k == "offered"] == [["ws", "sms"]]
    # on line without a phone: the page alone, on the fast path
    plain = await always.user("responder", skills=["medical"])
    await plain.ok("duty.start", **near(0.001))
    _, inc2 = await report(always, category="medical")
    await plain.push("offer", lambda m: m["incident"]["id"] == inc2["id"])
    assert [d["channels"] for k, d in await events(always, inc2["id"]) if k == "offered"] == [["ws"]]


async def test_a_phone_locking_while_offered_keeps_the_offer_and_gets_it_by_sms(make_app, fake):
    app = await make_app()
    username = f"responder-{uuid.uuid4().hex[:8]}"
    rid = await app.add_user(username, "responder", skills=["general"], phone=MEDIC_PHONE)
    medic = await Client.connect(app.ws_url, await app.login(username))
    await medic.ok("duty.start", **near(0.001))
    resident, inc = await report(app)
    await medic.push("offer", lambda m: m["incident"]["id"] == inc["id"])
    await asyncio.sleep(0.3)
    assert fake.to(MEDIC_PHONE) == []          # on line: the page alone
    await medic.close()
    (text,) = await until(lambda: fake.to(MEDIC_PHONE), what="the offer by SMS after the page closed")
    assert inc["ref_no"] in text["Body"]
    assert await status_of(app, inc["id"]) == "offered"
    log = await events(app, inc["id"])
    assert log[-1] == ("offer_sent", {"offer_id": log[1][1]["offer_id"], "responder_id": rid,
                                      "channels": ["sms"], "why": "disconnected"})
    await sms_in(app.base, MEDIC_PHONE, "1")
    await resident.push("incident.updated", incident_is(inc["id"], "assigned"))


async def test_without_a_phone_an_off_line_responder_is_no_candidate(make_app, fake):
    app = await make_app()
    await off_line_responder(app, None)
    _, inc = await report(app)
    assert inc["status"] == "escalated"


# ---------------------------------------------------------------- voice (priority <= dispatch.voice_priority)

async def test_p1_off_line_gets_a_call_and_digits_1_accepts(make_app, fake):
    app = await make_app()
    rid = await off_line_responder(app, MEDIC_PHONE)
    resident, inc = await report(app, category="medical")          # priority 1
    (call,) = await until(lambda: fake.calls_to(MEDIC_PHONE), what="the call")
    await until(lambda: fake.to(MEDIC_PHONE), what="the text as well")
    offer_id = str((await q(app, "SELECT id FROM offers WHERE responder_id = $1", rid))[0]["id"])
    twiml = call["Twiml"]
    assert f'action="{app.base}/voice/offer?offer={offer_id}"' in twiml and 'numDigits="1"' in twiml
    assert "<Say" in twiml and "Press 1 to accept" in twiml and call["From"] == "+15005550006"
    log = await events(app, inc["id"])
    assert log[1][1]["channels"] == ["sms", "voice"]

    st, xml = await voice_in(app.base, offer_id, "1", to=MEDIC_PHONE)
    assert st == 200 and "It is yours" in xml and xml.startswith("<?xml")
    got = await resident.push("incident.updated", incident_is(inc["id"], "assigned"))
    assert got["incident"]["responder"]["id"] == rid
    log = await events(app, inc["id"])
    assert log[-1][0] == "assigned" and log[-1][1]["via"] == "voice"
    # too late now, whoever asks: told so, nothing changes
    st, xml = await sms_in(app.base, MEDIC_PHONE, "2")
    assert "this offer has ended" in xml
    st, xml = await voice_in(app.base, offer_id, "2", to=MEDIC_PHONE)
    assert "This offer has ended" in xml and await status_of(app, inc["id"]) == "assigned"
    st, metrics = await http("GET", app.base + "/metrics")
    assert 'helpline_offers_sent_total{channel="voice"} 1.0' in metrics
    assert 'helpline_offer_answers_total{answer="accepted",channel="voice"} 1.0' in metrics
    assert 'helpline_offer_sms_seconds_count{kind="call"} 1.0' in metrics
    assert len(fake.calls_to(MEDIC_PHONE)) == 1          # one call per offer


async def test_voice_webhook_must_be_signed_and_a_call_sid_counts_once(make_app, fake):
    app = await make_app()
    rid = await off_line_responder(app, MEDIC_PHONE)
    resident, inc = await report(app, category="medical")
    await until(lambda: fake.calls_to(MEDIC_PHONE), what="the call")
    offer_id = str((await q(app, "SELECT id FROM offers WHERE responder_id = $1", rid))[0]["id"])
    for sig in ("", "forged"):
        st, body = await voice_in(app.base, offer_id, "1", signature=sig)
        assert st == 403 and '"forbidden"' in body
    st, _ = await voice_in(app.base, offer_id, "1", token="d" * 32)
    assert st == 403
    st, _ = await voice_in(app.base, "not-an-offer", "1")
    assert st == 400
    assert await status_of(app, inc["id"]) == "offered"
    assert await q(app, "SELECT 1 FROM voice_inbound") == []

    sid = "CA" + uuid.uuid4().hex
    replies = await asyncio.gather(*(voice_in(app.base, offer_id, "2", call_sid=sid) for _ in range(3)))
    assert {r for r in replies} == {replies[0]} and "Declined" in replies[0][1]
    # the same CallSid again, even with another key: the first answer, nothing done
    assert await voice_in(app.base, offer_id, "1", call_sid=sid) == replies[0]
    log = await events(app, inc["id"])
    assert [d["via"] for k, d in log if k == "offer_declined"] == ["voice"]
    assert [k for k, _ in log].count("assigned") == 0
    await resident.push("incident.updated", incident_is(inc["id"], "escalated"))   # no one else to ask
    # no key pressed, or another key: the offer waits for its deadline
    rid2 = await off_line_responder(app, OTHER_PHONE, at=0.0, name="Second")   # nearer than the first
    _, inc2 = await report(app, category="medical")
    await until(lambda: fake.calls_to(OTHER_PHONE), what="the second call")
    offer2 = str((await q(app, "SELECT id FROM offers WHERE responder_id = $1", rid2))[0]["id"])
    st, xml = await voice_in(app.base, offer2, None)
    assert "No answer" in xml
    st, xml = await voice_in(app.base, offer2, "9")
    assert "Not understood" in xml
    assert await status_of(app, inc2["id"]) == "offered"


async def test_a_slow_call_provider_delays_nothing(make_app, fake):
    """The Calls API answers after 10 s: meanwhile texts go out and other offers keep flowing."""
    app = await make_app()
    fake.call_delay_s = 10.0
    await off_line_responder(app, MEDIC_PHONE, skills=("medical",))
    _, urgent = await report(app, category="medical")                 # a call (slow) and a text
    await until(lambda: fake.to(MEDIC_PHONE), what="the urgent offer's text")
    await off_line_responder(app, OTHER_PHONE, skills=("general",), name="Second")
    _, other = await report(app, category="other")                   # a text only
    await until(lambda: fake.to(OTHER_PHONE), what="the other offer's text")
    online = await app.user("responder", skills=["police"])
    await online.ok("duty.start", **near(0.001))
    _, third = await report(app, category="police")
    await online.push("offer", lambda m: m["incident"]["id"] == third["id"])
    st, xml = await sms_in(app.base, OTHER_PHONE, "1")
    assert "it is yours" in xml
    assert fake.calls == []                      # all of that while the first call is still being placed
    await until(lambda: fake.calls_to(MEDIC_PHONE), timeout=30, what="the slow call, in the end")
    assert urgent["status"] == other["status"] == "offered"


async def test_no_call_once_the_offer_has_ended_and_one_per_offer(make_app, fake):
    from handlers.context import SMS

    app = await make_app()
    rid = await off_line_responder(app, MEDIC_PHONE)
    _, inc = await report(app)                                        # priority 3: a text, no call
    await until(lambda: fake.to(MEDIC_PHONE), what="the text")
    offer_id = str((await q(app, "SELECT id FROM offers WHERE responder_id = $1", rid))[0]["id"])
    await sms_in(app.base, MEDIC_PHONE, "2")
    outbox = app.app[SMS]
    conn = await asyncpg_connect(app)
    try:
        a = await outbox.enqueue(conn, MEDIC_PHONE, "<Response/>", kind="call", offer_id=offer_id)
        b = await outbox.enqueue(conn, MEDIC_PHONE, "<Response/>", kind="call", offer_id=offer_id)
    finally:
        await conn.close()
    assert a == b                                  # at most one call per offer
    await until(lambda: _outbox_status(app, a, "expired"), what="the late call dropped")
    (row,) = await q(app, "SELECT error FROM sms_outbox WHERE id = $1", a)
    assert row["error"] == "the offer has ended" and fake.calls == []


async def asyncpg_connect(app: InProcess) -> Any:
    import asyncpg
    return await asyncpg.connect(app.database_url)


async def _outbox_status(app: InProcess, oid: int, status: str) -> bool:
    rows = await q(app, "SELECT status FROM sms_outbox WHERE id = $1", oid)
    return bool(rows) and rows[0]["status"] == status
