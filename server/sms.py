"""Outbound SMS: short texts, the durable outbox and its worker, the Twilio and console gateways.

Every text is a row of `sms_outbox`, written in the same transaction as the change
that causes it (an incident's status, an OTP request). A worker on every node claims
due rows (`FOR UPDATE SKIP LOCKED` and a lease), sends them and records the provider's
sid. A send is retried, with backoff, only where a retry cannot duplicate the text:
HTTP 429 and a connection that never opened. A 5xx answer, a timeout or a dropped
connection after the request went out, and a node lost mid-send are marked `failed`
(logged, never resent). Error 21610 (the number texted STOP to Twilio) marks the number
opted out. Nothing here blocks dispatch: the worker runs apart, and the incident hook
writes inside a savepoint that cannot undo the incident change.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response as TwilioResponse

from infra.accounts import normalise_phone
from infra.config import Config, ConfigError

log = logging.getLogger(__name__)

MAX_BODY = 1600          # Twilio's limit for one message (several segments)
MAX_ATTEMPTS = 8
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 300.0
LEASE_S = 60.0           # longer than HTTP_TIMEOUT_S: a live sender never loses its lease
HTTP_TIMEOUT_S = 20.0
STATUS_TTL_S = 3600.0    # a status text not sent within an hour is stale
OPTED_OUT = 21610

# ------------------------------------------------------------------ texts

_GSM7 = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
            "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM7_EXT = set("^{}\\[~]|€\f")

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "help_ok": "Helpline {ref}: we got your message. A dispatcher will call or text you. "
                   "Reply with your address. SAFE cancels.",
        "help_open": "Helpline {ref}: your request is still open; we passed on your message. SAFE cancels.",
        "safe_ok": "Helpline {ref}: cancelled. Glad you are safe.",
        "safe_none": "Helpline: you have no open request.",
        "note_ok": "Helpline {ref}: message passed on.",
        "usage": "Helpline: text HELP and what happened to ask for help. SAFE cancels. STOP ends texts.",
        "start_ok": "Helpline: texts are on again. Text HELP and what happened to ask for help.",
        "error": "Helpline: sorry, something went wrong. Please try again, or call {emergency}.",
        "otp": "Helpline code: {code}. Valid 5 minutes. Do not share it.",
        "limited": "Helpline: too many requests from this phone. If you are in danger, call {emergency}.",
        "searching": "Helpline {ref}: we are contacting a helper near you.",
        "escalated": "Helpline {ref}: a dispatcher is handling your request.",
        "assigned": "Helpline {ref}: {name} is coming to help you.",
        "en_route": "Helpline {ref}: {name} is on the way.",
        "on_scene": "Helpline {ref}: {name} has arrived.",
        "resolved": "Helpline {ref}: closed. Stay safe.",
        "cancelled": "Helpline {ref}: your request is cancelled.",
        "helper": "a helper",
    },
    "zh": {
        "help_ok": "求助{ref}已收到，调度员会联系您。请回复您的地址。回复“平安”取消。",
        "help_open": "求助{ref}仍在处理中，您的消息已转达。回复“平安”取消。",
        "safe_ok": "求助{ref}已取消。很高兴您平安。",
        "safe_none": "您目前没有进行中的求助。",
        "note_ok": "求助{ref}：消息已转达。",
        "usage": "求助热线：发送“求助”加情况说明即可求助；“平安”取消；“退订”停止短信。",
        "start_ok": "求助热线短信已恢复。发送“求助”加情况说明即可求助。",
        "error": "求助热线：系统出错，请重试或拨打{emergency}。",
        "otp": "求助热线验证码：{code}，5分钟内有效，请勿告诉他人。",
        "limited": "求助过于频繁。如有危险请拨打{emergency}。",
        "searching": "求助{ref}：正在联系您附近的救助人员。",
        "escalated": "求助{ref}：调度员正在处理您的求助。",
        "assigned": "求助{ref}：{name}将前来帮助您。",
        "en_route": "求助{ref}：{name}正在赶来。",
        "on_scene": "求助{ref}：{name}已到达。",
        "resolved": "求助{ref}：已处理完毕，请注意安全。",
        "cancelled": "求助{ref}：您的求助已取消。",
        "helper": "救助人员",
    },
}
# incident status → what the reporter is told; queued and offered read the same
PHASES = {"queued": "searching", "offered": "searching", "escalated": "escalated", "assigned": "assigned",
          "en_route": "en_route", "on_scene": "on_scene", "resolved": "resolved", "cancelled": "cancelled"}


def is_gsm7(text: str) -> bool:
    return all(ch in _GSM7 or ch in _GSM7_EXT for ch in text)


def segment_limit(text: str) -> int:
    """Characters in one segment: 160 in GSM-7 (extension characters count twice), else 70 (UCS-2)."""
    return 160 if is_gsm7(text) else 70


def sms_length(text: str) -> int:
    if is_gsm7(text):
        return sum(2 if ch in _GSM7_EXT else 1 for ch in text)
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)   # UTF-16 code units


def one_segment(text: str) -> bool:
    return sms_length(text) <= segment_limit(text)


def render(lang: str, key: str, **fields: Any) -> str:
    """A text in the language, fitted to one segment by shortening the responder's name if need be."""
    table = TEXTS.get(lang, TEXTS["en"])
    tpl = table[key]
    name = str(fields.get("name") or table["helper"])
    text = tpl.format(**{**fields, "name": name})
    while not one_segment(text) and len(name) > 1:
        name = name[:-1]
        text = tpl.format(**{**fields, "name": name})
    while not one_segment(text):
        text = text[:-1]
    return text


