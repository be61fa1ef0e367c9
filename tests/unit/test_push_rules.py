"""push/rules.py without I/O: which published events call for a push (fed the bytes dispatch's own
Notices and Outbox produce, so a change of their encoding cannot silently stop the pushes), what a
subscription must be, what a notice says and for how long it is worth keeping."""
from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dispatch.notices import Notices
from infra.errors import BadRequest
from infra.events import Outbox
from infra.keys import Keys
from push import rules

KEYS = Keys("t:")
ACCOUNT = KEYS.account_channel("")
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def incident(**kw: Any) -> dict[str, Any]:
    return {"id": "i1", "ref_no": "H-1001", "status": "offered", "category": "medical", "priority": 1,
            "lat": 31.2, "lon": 121.4, "accuracy_m": None, "note": "", "channel": "ws", "created_at": "x",
            "updated_at": "x", "reporter": {"id": "r1", "name": ""}, "responder": None, "offer_attempts": 1,
            "version": 2, "disposition": None, "flags": [], **kw}


def classify_all(out: Outbox) -> list[rules.Notice]:
    found = [rules.classify(ch, p, ACCOUNT, KEYS.dispatch_channel) for ch, p in out.items]
    return [n for n in found if n is not None]


def test_an_offer_on_the_responders_channel_is_an_offer_notice():
    out = Outbox()
    Notices(KEYS, None).offer(out, "resp-1", "offer-1", incident(), NOW + timedelta(seconds=20))
    [n] = classify_all(out)
    assert (n.kind, n.account_id, n.offer_id, n.incident_id, n.ref_no) == ("offer", "resp-1", "offer-1", "i1", "H-1001")
    assert n.expires_at == NOW + timedelta(seconds=20)
    assert rules.ttl(n, NOW) == 20 and rules.ttl(n, NOW + timedelta(seconds=25)) == 0


@pytest.mark.parametrize("status,priority,kind", [
    ("escalated", 3, "escalated"), ("escalated", 1, "escalated"), ("queued", 1, "priority1"),
    ("offered", 1, "priority1"), ("assigned", 1, None), ("offered", 2, None), ("resolved", 1, None),
])
def test_incident_updates_tell_dispatchers_of_escalations_and_new_p1_only(status, priority, kind):
    out = Outbox()
    Notices(KEYS, None).queue_incident(out, incident(status=status, priority=priority))
    found = classify_all(out)     # published to the reporter's channel too: counted once, on the dispatch channel
    assert [n.kind for n in found] == ([kind] if kind else [])


def test_other_messages_and_garbage_call_for_nothing():
    for channel, payload in [(KEYS.dispatch_channel, '{"type":"responder.updated","responder":{}}'),
                             (ACCOUNT + "a", '{"type":"offer.withdrawn","offer_id":"o","reason":"expired"}'),
                             (ACCOUNT + "a", '{"type":"offer",broken'),
                             (KEYS.dispatch_channel, '{"type":"offer","offer_id":"o"}'),
                             ("elsewhere", '{"type":"incident.updated","incident":{}}')]:
        assert rules.classify(channel, payload, ACCOUNT, KEYS.dispatch_channel) is None


def test_messages_are_in_the_subscribers_language():
    n = rules.Notice("escalated", "i1", "H-7", "fire", 1)
    en, zh = rules.message(n, "en"), rules.message(n, "zh")
    assert en["title"] == "No responder for H-7" and en["body"].startswith("Fire, priority 1")
    assert zh["title"] == "H-7 无人接单" and zh["body"].startswith("火警")
    assert en["url"] == "/dispatch#incident=i1" and en["tag"] == "incident:i1" and rules.ttl(n, NOW) == 600
    o = rules.Notice("offer", "i1", "H-7", "other", 3, "a", "o9", NOW)
    assert rules.message(o, "en")["url"] == "/responder#offer=o9"
    assert [rules.lang_of(x) for x in ("zh-CN", "ZH", "en-US", None, "fr")] == ["zh", "zh", "en", "en", "en"]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def keys() -> tuple[str, str]:
    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return b64(point), b64(os.urandom(16))


HOSTS = ("fcm.googleapis.com", "push.apple.com")


@pytest.mark.parametrize("endpoint,allow_http,ok", [
    ("https://fcm.googleapis.com/fcm/send/x", False, True),
    ("https://web.push.apple.com/abc", False, True),          # a subdomain of a listed host
    ("https://notfcm.googleapis.com.evil.com/x", False, False),
    ("https://evilfcm.googleapis.com/x", False, False),
    ("http://fcm.googleapis.com/x", False, False),
    ("http://127.0.0.1:9/push/x", True, True),                 # the tests' stand-in
    ("https://user@fcm.googleapis.com/x", False, False),
    ("javascript:alert(1)", True, False),
])
def test_endpoints_must_be_a_push_services(endpoint, allow_http, ok):
    p256dh, auth = keys()
    if ok:
        sub = rules.check_subscription(endpoint, p256dh, auth, "zh-CN", allow_http=allow_http, hosts=HOSTS)
        assert sub.lang == "zh"
    else:
        with pytest.raises(BadRequest):
            rules.check_subscription(endpoint, p256dh, auth, None, allow_http=allow_http, hosts=HOSTS)


def test_with_no_host_list_private_addresses_are_still_refused():
    p256dh, auth = keys()
    for endpoint in ("https://10.0.0.5/x", "https://127.0.0.1/x", "https://[::1]/x", "https://169.254.169.254/x"):
        with pytest.raises(BadRequest):
            rules.check_subscription(endpoint, p256dh, auth, None, allow_http=False, hosts=())
    assert rules.check_subscription("https://push.example.org/x", p256dh, auth, None, allow_http=False, hosts=())
