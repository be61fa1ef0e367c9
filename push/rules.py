"""What goes out by Web Push, to whom, and what a subscription must look like: pure rules, no I/O.

    published (channel, message)                     notice        to
    `offer` on an account's channel           ->     offer         that account's subscriptions
    `incident.updated` on the dispatch channel
        status escalated                      ->     escalated     dispatchers' (and admins') subscriptions
        priority 1, status queued or offered  ->     priority1     the same
    anything else                             ->     nothing

`classify` is called on the publishing path of every change, so it looks at the first bytes of a
payload before decoding anything: most messages (responder positions, chat) cost one comparison.
Deciding *once* per incident transition across the cluster is the service's (a Redis SET NX), as
is sending; here is only what a notice says (`message`, in the subscription's language) and how long
a push service may keep it (`ttl`).
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

from infra.errors import BadRequest
from infra.formats import iso

Kind = Literal["offer", "escalated", "priority1"]
LANGS = ("en", "zh")
ALERT_TTL_S = 600               # an escalation or a new P1 still matters to a dispatcher for this long
MAX_ENDPOINT = 1024             # real endpoints are 150-500 characters
MAX_PER_ACCOUNT = 10            # subscriptions of one account (a new one replaces the least recently renewed)
NEW_P1_STATUSES = frozenset({"queued", "offered"})

_OFFER = b'{"type":"offer",'
_UPDATED = b'{"type":"incident.updated",'


def lang_of(raw: str | None) -> str:
    """`zh`, `zh-CN`, `zh-Hans`... -> zh; anything else -> en."""
    return "zh" if raw and raw.strip().lower().startswith("zh") else "en"


# ---------------------------------------------------------------- subscriptions
@dataclass(frozen=True)
class Subscription:
    endpoint: str
    p256dh: str
    auth: str
    lang: str = "en"


def _b64url(value: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise BadRequest(f"keys.{what} is not base64url") from None


def _host_allowed(host: str, hosts: tuple[str, ...]) -> bool:
    return any(host == h or host.endswith("." + h) for h in hosts)


def check_subscription(endpoint: str, p256dh: str, auth: str, lang: str | None, *, allow_http: bool,
                       hosts: tuple[str, ...]) -> Subscription:
    """The browser's PushSubscription, checked; BadRequest saying what is wrong.

    The server will POST to the endpoint, so it must be a push service's: https (http only with
    push.allow_http_endpoints, for tests), on one of `hosts` (or any host if none are configured, but
    never an IP address of a private or loopback network), without credentials in it."""
    if len(endpoint) > MAX_ENDPOINT:
        raise BadRequest(f"endpoint: at most {MAX_ENDPOINT} characters")
    try:
        url = urlsplit(endpoint)
        port = url.port
    except ValueError:
        raise BadRequest("endpoint is not a URL") from None
    host = (url.hostname or "").lower()
    if url.scheme not in ("https", "http") or not host:
        raise BadRequest("endpoint must be an https URL of a push service")
    if url.scheme == "http" and not allow_http:
        raise BadRequest("endpoint must be https")
    if url.username is not None or url.password is not None or (port is not None and not 0 < port < 65536):
        raise BadRequest("endpoint must not carry credentials")
    if url.scheme == "https":
        if hosts and not _host_allowed(host, hosts):
            raise BadRequest("endpoint is not on a known push service")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if ip is not None and (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_unspecified):
            raise BadRequest("endpoint is not on a push service")
    key = _b64url(p256dh, "p256dh")
    if len(key) != 65 or key[0] != 4:
        raise BadRequest("keys.p256dh must be an uncompressed P-256 point (65 bytes)")
    if len(_b64url(auth, "auth")) != 16:
        raise BadRequest("keys.auth must be 16 bytes")
    return Subscription(endpoint, p256dh.rstrip("="), auth.rstrip("="), lang_of(lang))


# ---------------------------------------------------------------- notices
@dataclass(frozen=True)
class Notice:
    kind: Kind
    incident_id: str
    ref_no: str
    category: str
    priority: int
    account_id: str | None = None       # an offer's responder
    offer_id: str | None = None
    expires_at: datetime | None = None  # an offer's deadline
    grid_path: tuple[str, ...] = ()     # the incident's grid path (issue 14): area-limited dispatchers


class _Grid(msgspec.Struct):
    path: list[str]


class _Incident(msgspec.Struct):
    id: str
    ref_no: str
    status: str
    category: str
    priority: int
    grid: _Grid | None = None


class _Offer(msgspec.Struct):
    offer_id: str
    incident: _Incident
    expires_at: datetime


class _Updated(msgspec.Struct):
    incident: _Incident


_offer = msgspec.json.Decoder(_Offer)
_updated = msgspec.json.Decoder(_Updated)


def classify(channel: str, payload: str | bytes, account_prefix: str, dispatch_channel: str) -> Notice | None:
    """The notice a published message calls for, or None (most messages)."""
    raw = payload.encode() if isinstance(payload, str) else payload
    try:
        if raw.startswith(_OFFER) and channel.startswith(account_prefix):
            o = _offer.decode(raw)
            i = o.incident
            return Notice("offer", i.id, i.ref_no, i.category, i.priority, channel[len(account_prefix):],
                          o.offer_id, o.expires_at)
        if raw.startswith(_UPDATED) and channel == dispatch_channel:
            i = _updated.decode(raw).incident
            path = tuple(i.grid.path) if i.grid is not None else ()
            if i.status == "escalated":
                return Notice("escalated", i.id, i.ref_no, i.category, i.priority, grid_path=path)
            if i.priority == 1 and i.status in NEW_P1_STATUSES:
                return Notice("priority1", i.id, i.ref_no, i.category, i.priority, grid_path=path)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return None


def ttl(notice: Notice, now: datetime) -> int:
    """Seconds a push service may hold the message for an absent device; 0: no longer worth sending.

    An offer is worth its remaining time and not a second more (after it, the offer has moved on)."""
    if notice.kind == "offer":
        if notice.expires_at is None:
            return 0
        return max(0, int((notice.expires_at - now).total_seconds()))
    return ALERT_TTL_S


# ---------------------------------------------------------------- what a notification says
_CATEGORY = {
    "medical": ("Medical", "医疗急救"), "fire": ("Fire", "火警"), "police": ("Police", "治安报警"),
    "dispute": ("Dispute", "纠纷"), "other": ("Other", "其他"),
}
_TEXTS: dict[Kind, tuple[tuple[str, str], tuple[str, str]]] = {
    # kind: ((title en, body en), (title zh, body zh))
    "offer": (("Someone needs help — {ref}", "{category}. Open to accept or decline before it passes on."),
              ("有人需要帮助——{ref}", "{category}。请点开接受或拒绝，超时将转给他人。")),
    "escalated": (("No responder for {ref}", "{category}, priority {priority}. A dispatcher must act."),
                  ("{ref} 无人接单", "{category}，优先级 {priority}，需要调度员处理。")),
    "priority1": (("Priority 1: {ref}", "{category}, just reported."),
                  ("一级警情：{ref}", "{category}，刚刚报警。")),
}


def category_name(category: str, lang: str) -> str:
    names = _CATEGORY.get(category)
    return names[1 if lang == "zh" else 0] if names else category


def url_of(notice: Notice) -> str:
    """The page a tap on the notification opens."""
    if notice.kind == "offer":
        return f"/responder#offer={notice.offer_id}"
    return f"/dispatch#incident={notice.incident_id}"


def message(notice: Notice, lang: str) -> dict[str, Any]:
    """The push message's plaintext (small JSON; the service worker shows title and body)."""
    en, zh = _TEXTS[notice.kind]
    title, body = zh if lang == "zh" else en
    fill = {"ref": notice.ref_no, "category": category_name(notice.category, lang), "priority": notice.priority}
    msg: dict[str, Any] = {
        "type": notice.kind, "incident_id": notice.incident_id, "ref_no": notice.ref_no,
        "category": notice.category, "priority": notice.priority, "url": url_of(notice),
        "title": title.format(**fill), "body": body.format(**fill), "lang": lang,
        "tag": f"offer:{notice.offer_id}" if notice.kind == "offer" else f"incident:{notice.incident_id}",
    }
    if notice.kind == "offer":
        msg["offer_id"] = notice.offer_id
        msg["expires_at"] = iso(notice.expires_at)
    return msg