def detect_lang(text: str, fallback: str) -> str:
    if any("\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" for ch in text):
        return "zh"
    if any(ch.isascii() and ch.isalpha() for ch in text):
        return "en"
    return fallback


def default_lang(phone: str) -> str:
    return "zh" if phone.startswith(("+86", "+852", "+853", "+886")) else "en"


def mask(phone: str) -> str:
    return phone[:-6] + "****" + phone[-2:] if len(phone) > 8 else "****"


# ------------------------------------------------------------------ per-phone state

async def contact(conn: Any, phone: str) -> tuple[str, bool]:
    """(language, opted_out) of a phone."""
    row = await conn.fetchrow("SELECT lang, opted_out FROM sms_contacts WHERE phone = $1", phone)
    return (row["lang"], row["opted_out"]) if row else (default_lang(phone), False)


async def remember_lang(conn: Any, phone: str, lang: str) -> None:
    await conn.execute("INSERT INTO sms_contacts (phone, lang) VALUES ($1, $2) ON CONFLICT (phone)"
                       " DO UPDATE SET lang = EXCLUDED.lang WHERE sms_contacts.lang <> EXCLUDED.lang", phone, lang)


async def set_opted_out(conn: Any, phone: str, opted_out: bool) -> None:
    await conn.execute("INSERT INTO sms_contacts (phone, lang, opted_out) VALUES ($1, $2, $3) ON CONFLICT (phone)"
                       " DO UPDATE SET opted_out = EXCLUDED.opted_out, changed_at = now()",
                       phone, default_lang(phone), opted_out)


_quiet: ContextVar[frozenset[str]] = ContextVar("sms_quiet", default=frozenset())


@contextlib.contextmanager
def quiet(reporter_id: str) -> Iterator[None]:
    """Within this task, incident changes of this reporter send no status text (the webhook reply says it)."""
    token = _quiet.set(_quiet.get() | {reporter_id})
    try:
        yield
    finally:
        _quiet.reset(token)


# ------------------------------------------------------------------ gateways

class NotSent(Exception):
    """Nothing reached the provider (connection never opened, or HTTP 429): safe to retry."""


class ProviderError(Exception):
    """The provider refused the message (an HTTP error answer); never retried."""

    def __init__(self, status: int, code: int | None, message: str) -> None:
        super().__init__(f"HTTP {status} code {code}: {message}")
        self.status, self.code = status, code


@dataclass(frozen=True)
class Sent:
    sid: str
    status: str


