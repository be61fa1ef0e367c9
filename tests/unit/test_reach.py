"""The pure rules of issue 12: who is reachable and in what order, which channels an offer goes out on, the
responder's SMS words, and what an offer's text and call say."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatch import lifecycle as lc
from dispatch import offers
from sms import grammar as g
from sms import texts

NOW = datetime(2026, 11, 29, tzinfo=UTC)


def cand(rid: str, km: float, online: bool = True, pageable: bool = False, status: str = "available") -> lc.Candidate:
    return lc.Candidate(rid, km, status, online, pageable)


def test_off_line_counts_only_with_a_phone_and_ranks_behind_at_similar_distances() -> None:
    pool = [cand("page", 1.5), cand("sms-near", 0.2, online=False, pageable=True),
            cand("sms-close", 0.8, online=False, pageable=True), cand("gone", 0.1, online=False)]
    ranked = [c.responder_id for c in lc.rank(pool, set(), 10)]
    # sms-near: 0.2 + 1.0 < 1.5; sms-close: 0.8 + 1.0 > 1.5; gone has no phone: unreachable
    assert ranked == ["sms-near", "page", "sms-close"]
    assert lc.reach_km(pool[1]) == pytest.approx(1.2)
    # the penalty never brings someone beyond the radius in, nor takes someone inside it out
    assert [c.responder_id for c in lc.rank([cand("edge", 9.5, online=False, pageable=True)], set(), 10)] == ["edge"]
    assert lc.rank([cand("out", 10.5, online=False, pageable=True)], set(), 10) == []


def test_preemption_takes_only_responders_on_line() -> None:
    pool = [cand("sms", 0.1, online=False, pageable=True, status="offered")]
    assert lc.preemption_target(1, pool, {"sms": 3}, set(), 10) is None


@given(st.lists(st.tuples(st.floats(0, 12), st.booleans(), st.booleans(),
                          st.sampled_from(["available", "offered", "busy"])), max_size=8))
def test_plan_first_offer_still_agrees_with_next_step(rows: list[tuple[float, bool, bool, str]]) -> None:
    cands = [cand(f"r{i}", km, online, pageable, status) for i, (km, online, pageable, status) in enumerate(rows)]
    plan = offers.Plan(10, 3, 20)
    inc = lc.Incident("i", lc.Status.QUEUED, "rep", None, 0, True, plan=plan)
    first = lc.plan_first_offer(inc, [lc.Candidate(c.responder_id, c.distance_km, "unknown", c.online, c.pageable)
                                      for c in cands], radius_km=10, max_offers=3, now=NOW, offer_timeout_s=20)
    step = lc.next_step(inc, cands, set(), radius_km=10, max_offers=3, now=NOW, offer_timeout_s=20)
    if isinstance(step, lc.MakeOffer):
        assert isinstance(first, lc.OfferFirstAvailable)
        claimed = next(r for r in first.responder_ids if next(c for c in cands if c.responder_id == r).status
                       == "available")
        assert claimed == step.responder_id
    else:
        assert isinstance(first, lc.Escalate) or not any(
            next(c for c in cands if c.responder_id == r).status == "available" for r in first.responder_ids)


@pytest.mark.parametrize("online,phone,priority,mode,want", [
    (True, False, 1, "offline", ("ws",)),
    (True, True, 1, "offline", ("ws",)),                 # on line: the page alone, whatever the priority
    (False, True, 3, "offline", ("sms",)),
    (False, True, 1, "offline", ("sms", "voice")),       # urgent and off line: a call as well
    (True, True, 3, "always", ("ws", "sms")),
    (False, True, 1, "always", ("sms", "voice")),
    (False, True, 1, "never", ()),                       # never: neither texts nor calls
    (True, True, 1, "never", ("ws",)),
    (False, False, 1, "offline", ()),
])
def test_channels(online: bool, phone: bool, priority: int, mode: str, want: tuple[str, ...]) -> None:
    got = offers.channels(online=online, has_phone=phone, priority=priority, offer_sms=mode, voice_priority=1)
    assert got == want
    assert offers.channels(online=False, has_phone=True, priority=2, offer_sms="offline", voice_priority=2) == (
        "sms", "voice")
    assert offers.channels(online=False, has_phone=True, priority=1, offer_sms="offline", voice_priority=0) == (
        "sms",)


@pytest.mark.parametrize("body,kind", [
    ("1", g.Kind.ACCEPT), ("１", g.Kind.ACCEPT), ("y", g.Kind.ACCEPT), ("Yes!", g.Kind.ACCEPT), ("是", g.Kind.ACCEPT),
    ("接受。", g.Kind.ACCEPT), ("2", g.Kind.DECLINE), ("N", g.Kind.DECLINE), ("no", g.Kind.DECLINE),
    ("否", g.Kind.DECLINE), ("拒绝", g.Kind.DECLINE), ("otw", g.Kind.EN_ROUTE), ("出发", g.Kind.EN_ROUTE),
    ("ARR", g.Kind.ON_SCENE), ("到达", g.Kind.ON_SCENE), ("done", g.Kind.RESOLVED), ("完成", g.Kind.RESOLVED),
    ("ON", g.Kind.DUTY_ON), ("上班", g.Kind.DUTY_ON), ("off", g.Kind.DUTY_OFF), ("下班", g.Kind.DUTY_OFF),
    ("STOP", g.Kind.STOP), ("start", g.Kind.START),          # the carrier's words stay first for responders too
    ("HELP", g.Kind.HELP),                                      # (the router tells staff to use the app)
    ("1 more", g.Kind.OTHER), ("12", g.Kind.OTHER), ("online", g.Kind.OTHER), ("done it?", g.Kind.OTHER),
])
def test_responder_words(body: str, kind: str) -> None:
    assert g.parse(body, role="responder").kind == kind


@pytest.mark.parametrize("role", [None, "resident", "dispatcher", "mediator"])
def test_responder_words_mean_nothing_special_from_anyone_else(role: str | None) -> None:
    assert g.parse("YES", role=role).kind == g.Kind.YES          # an opt-in, as before
    for body in ("N", "OTW", "ARR", "DONE", "ON", "OFF", "是", "拒绝", "上班"):
        assert g.parse(body, role=role).kind == g.Kind.OTHER, body
    for body in ("1", "2"):      # a satisfaction answer if pending (issue 15), else ordinary text; never an offer
        assert g.parse(body, role=role).kind == g.Kind.SCORE, body


def test_offer_text_is_one_segment_and_says_how_to_answer() -> None:
    for lang, answer in (("en", "Reply 1 to accept, 2 to decline."), ("zh", "回复1接受，2拒绝。")):
        cases: list[tuple[dict[str, object], float | None]] = [
            ({"ref_no": "H-123456789", "category": "dispute", "lat": -85.05, "lon": -179.99999}, 9.99),
            ({"ref_no": "H-1", "category": "medical", "lat": None, "lon": None}, None)]
        for inc, km in cases:
            t = texts.render_offer(lang, inc, km)
            assert texts.one_segment(t) and t.endswith(answer) and str(inc["ref_no"]) in t, t
    t = texts.render_offer("en", {"ref_no": "H-7", "category": "fire", "lat": None, "lon": None}, None)
    assert t == "Helpline offer H-7: fire, no position. Reply 1 to accept, 2 to decline."
    t = texts.render_offer("zh", {"ref_no": "H-7", "category": "medical", "lat": 31.2304, "lon": 121.4737}, 1.23)
    assert t == "派单H-7：医疗，距您1.2公里，位置31.23040,121.47370。回复1接受，2拒绝。"


def test_offer_call_gathers_one_key_in_the_responders_language() -> None:
    inc = {"ref_no": "H-4821", "category": "medical", "lat": 31.2, "lon": 121.4}
    x = texts.offer_twiml("zh", inc, 0.5, "https://h.example/voice/offer?offer=abc")
    assert '<Gather action="https://h.example/voice/offer?offer=abc" method="POST" numDigits="1"' in x
    assert 'language="cmn-CN"' in x and "接受请按1，拒绝请按2" in x and "H 4 8 2 1" in x
    x = texts.offer_twiml("en", inc, None, "https://h.example/voice/offer?offer=a&amp;b")
    assert 'language="en-US"' in x and "Press 1 to accept. Press 2 to decline." in x
    assert x.index("</Gather>") < x.index("No answer.")          # no key: said once the gather times out
    assert "Goodbye" in texts.voice_reply("en", "voice_accepted")
