"""Property-based fuzzing of the edges: random and mutated frames at /ws, random forms at /sms/inbound.

The server never crashes, never answers 500, never leaves partial state, and stays responsive.
"""
from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testkit.client import http

TYPES = ["help.request", "help.cancel", "duty.start", "duty.end", "location.update", "offer.accept",
         "offer.decline", "incident.progress", "queue.watch", "incident.assign", "incident.close",
         "incident.events", "incident.locate", "case.open", "case.join", "cases.watch", "case.take",
         "case.invite", "chat.subscribe", "chat.send", "agreement.propose", "agreement.sign", "case.close",
         "ping", "hello", "", "x" * 100]
FIELDS = ["ref", "request_id", "category", "lat", "lon", "accuracy_m", "note", "incident_id", "offer_id",
          "responder_id", "status", "disposition", "skills", "case_id", "room", "body", "client_msg_id",
          "summary", "other_parties", "join_code", "text", "outcome", "after_seq", "account_id", "token"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**63, max_value=2**63),
                    st.floats(allow_nan=False), st.text(max_size=80),
                    st.sampled_from(["medical", "fire", "joint", "caucus:x", "en_route", "resolved",
                                     "00000000-0000-0000-0000-000000000000", "\u0000", "<script>", "'; --"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                      max_leaves=8)
frames = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(TYPES)},
                          optional={k: values for k in FIELDS}).map(json.dumps),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.text(max_size=300),
    st.sampled_from(["{}", "[]", "null", "1e999", '{"type":1}', '{"type":"help.request","ref":{}}',
                     '{"type":"ping","ref":"' + "r" * 65 + '"}']),
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("role", ["resident", "responder", "dispatcher", "mediator"])
async def test_random_frames_never_break_the_server(hl, role):
    skills = ["medical"] if role == "responder" else None
    client = await (hl.resident() if role == "resident" else hl.user(role, skills=skills))
    seen: list[str] = []

    @SETTINGS
    @given(batch=st.lists(frames, min_size=1, max_size=5))
    def run(batch: list[str]) -> None:
        seen.extend(batch)

    run()  # hypothesis draws the examples; they are sent below on the one event loop
    for frame in seen:
        await client.ws.send(frame)
    # still responsive: a ping after the storm is answered, and the connection is open
    ans = await client.call("ping", timeout=30)
    assert ans["type"] == "ok"
    errors = [p for p in client.pushes if p.get("type") == "error"]
    assert all(e["code"] in ("bad_request", "forbidden", "not_found", "conflict", "rate_limited", "unauthorized")
               for e in errors), {e["code"] for e in errors}
    assert not [e for e in errors if e.get("message") == "internal error"]
    st_, body = await http("GET", hl.base + "/healthz")
    assert st_ == 200
    await _consistent(hl.database_url)


async def _consistent(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        # every incident has its 'reported' event; every offer belongs to an incident in a matching state
        assert await conn.fetchval("SELECT count(*) FROM incidents i WHERE NOT EXISTS (SELECT 1 FROM"
                                   " incident_events e WHERE e.incident_id = i.id AND e.kind = 'reported')") == 0
        assert await conn.fetchval("SELECT count(*) FROM incidents WHERE status = 'offered' AND NOT EXISTS"
                                   " (SELECT 1 FROM offers o WHERE o.incident_id = incidents.id"
                                   " AND o.state = 'pending')") == 0
    finally:
        await conn.close()


forms = st.dictionaries(
    st.sampled_from(["From", "To", "Body", "MessageSid", "AccountSid", "NumMedia", "SmsStatus", "MessageStatus",
                     "ErrorCode", "x"]),
    st.one_of(st.text(max_size=200), st.sampled_from(["HELP", "求助 fire", "ＨＥＬＰ", "STOP", "SAFE", "+8613800138000",
                                                     "+1555", "", "SM" + "0" * 32])), max_size=8)


async def test_random_sms_forms_never_answer_500(shl):
    hl = shl
    drawn: list[dict[str, str]] = []

    @SETTINGS
    @given(form=forms, signed=st.booleans())
    def run(form: dict[str, str], signed: bool) -> None:
        drawn.append({**form, "__signed": "1" if signed else ""})

    run()
    token = hl.cfg.sms.auth_token
    url = hl.base + "/sms/inbound"
    for form in drawn:
        signed = form.pop("__signed")
        headers = {}
        if signed:
            from twilio.request_validator import RequestValidator

            headers["X-Twilio-Signature"] = RequestValidator(token).compute_signature(url, form)
        status, _ = await http("POST", url, data=form, headers=headers)
        assert status in (200, 400, 403, 404, 429), (status, form)
    status, _ = await http("GET", hl.base + "/healthz")
    assert status == 200
    await _consistent(hl.database_url)
    await asyncio.sleep(0)