class RebasedHttpClient(AsyncTwilioHttpClient):
    """twilio's async HTTP client, pointed at `sms.api_base`; no blind retries; tells 'not sent' apart."""

    def __init__(self, api_base: str, timeout_s: float = HTTP_TIMEOUT_S) -> None:
        super().__init__(pool_connections=False, timeout=timeout_s)   # no session made outside the loop
        base = urlsplit(api_base.rstrip("/"))
        self.base_scheme, self.base_netloc, self.base_path = base.scheme, base.netloc, base.path
        self.timeout_s = timeout_s
        self._http: aiohttp.ClientSession | None = None

    def rebase(self, url: str) -> str:
        u = urlsplit(url)
        if not (u.hostname or "").endswith("twilio.com"):
            return url
        return u._replace(scheme=self.base_scheme, netloc=self.base_netloc, path=self.base_path + u.path).geturl()

    async def request(self, method: str, url: str, params: dict[str, object] | None = None,
                      data: dict[str, object] | None = None, headers: dict[str, str] | None = None,
                      auth: tuple[str, str] | None = None, timeout: float | None = None,
                      allow_redirects: bool = False) -> TwilioResponse:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(keepalive_timeout=10))
        t = aiohttp.ClientTimeout(total=timeout or self.timeout_s, connect=5)
        headers = dict(headers or {})
        if auth:
            headers["Authorization"] = aiohttp.encode_basic_auth(*auth)
        try:
            async with self._http.request(method.upper(), self.rebase(url), params=params, data=data,
                                          headers=headers, timeout=t, allow_redirects=allow_redirects) as resp:
                text = await resp.text()
                return TwilioResponse(resp.status, text, resp.headers)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as e:
            raise NotSent(f"connection not opened: {e}") from e

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


class TwilioGateway:
    def __init__(self, cfg: Config) -> None:
        from twilio.rest import Client

        missing = [k for k in ("account_sid", "auth_token", "from_number") if not getattr(cfg.sms, k)]
        if missing:
            raise ConfigError(f"sms.provider is twilio but sms.{', sms.'.join(missing)} not set")
        self.http = RebasedHttpClient(cfg.sms.api_base)
        self.client = Client(cfg.sms.account_sid, cfg.sms.auth_token, http_client=self.http, environment={})
        self.from_number = cfg.sms.from_number

    async def send(self, to: str, body: str, status_callback: str | None) -> Sent:
        try:
            msg = await self.client.messages.create_async(to=to, from_=self.from_number, body=body,
                                                          status_callback=status_callback)
        except (TwilioRestException, TwilioServiceException) as e:
            if e.status == 429:
                raise NotSent(f"HTTP 429 (code {e.code})") from e
            raise ProviderError(e.status, e.code, str(getattr(e, "msg", "") or getattr(e, "title", ""))) from e
        return Sent(str(msg.sid), str(msg.status or "queued"))

    async def close(self) -> None:
        await self.http.close()


class ConsoleGateway:
    """sms.provider console: the text goes to the log (and the outbox records it as sent)."""

    async def send(self, to: str, body: str, status_callback: str | None) -> Sent:
        log.info("SMS (console) to %s: %s", to, body)
        return Sent("console-" + uuid.uuid4().hex, "sent")

    async def close(self) -> None:
        return None


def make_gateway(cfg: Config) -> TwilioGateway | ConsoleGateway:
    return TwilioGateway(cfg) if cfg.sms.provider == "twilio" else ConsoleGateway()


# ------------------------------------------------------------------ the outbox

_CLAIM = """
WITH due AS (
    SELECT id FROM sms_outbox
    WHERE (status = 'pending' AND due_at <= now()) OR (status = 'claimed' AND lease_until < now())
    ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED)
UPDATE sms_outbox o SET status = 'claimed', lease_owner = $2, lease_until = now() + make_interval(secs => $3),
       updated_at = now()
FROM due WHERE o.id = due.id RETURNING o.*"""

# claimed → sending just before the request goes out, unless the number opted out or the text went stale
_START = """
UPDATE sms_outbox o SET status = CASE
        WHEN EXISTS (SELECT 1 FROM sms_contacts c WHERE c.phone = o.to_phone AND c.opted_out) THEN 'skipped'
        WHEN o.expires_at IS NOT NULL AND o.expires_at < now() THEN 'expired'
        ELSE 'sending' END,
    attempts = attempts + 1, lease_until = now() + make_interval(secs => $3), updated_at = now()
WHERE id = $1 AND status = 'claimed' AND lease_owner = $2 RETURNING status, attempts"""


