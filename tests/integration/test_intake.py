"""Incidents a dispatcher opens for a caller, and calls attached to another (issue 13, contract §8).

Real WebSocket, PostgreSQL, Redis; SMS through the real twilio client to the local stand-in.
"""
from __future__ import annotations

import uuid
from typing import Any

from testkit.client import incident_is
from testkit.geo import near
from testkit.runtime import until
from testkit.stack import query as q
from testkit.twilio import sms_in

CALLER = "+8613800138111"
CALLER_B = "+8613800138222"


def call(**kw: Any) -> dict[str, Any]:
    """incident.create's fields: a medical call by phone unless `kw` says otherwise."""
    return {"request_id": uuid.uuid4().hex, "category": "medical", "channel": "phone", **kw}


async def events(c: Any, iid: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = (await c.ok("incident.events", incident_id=iid))["events"]
    return got


async def _place(app: Any, pid: str = "clinic-1", dlat: float = 0.0) -> str:
    p = near(dlat)
    await q(app, "INSERT INTO places (id, name, address, lat, lon, name_key, search) VALUES"
                 " ($1, '和平医院', '静安区和平路12号', $2, $3, '和平医院', '和平医院 | 静安区和平路12号')",
            pid, p["lat"], p["lon"])
    return pid


async def test_create_with_coords_offers_and_texts_the_caller(shl, fake):
    disp = await shl.user("dispatcher", name="Call-taker Li")
    await disp.ok("queue.watch")
    medic = await shl.user("responder", name="Medic Wang", skills=["medical"])
    await medic.ok("duty.start", **near(0.002))
    ans = await disp.ok("incident.create", **call(caller={"name": "Mrs Zhao", "phone": "138 0013 8111"},
                                                  note="fell in the kitchen", **near(0)))
    inc = ans["incident"]
    assert inc["channel"] == "phone" and inc["opened_by"] == {"id": disp.account_id, "name": "Call-taker Li"}
    assert inc["caller_name"] == "Mrs Zhao" and inc["reporter"]["name"] == "Mrs Zhao"
    assert inc["note"] == "fell in the kitchen" and ans["duplicates"] == []
    offer = await medic.push("offer", lambda m: m["incident"]["id"] == inc["id"])
    await medic.ok("offer.accept", offer_id=offer["offer_id"])
    texts = await until(lambda: [m["Body"] for m in fake.to(CALLER) if "Medic Wang" in m["Body"]],
                        what="assigned SMS to the caller")
    assert inc["ref_no"] in texts[0]
    assert inc["ref_no"] in fake.to(CALLER)[0]["Body"]     # "we are contacting a helper near you" first
    evs = await events(disp, inc["id"])
    opened = [e for e in evs if e["kind"] == "opened_for_caller"]
    assert opened and opened[0]["actor"]["id"] == disp.account_id
    assert opened[0]["data"]["caller_phone"] == "+86*******8111"
    audit = await q(shl, "SELECT actor_id::text AS a, action FROM audit_log WHERE subject_id = $1"
                         " AND action <> 'read'", inc["id"])
    assert [(r["a"], r["action"]) for r in audit] == [(disp.account_id, "incident.create")]
    # a later SMS from that phone lands on the incident as a note
    st, _ = await sms_in(shl.base, CALLER, "the door code is 4312")
    assert st == 200
    noted = await disp.push("incident.updated", lambda m: m["incident"]["id"] == inc["id"]
                            and "4312" in m["incident"]["note"])
    assert noted["incident"]["note"].endswith("the door code is 4312")


async def test_create_with_place_and_address_only_then_locate(shl, fake):
    disp = await shl.user("dispatcher")
    await disp.ok("queue.watch")
    medic = await shl.user("responder", skills=["medical"])
    await medic.ok("duty.start", **near(0.002))
    pid = await _place(shl)
    at_place = (await disp.ok("incident.create", **call(place_id=pid, note="chest pain")))["incident"]
    assert (at_place["lat"], at_place["lon"]) == (near(0)["lat"], near(0)["lon"])
    assert at_place["place_id"] == pid and at_place["note"] == "和平医院, 静安区和平路12号\nchest pain"
    await medic.push("offer", lambda m: m["incident"]["id"] == at_place["id"])

    words = (await disp.ok("incident.create", **call(category="fire", address="老街15号 behind the market",
                                                     caller={"phone": CALLER_B})))["incident"]
    assert words["status"] == "escalated" and words["lat"] is None and words["address"] == "老街15号 behind the market"
    assert (await events(disp, words["id"]))[1]["data"]["reason"] == "no_position"
    await until(lambda: fake.to(CALLER_B), what="the escalated text")
    firefighter = await shl.user("responder", skills=["fire"])
    await firefighter.ok("duty.start", **near(0.001))
    await disp.ok("incident.locate", incident_id=words["id"], **near(0))
    await firefighter.push("offer", lambda m: m["incident"]["id"] == words["id"])


async def test_request_id_is_idempotent_and_no_phone_gets_its_own_account(hl):
    disp = await hl.user("dispatcher")
    fields = call(category="other", address="Market square", caller={"name": "Walk-in man"}, channel="walk_in")
    a = (await disp.ok("incident.create", **fields))["incident"]
    b = (await disp.ok("incident.create", **{**fields, "caller": {"name": "Walk-in man", "phone": CALLER}}))
    assert b["incident"]["id"] == a["id"] and a["channel"] == "walk_in"
    assert len(await q(hl, "SELECT id FROM incidents")) == 1
    other = (await disp.ok("incident.create", **{**fields, "request_id": "another"}))["incident"]
    assert other["reporter"]["id"] != a["reporter"]["id"]    # a caller without a phone: one account per call
    # another dispatcher's request_id is theirs
    disp2 = await hl.user("dispatcher")
    assert (await disp2.ok("incident.create", **fields))["incident"]["id"] != a["id"]
    # the device key of a call's account cannot be presented to /api/auth/device
    rows = await q(hl, "SELECT device_id FROM accounts WHERE id = $1::uuid", a["reporter"]["id"])
    assert rows[0]["device_id"].startswith("call/")


async def test_duplicates_by_phone_and_by_300m_15min(hl):
    disp = await hl.user("dispatcher")
    first = (await disp.ok("incident.create", **call(category="fire", caller={"phone": CALLER}, **near(0))))
    assert first["duplicates"] == []
    # the same phone, elsewhere, another category
    again = await disp.ok("incident.create", **call(category="police", caller={"phone": CALLER}, **near(0.05)))
    assert [(d["id"], d["duplicate_reasons"]) for d in again["duplicates"]] == [
        (first["incident"]["id"], ["same_phone"])]
    # another phone: the same category within 300 m is listed, at 200 m; 500 m and another category are not
    near_fire = await disp.ok("incident.create", **call(category="fire", caller={"phone": CALLER_B}, **near(0.0018)))
    assert [(d["id"], d["duplicate_reasons"]) for d in near_fire["duplicates"]] == [
        (first["incident"]["id"], ["nearby"])]
    assert 150 <= near_fire["duplicates"][0]["distance_m"] <= 250
    far = await disp.ok("incident.create", **call(category="fire", **near(0.0042)))
    assert [d["id"] for d in far["duplicates"]] == [near_fire["incident"]["id"]]   # 270 m from it, 470 from first
    other_cat = await disp.ok("incident.create", **call(category="medical", **near(0)))
    assert other_cat["duplicates"] == []
    # older than 15 minutes: no longer a duplicate by place
    await q(hl, "UPDATE incidents SET created_at = now() - interval '16 minutes' WHERE id = $1::uuid",
            first["incident"]["id"])
    late = await disp.ok("incident.create", **call(category="fire", **near(0.0001)))
    assert first["incident"]["id"] not in [d["id"] for d in late["duplicates"]]
    # a closed incident is no duplicate
    await disp.ok("incident.close", incident_id=near_fire["incident"]["id"], disposition="resolved")
    later = await disp.ok("incident.create", **call(category="fire", **near(0.0018)))
    assert near_fire["incident"]["id"] not in [d["id"] for d in later["duplicates"]]


async def test_link_logs_both_closes_the_call_and_texts_its_caller(shl, fake):
    disp = await shl.user("dispatcher")
    await disp.ok("queue.watch")
    medic = await shl.user("responder", name="Medic Wang", skills=["medical"])
    await medic.ok("duty.start", **near(0.002))
    main = (await disp.ok("incident.create", **call(caller={"phone": CALLER}, **near(0))))["incident"]
    offer = await medic.push("offer", lambda m: m["incident"]["id"] == main["id"])
    dup = await disp.ok("incident.create", **call(caller={"phone": CALLER_B}, **near(0.001)))
    assert [d["id"] for d in dup["duplicates"]] == [main["id"]]
    linked = (await disp.ok("incident.link", incident_id=dup["incident"]["id"], duplicate_of=main["id"]))["incident"]
    assert linked["status"] == "cancelled" and linked["disposition"] == "duplicate"
    assert linked["duplicate_of"] == main["id"]
    main_ev = [e for e in await events(disp, main["id"]) if e["kind"] == "linked"]
    dup_ev = [e for e in await events(disp, linked["id"]) if e["kind"] in ("linked", "closed")]
    assert main_ev[0]["data"] == {"linked_id": linked["id"], "ref_no": linked["ref_no"]}
    assert main_ev[0]["actor"]["id"] == disp.account_id
    assert [e["kind"] for e in dup_ev] == ["linked", "closed"]
    assert dup_ev[1]["data"] == {"disposition": "duplicate", "duplicate_of": main["id"]}
    told = await until(lambda: [m["Body"] for m in fake.to(CALLER_B) if main["ref_no"] in m["Body"]],
                       what="the linked text")
    assert told[0] == f"求助{linked['ref_no']}：您的来电已并入{main['ref_no']}，正在处理中。"   # +86: Chinese
    # from then on the main incident's news reach the linked caller too
    await medic.ok("offer.accept", offer_id=offer["offer_id"])
    await until(lambda: [m for m in fake.to(CALLER_B) if "Medic Wang" in m["Body"]], what="assigned, to B")
    await until(lambda: [m for m in fake.to(CALLER) if "Medic Wang" in m["Body"]], what="assigned, to A")
    # linking again, or to a closed one
    await disp.error("incident.link", "conflict", incident_id=linked["id"], duplicate_of=main["id"])
    await disp.error("incident.link", "conflict", incident_id=main["id"], duplicate_of=linked["id"])
    await disp.error("incident.link", "bad_request", incident_id=main["id"], duplicate_of=main["id"])
    await disp.error("incident.link", "not_found", incident_id=main["id"], duplicate_of=str(uuid.uuid4()))


async def test_bad_input(hl):
    disp = await hl.user("dispatcher")
    e = await disp.error("incident.create", "bad_request", **call(caller={"phone": CALLER}))
    assert "lat and lon, a place_id" in e["message"]
    await disp.error("incident.create", "not_found", **call(place_id="nowhere"))
    e = await disp.error("incident.create", "bad_request", **call(caller={"phone": "12"}, **near(0)))
    assert "caller.phone" in e["message"] and "not a valid phone number" in e["message"]
    await disp.error("incident.create", "bad_request", **call(channel="sms", **near(0)))
    await disp.error("incident.create", "bad_request", **call(category="alien", **near(0)))
    await disp.error("incident.create", "bad_request", **call(lat=31.2))
    await disp.error("incident.create", "bad_request", **call(lat=95, lon=121))
    e = await disp.error("incident.create", "bad_request", **call(caller={"name": "139 1234 5678"}, **near(0)))
    assert "caller.name" in e["message"]
    await disp.error("incident.create", "bad_request", **call(address="x" * 301))
    await disp.error("incident.create", "bad_request", **{k: v for k, v in call(**near(0)).items()
                                                          if k != "request_id"})
    assert await q(hl, "SELECT id FROM incidents") == []
    resident = await hl.resident()
    await resident.error("incident.create", "forbidden", **call(**near(0)))
    for role in ("responder", "agency", "mediator"):
        c = await hl.user(role)
        await c.error("incident.create", "forbidden", **call(**near(0)))
        await c.error("incident.link", "forbidden", incident_id=str(uuid.uuid4()), duplicate_of=str(uuid.uuid4()))


async def test_opened_incident_reaches_a_watching_console_with_opened_by(hl):
    disp, other = await hl.user("dispatcher", name="Li"), await hl.user("dispatcher")
    await other.ok("queue.watch")
    inc = (await disp.ok("incident.create", **call(category="other", address="Somewhere")))["incident"]
    pushed = await other.push("incident.updated", lambda m: incident_is(inc["id"])(m)
                              and m["incident"]["opened_by"] is not None)
    assert pushed["incident"]["opened_by"]["name"] == "Li"