class SmsService:
    """services.extras["sms"]: `send(to, body)` for any module; the incident hook; the worker."""

    def __init__(self, cfg: Config, pool: asyncpg.Pool, gateway: TwilioGateway | ConsoleGateway) -> None:
        self.cfg, self.pool, self.gateway = cfg, pool, gateway
        self.node_id = uuid.uuid4().hex
        self.poll_s = 1.0
        self.batch = 20
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    # -- writing
    async def send(self, to_e164: str, body: str) -> None:
        """Queue a text to a phone; never raises (a failure is logged)."""
        try:
            to = normalise_phone(to_e164)
            body = body.strip()[:MAX_BODY]
            if body:
                async with self.pool.acquire() as conn:
                    await self.enqueue(conn, to, body)
                self._wake.set()
        except Exception as e:
            log.warning("SMS to %s not queued: %s", mask(str(to_e164)), e)

    async def enqueue(self, conn: Any, to: str, body: str, *, kind: str = "notice", incident_id: str | None = None,
                      ttl_s: float | None = None) -> int:
        """Queue a text inside the caller's transaction (it goes out once that commits)."""
        oid = await conn.fetchval(
            "INSERT INTO sms_outbox (to_phone, body, kind, incident_id, expires_at) VALUES ($1, $2, $3, $4,"
            " CASE WHEN $5::float8 IS NULL THEN NULL ELSE now() + make_interval(secs => $5::float8) END)"
            " RETURNING id", to, body[:MAX_BODY], kind, incident_id, ttl_s)
        self.wake_soon()
        return int(oid)

    def wake_soon(self) -> None:
        """Wake the worker shortly after the current transaction has (most likely) committed."""
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_running_loop()
            loop.call_later(0.05, self._wake.set)
            loop.call_later(0.3, self._wake.set)     # a slow commit: the poll is the last resort

    async def incident_hook(self, conn: Any, inc: dict[str, Any]) -> None:
        """DispatchService change hook: queue a status text for the reporter of an SMS incident."""
        if inc.get("channel") != "sms":
            return
        phase = PHASES.get(inc["status"], inc["status"])
        try:
            async with conn.transaction():   # a savepoint: an SMS failure never undoes the incident change
                prev = await conn.fetchval("SELECT phase FROM sms_incidents WHERE incident_id = $1", inc["id"])
                if prev == phase:
                    return
                await conn.execute("INSERT INTO sms_incidents (incident_id, phase) VALUES ($1, $2)"
                                   " ON CONFLICT (incident_id) DO UPDATE SET phase = EXCLUDED.phase,"
                                   " updated_at = now()", inc["id"], phase)
                reporter = inc["reporter"]["id"]
                if reporter in _quiet.get():
                    return
                phone = await conn.fetchval("SELECT phone FROM accounts WHERE id = $1", reporter)
                if not phone:
                    return
                lang, _ = await contact(conn, phone)
                body = render(lang, phase, ref=inc["ref_no"], name=(inc.get("responder") or {}).get("name"))
                await self.enqueue(conn, phone, body, kind="status", incident_id=inc["id"], ttl_s=STATUS_TTL_S)
        except (asyncpg.PostgresError, KeyError) as e:
            log.warning("status SMS for incident %s not queued: %s", inc.get("id"), e)

    # -- the worker
    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="sms-worker")

    async def stop(self, grace_s: float = 5.0) -> None:
        """Let a send in flight finish (so it is recorded), then stop."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace_s)
            except (asyncio.TimeoutError, Exception):
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
        await self.gateway.close()

    async def run(self) -> None:
        while not self._stopping:
            try:
                next_in = await self.work_once()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("SMS worker: %s", e)
                next_in = None
            if self._stopping:
                break
            wait = self.poll_s if next_in is None else max(0.0, min(self.poll_s, next_in))
            if wait > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()

    async def work_once(self) -> float | None:
        """Send what is due. Returns when to look again: 0 if the batch was full, the earliest retry, or None."""
        async with self.pool.acquire() as conn:
            lost = await conn.execute(
                "UPDATE sms_outbox SET status = 'failed', error = 'outcome unknown: the sending node was lost',"
                " updated_at = now() WHERE status = 'sending' AND lease_until < now()")
            if lost != "UPDATE 0":
                log.warning("SMS outbox: %s texts whose sender vanished mid-send marked failed", lost.split()[-1])
            rows = await conn.fetch(_CLAIM, self.batch, self.node_id, LEASE_S)
        if not rows:
            return None
        retries = await asyncio.gather(*(self._deliver(r) for r in rows))
        if len(rows) >= self.batch:
            return 0.0
        pending = [r for r in retries if r is not None]
        return min(pending) if pending else None

    async def _deliver(self, row: asyncpg.Record) -> float | None:
        """One text; returns the retry delay if it was rescheduled."""
        oid = row["id"]
        try:
            async with self.pool.acquire() as conn:
                started = await conn.fetchrow(_START, oid, self.node_id, LEASE_S)
            if started is None or started["status"] != "sending":
                return None
            callback = self.cfg.server.public_url.rstrip("/") + "/sms/status"
            try:
                sent = await self.gateway.send(row["to_phone"], row["body"], callback)
            except NotSent as e:
                return await self._retry_or_fail(oid, started["attempts"], str(e))
            except ProviderError as e:
                await self._failed(oid, str(e), e.code, opted_out=row["to_phone"] if e.code == OPTED_OUT else None)
                return None
            except Exception as e:   # timeout or dropped connection after sending: the outcome is unknown
                await self._failed(oid, f"outcome unknown: {type(e).__name__}: {e}", None)
                return None
            async with self.pool.acquire() as conn:
                await conn.execute("UPDATE sms_outbox SET status = 'sent', provider_sid = $2, delivery_status ="
                                   " COALESCE(delivery_status, $3), sent_at = now(), updated_at = now(),"
                                   " error = NULL WHERE id = $1", oid, sent.sid, sent.status)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("SMS %s: bookkeeping failed: %s", oid, e)
        return None

    async def _retry_or_fail(self, oid: int, attempts: int, why: str) -> float | None:
        if attempts >= MAX_ATTEMPTS:
            await self._failed(oid, f"gave up after {attempts} attempts: {why}", None)
            return None
        delay = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempts - 1)) * (0.8 + 0.4 * random.random())
        async with self.pool.acquire() as conn:
            await conn.execute("UPDATE sms_outbox SET status = 'pending', lease_owner = NULL, lease_until = NULL,"
                               " due_at = now() + make_interval(secs => $2), error = $3, updated_at = now()"
                               " WHERE id = $1", oid, delay, why)
        log.info("SMS %s not sent (%s); retry %d in %.1fs", oid, why, attempts, delay)
        return delay

    async def _failed(self, oid: int, why: str, code: int | None, opted_out: str | None = None) -> None:
        log.warning("SMS %s failed: %s", oid, why)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE sms_outbox SET status = 'failed', error = $2, error_code = $3,"
                               " updated_at = now() WHERE id = $1", oid, why[:500], code)
            if opted_out:
                await set_opted_out(conn, opted_out, True)

    async def record_status(self, sid: str, status: str, error_code: int | None) -> None:
        """A delivery status callback; later states win over earlier ones whatever the arrival order."""
        rank = "CASE {} WHEN 'accepted' THEN 0 WHEN 'queued' THEN 1 WHEN 'sending' THEN 2 WHEN 'sent' THEN 3" \
               " ELSE 4 END"
        async with self.pool.acquire() as conn, conn.transaction():
            phone = await conn.fetchval(
                f"UPDATE sms_outbox SET delivery_status = $2, error_code = COALESCE($3, error_code),"
                f" updated_at = now() WHERE provider_sid = $1"
                f" AND (delivery_status IS NULL OR {rank.format('delivery_status')} <= {rank.format('$2')})"
                f" RETURNING to_phone", sid, status, error_code)
            if phone and error_code == OPTED_OUT:
                await set_opted_out(conn, phone, True)


# ------------------------------------------------------------------ retention (`helpline purge`)

async def purge_sms(conn: Any, retention_days: int) -> dict[str, int]:
    """Texts (in and out) older than the retention period; opt-outs are kept (they must be honoured)."""
    out = await conn.execute("DELETE FROM sms_outbox WHERE created_at < now() - make_interval(days => $1)"
                             " AND status NOT IN ('pending','claimed','sending')", retention_days)
    inb = await conn.execute("DELETE FROM sms_inbound WHERE received_at < now() - make_interval(days => $1)",
                             retention_days)
    await conn.execute("DELETE FROM sms_otp WHERE (expires_at IS NULL OR expires_at < now())"
                       " AND (last_sent_at IS NULL OR last_sent_at < now() - interval '1 day')")
    return {"sms_outbox": int(out.split()[-1]), "sms_inbound": int(inb.split()[-1])}
