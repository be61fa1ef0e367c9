"""The SMS channel's routes (contract §2 and §5): Twilio webhooks, phone login by one-time code,
and a console-mode simulator for trainers. Picked up by server.app through `setup_app`.

Inbound texts are signed by Twilio (X-Twilio-Signature over server.public_url + path and the
form fields); anything unsigned or mis-signed is refused with 403. Each MessageSid is recorded
in `sms_inbound` inside the transaction of its effect (through a dispatch change hook), so a
replay is answered with the first answer and never acted on twice.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
import unicodedata
import uuid
from collections.abc import AsyncIterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from aiohttp import web
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from infra.identity import Account
from handlers.http import read_json
from infra import accounts, ratelimit
from server import sms as sms_mod
from infra.config import Config
from infra.errors import BadRequest, Conflict, Forbidden, HelplineError, NotFound, RateLimited, Unauthorized
from server.services import SERVICES, Services

log = logging.getLogger(__name__)

OTP_TTL_S = 300
OTP_MAX_ATTEMPTS = 5
OTP_COOLDOWN_S = 30
OTP_MAX_PER_HOUR = 5

# ------------------------------------------------------------------ keywords

HELP_WORDS = ("HELP", "SOS", "求助", "救命")
SAFE_WORDS = ("SAFE", "平安", "取消")
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "退订", "取消订阅"})
START_WORDS = frozenset({"START", "UNSTOP"})
_TRIM = " \t\r\n\u3000.,;:!?-—~·。，；：！？、"

# the first group that matches names the category; nothing → "other"
CATEGORY_WORDS: list[tuple[str, re.Pattern[str]]] = [
    ("fire", re.compile(r"\b(fire|smoke|burning|flames?)\b|火|烟|燃|烧", re.I)),
    ("medical", re.compile(r"\b(injur\w*|hurt|bleed\w*|blood|fell|fall\w*|heart|chest|breath\w*|sick|"
                           r"unconscious|ambulance|stroke|pain|faint\w*)\b|受伤|流血|摔|心脏|胸|呼吸|晕|昏|病|救护车|疼|痛",
                           re.I)),
    ("police", re.compile(r"\b(police|thief|thieves|robb\w*|stole\w*|steal\w*|burglar\w*|attack\w*|assault\w*|"
                          r"violen\w*|gun|knife)\b|警察|报警|小偷|抢|偷|打人|暴力|刀", re.I)),
    ("dispute", re.compile(r"\b(dispute|argu\w*|quarrel\w*|neighbou?r\w*)\b|纠纷|吵架|争吵|邻居", re.I)),
]


@dataclass(frozen=True)
class Parsed:
    kind: str        # help, safe, stop, start, yes, other
    text: str        # what follows the keyword (help, safe) or the whole message (other)


def parse(body: str) -> Parsed:
    """Case- and width-insensitive (NFKC) keywords; opt-out words only as the whole message, as Twilio does."""
    t = unicodedata.normalize("NFKC", body).strip()
    whole = t.strip(_TRIM).upper()
    if whole in STOP_WORDS:
        return Parsed("stop", "")
    if whole in START_WORDS:
        return Parsed("start", "")
    if whole == "YES":
        return Parsed("yes", "")
    orig = body.strip()
    for kind, words in (("help", HELP_WORDS), ("safe", SAFE_WORDS)):
        for kw in words:
            if t[:len(kw)].upper() != kw:
                continue
            nxt = unicodedata.normalize("NFKC", orig[_prefix_len(orig, kw):])[:1]
            if kw.isascii() and nxt.isascii() and nxt.isalnum():
                continue   # HELPFUL, SAFETY: not a keyword
            return Parsed(kind, orig[_prefix_len(orig, kw):].lstrip(_TRIM).rstrip())   # the text as written
    return Parsed("other", orig)


def _prefix_len(orig: str, kw: str) -> int:
    """How many characters of the original text make up the (NFKC-normalised) keyword."""
    for k in range(1, len(orig) + 1):
        if unicodedata.normalize("NFKC", orig[:k]).upper() == kw:
            return k
    return len(kw)


def guess_category(text: str) -> str:
    t = unicodedata.normalize("NFKC", text)
    for category, pattern in CATEGORY_WORDS:
        if pattern.search(t):
            return category
    return "other"


# ------------------------------------------------------------------ inbound processing

@dataclass
class Inbound:
    sid: str
    phone: str
    body: str
    recorded: bool = False


class Duplicate(Exception):
    """This MessageSid was already handled (by a concurrent request)."""


_inbound: ContextVar[Inbound | None] = ContextVar("sms_inbound", default=None)

INSERT_INBOUND = ("INSERT INTO sms_inbound (message_sid, from_phone, body) VALUES ($1, $2, $3)"
                  " ON CONFLICT (message_sid) DO NOTHING RETURNING 1")


async def record_hook(conn: Any) -> None:
    """The inbound text that causes an incident change is recorded in the same transaction (`also`)."""
    ib = _inbound.get()
    if ib is None or ib.recorded:
        return
    if await conn.fetchval(INSERT_INBOUND, ib.sid, ib.phone, ib.body) is None:
        raise Duplicate(ib.sid)
    ib.recorded = True


async def _claim(s: Services, ib: Inbound, extra_sql: str | None = None, *args: Any) -> None:
    """Record the MessageSid now (with an optional effect in the same transaction)."""
    async with s.pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(INSERT_INBOUND, ib.sid, ib.phone, ib.body) is None:
            raise Duplicate(ib.sid)
        ib.recorded = True
        if extra_sql:
            await conn.execute(extra_sql, *args)


async def account_for_phone(conn: Any, phone: str, create: bool) -> Any:
    row = await conn.fetchrow("SELECT * FROM accounts WHERE phone = $1", phone)
    if row is None and create:
        row = await conn.fetchrow("INSERT INTO accounts (role, name, phone) VALUES ('resident', $1, $1)"
                                  " ON CONFLICT (phone) DO NOTHING RETURNING *", phone)
        row = row or await conn.fetchrow("SELECT * FROM accounts WHERE phone = $1", phone)
    return row


async def _open_incident(s: Services, account_id: str) -> Any:
    async with s.pool.acquire() as conn:
        return await conn.fetchrow("SELECT id, ref_no FROM incidents WHERE reporter_id = $1 AND status NOT IN"
                                   " ('resolved','cancelled') ORDER BY created_at DESC LIMIT 1", account_id)


async def handle(s: Services, phone: str, body: str, sid: str) -> str | None:
    """Act on one inbound text; the reply text (None: reply nothing)."""
    async with s.pool.acquire() as conn:
        prev = await conn.fetchrow("SELECT reply FROM sms_inbound WHERE message_sid = $1", sid)
        if prev is not None:
            return prev["reply"]
        stored_lang, opted_out = await sms_mod.contact(conn, phone)
    p = parse(body)
    lang = sms_mod.detect_lang(body, stored_lang)
    ib = Inbound(sid, phone, body[:sms_mod.MAX_BODY])
    token = _inbound.set(ib)
    try:
        action, reply = await _act(s, ib, p, lang, opted_out)
    except Duplicate:
        async with s.pool.acquire() as conn:
            return await conn.fetchval("SELECT reply FROM sms_inbound WHERE message_sid = $1", sid)
    except Exception:
        log.exception("inbound SMS %s from %s", sid, sms_mod.mask(phone))
        ib.recorded = False
        action, reply = "error", sms_mod.render(lang, "error", emergency=s.cfg.web.emergency_number)
    finally:
        _inbound.reset(token)
    if action in ("stop",) or (opted_out and action != "start"):
        reply = None      # Twilio would refuse a reply to an opted-out number
    async with s.pool.acquire() as conn, conn.transaction():
        if not ib.recorded:
            await conn.execute(INSERT_INBOUND, ib.sid, ib.phone, ib.body)
        await conn.execute("UPDATE sms_inbound SET action = $2, reply = $3 WHERE message_sid = $1",
                           sid, action, reply)
        if p.kind not in ("stop", "start", "yes"):
            await sms_mod.remember_lang(conn, phone, lang)
    return reply


async def _act(s: Services, ib: Inbound, p: Parsed, lang: str, opted_out: bool) -> tuple[str, str | None]:
    phone = ib.phone
    if p.kind == "stop":
        await _claim(s, ib, "INSERT INTO sms_contacts (phone, lang, opted_out) VALUES ($1, $2, true)"
                     " ON CONFLICT (phone) DO UPDATE SET opted_out = true, changed_at = now()", phone, lang)
        return "stop", None
    if p.kind == "start" or (p.kind == "yes" and opted_out):
        await _claim(s, ib, "INSERT INTO sms_contacts (phone, lang, opted_out) VALUES ($1, $2, false)"
                     " ON CONFLICT (phone) DO UPDATE SET opted_out = false, lang = $2, changed_at = now()",
                     phone, lang)
        return "start", sms_mod.render(lang, "start_ok")
    async with s.pool.acquire() as conn:
        acct = await account_for_phone(conn, phone, create=p.kind == "help")
    if acct is not None and acct["disabled"]:
        return "ignored", None
    who = Account(str(acct["id"]), acct["role"], acct["name"]) if acct is not None else None
    open_inc = await _open_incident(s, who.id) if who else None

    if p.kind == "help" and who is not None:
        if open_inc is not None:   # a second HELP adds to the open request instead of opening another
            if p.text:
                await s.dispatch.add_note(who.id, str(open_inc["id"]), p.text, via="sms", also=record_hook)
            return "help_open", sms_mod.render(lang, "help_open", ref=open_inc["ref_no"])
        try:   # request_help counts the account's help limit, shared with the app's help.request
            with sms_mod.quiet(who.id):
                inc, _ = await s.dispatch.request_help(
                    who, request_id=ib.sid[:64], category=guess_category(p.text), lat=None, lon=None,
                    accuracy_m=None, note=p.text[:1000], channel="sms", also=record_hook)
        except RateLimited:
            return "limited", sms_mod.render(lang, "limited", emergency=s.cfg.web.emergency_number)
        return "help", sms_mod.render(lang, "help_ok", ref=inc["ref_no"])
    if p.kind == "safe":
        if who is None or open_inc is None:
            return "safe_none", sms_mod.render(lang, "safe_none")
        try:
            with sms_mod.quiet(who.id):
                inc = await s.dispatch.cancel(who, str(open_inc["id"]), via="sms", also=record_hook)
        except Conflict:
            return "safe_none", sms_mod.render(lang, "safe_none")
        return "safe", sms_mod.render(lang, "safe_ok", ref=inc["ref_no"])
    if who is not None and open_inc is not None and ib.body.strip():
        try:
            await s.dispatch.add_note(who.id, str(open_inc["id"]), ib.body.strip()[:1000], via="sms",
                                      also=record_hook)
            return "note", sms_mod.render(lang, "note_ok", ref=open_inc["ref_no"])
        except Conflict:
            pass      # it closed meanwhile
    mediation = s.extras.get("mediation")
    if mediation is not None:
        await _claim(s, ib)      # before the effect: mediation's writes are not in our transaction
        answer = await mediation.handle_sms(phone, ib.body)
        if answer is not None:
            return "mediation", str(answer)
    return "usage", sms_mod.render(lang, "usage")


# ------------------------------------------------------------------ routes

def services_of(request: web.Request) -> Services:
    return request.app[SERVICES]


def twiml(text: str | None) -> web.Response:
    r = MessagingResponse()
    if text:
        r.message(text)
    return web.Response(text=str(r), content_type="text/xml", charset="utf-8")


async def signed_form(request: web.Request) -> Mapping[str, Any]:
    """The form fields of a Twilio webhook whose X-Twilio-Signature is valid, else Forbidden."""
    cfg = services_of(request).cfg
    form = await request.post()
    signature = request.headers.get("X-Twilio-Signature", "")
    if not cfg.sms.auth_token or not signature:
        raise Forbidden("missing Twilio signature")
    url = cfg.server.public_url.rstrip("/") + request.raw_path
    if not RequestValidator(cfg.sms.auth_token).validate(url, form, signature):
        raise Forbidden("invalid Twilio signature")
    return form


async def answer(s: Services, form: Mapping[str, Any]) -> web.Response:
    sid, sender, body = form.get("MessageSid") or form.get("SmsSid"), form.get("From"), form.get("Body", "")
    if not isinstance(sid, str) or not isinstance(sender, str) or not sid or not sender:
        raise BadRequest("MessageSid and From are required")
    try:
        phone = accounts.normalise_phone(sender)
    except BadRequest:
        return twiml(None)      # a short code or an alphanumeric sender: nothing to do
    return twiml(await handle(s, phone, str(body), sid[:64]))


async def inbound(request: web.Request) -> web.Response:
    form = await signed_form(request)
    return await answer(services_of(request), form)


async def status_callback(request: web.Request) -> web.Response:
    form = await signed_form(request)
    sid, status, code = form.get("MessageSid"), form.get("MessageStatus"), form.get("ErrorCode")
    if isinstance(sid, str) and isinstance(status, str) and sid and status:
        error_code = int(code) if isinstance(code, str) and code.isdigit() else None
        await services_of(request).extras["sms"].record_status(sid, status[:32], error_code)
    return web.Response(status=204)


def _console_local(request: web.Request) -> Services:
    s = services_of(request)
    if s.cfg.sms.provider != "console" or s.cfg.server.production:
        raise NotFound("the simulator exists only with sms.provider console, outside production")
    try:
        local = ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        local = False
    if not local or "X-Forwarded-For" in request.headers or "Forwarded" in request.headers:
        raise Forbidden("the simulator is served on loopback only")
    return s


class SimBody(msgspec.Struct, rename={"from_": "from"}):
    from_: Annotated[str, msgspec.Meta(min_length=3, max_length=32)]
    body: Annotated[str, msgspec.Meta(max_length=1600)]


async def simulate(request: web.Request) -> web.Response:
    """Console mode only, loopback only: an inbound text without Twilio (for trainers and testers)."""
    s = _console_local(request)
    msg = await read_json(request, SimBody)
    return await answer(s, {"MessageSid": "SIM" + uuid.uuid4().hex, "From": msg.from_, "Body": msg.body})


async def simulate_outbox(request: web.Request) -> web.Response:
    """Console mode only, loopback only: the texts sent to a phone (after the id `after`)."""
    s = _console_local(request)
    phone = accounts.normalise_phone(request.query.get("phone", ""))
    try:
        after = int(request.query.get("after", "0"))
    except ValueError:
        raise BadRequest("after must be an integer") from None
    async with s.pool.acquire() as conn:
        rows = await conn.fetch("SELECT id, body, status, created_at FROM sms_outbox WHERE to_phone = $1"
                                " AND id > $2 ORDER BY id LIMIT 100", phone, after)
    return web.json_response({"messages": [{"id": r["id"], "body": r["body"], "status": r["status"],
                                            "created_at": r["created_at"].isoformat()} for r in rows]})


# ------------------------------------------------------------------ phone login (OTP)

class OtpRequest(msgspec.Struct):
    phone: Annotated[str, msgspec.Meta(min_length=3, max_length=32)]


class OtpVerify(msgspec.Struct):
    phone: Annotated[str, msgspec.Meta(min_length=3, max_length=32)]
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=16)]


def code_hash(secret: str, phone: str, code: str) -> str:
    return hmac.new(secret.encode(), f"otp:{phone}:{code}".encode(), hashlib.sha256).hexdigest()


async def otp_request(request: web.Request) -> web.Response:
    s = services_of(request)
    phone = accounts.normalise_phone((await read_json(request, OtpRequest)).phone)
    if not await ratelimit.allow(s.redis, s.keys.rate("otp-req-addr", request.remote or "-"),
                                 *ratelimit.OTP_REQUESTS_PER_ADDRESS):
        raise RateLimited("too many codes asked from this address; try again later")
    code = f"{secrets.randbelow(10**6):06d}"
    async with s.pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO sms_otp (phone) VALUES ($1) ON CONFLICT DO NOTHING", phone)
        row = await conn.fetchrow(
            "SELECT sends, EXTRACT(EPOCH FROM now() - window_start)::float8 AS window_age,"
            " EXTRACT(EPOCH FROM now() - last_sent_at)::float8 AS since_last FROM sms_otp WHERE phone = $1"
            " FOR UPDATE", phone)
        if row["since_last"] is not None and row["since_last"] < OTP_COOLDOWN_S:
            raise RateLimited(f"wait {OTP_COOLDOWN_S} s before asking for another code")
        new_window = row["window_age"] >= 3600
        if not new_window and row["sends"] >= OTP_MAX_PER_HOUR:
            raise RateLimited("too many codes for this phone; try again later")
        await conn.execute(
            "UPDATE sms_otp SET code_hash = $2, expires_at = now() + make_interval(secs => $3), attempts = 0,"
            " last_sent_at = now(), sends = CASE WHEN $4 THEN 1 ELSE sends + 1 END,"
            " window_start = CASE WHEN $4 THEN now() ELSE window_start END WHERE phone = $1",
            phone, code_hash(s.cfg.auth.jwt_secret, phone, code), float(OTP_TTL_S), new_window)
        lang, _ = await sms_mod.contact(conn, phone)
        await s.extras["sms"].enqueue(conn, phone, sms_mod.render(lang, "otp", code=code), kind="otp",
                                      ttl_s=float(OTP_TTL_S))
    return web.json_response({"status": "sent", "expires_in_s": OTP_TTL_S}, status=202)


async def _caller(request: web.Request) -> dict[str, Any] | None:
    """The account of a Bearer token sent along (the app's device account), if any and valid."""
    from handlers.ws import authenticate

    h = request.headers.get("Authorization", "")
    if not h.startswith("Bearer "):
        return None
    try:
        account, _ = await authenticate(services_of(request), h[7:].strip())
    except HelplineError:
        return None
    return account


async def link_account(conn: Any, phone: str, caller: dict[str, Any] | None) -> Any:
    """The verified resident account of this phone: the SMS sender's account if there is one.

    A device account (the app) calling with its token takes the phone if no account has it;
    if one has, that account wins and takes over the device id (when it has none)."""
    row = await conn.fetchrow("SELECT * FROM accounts WHERE phone = $1 FOR UPDATE", phone)
    device = caller if caller and caller["role"] == "resident" and not caller["verified"] else None
    if row is not None:
        if row["role"] != "resident":
            raise Forbidden("this phone belongs to a staff account: log in with your password")
        if row["disabled"]:
            raise Forbidden("this account is blocked")
        if device is not None and device["id"] != str(row["id"]) and row["device_id"] is None:
            dev = await conn.fetchval("SELECT device_id FROM accounts WHERE id = $1 AND phone IS NULL FOR UPDATE",
                                      device["id"])
            if dev is not None:
                await conn.execute("UPDATE accounts SET device_id = NULL WHERE id = $1", device["id"])
                await conn.execute("UPDATE accounts SET device_id = $2 WHERE id = $1", row["id"], dev)
        return await conn.fetchrow("UPDATE accounts SET verified = true WHERE id = $1 RETURNING *", row["id"])
    if device is not None:
        got = await conn.fetchrow("UPDATE accounts SET phone = $2, verified = true,"
                                  " name = COALESCE(NULLIF(name, ''), $2) WHERE id = $1 AND phone IS NULL"
                                  " RETURNING *", device["id"], phone)
        if got is not None:
            return got
    return await conn.fetchrow("INSERT INTO accounts (role, name, phone, verified) VALUES ('resident', $1, $1, true)"
                               " RETURNING *", phone)


async def otp_verify(request: web.Request) -> web.Response:
    s = services_of(request)
    body = await read_json(request, OtpVerify)
    phone = accounts.normalise_phone(body.phone)
    code = unicodedata.normalize("NFKC", body.code).strip()
    by_address = s.keys.rate("otp-fail-addr", request.remote or "-")
    if await ratelimit.peek(s.redis, by_address) >= ratelimit.OTP_FAILURES_PER_ADDRESS[0]:
        raise RateLimited("too many wrong codes from this address; try again later")
    caller = await _caller(request)
    row = None
    async with s.pool.acquire() as conn, conn.transaction():
        otp = await conn.fetchrow("SELECT code_hash, expires_at > now() AS live, attempts FROM sms_otp"
                                  " WHERE phone = $1 FOR UPDATE", phone)
        if otp is not None and otp["code_hash"] and otp["live"] and otp["attempts"] < OTP_MAX_ATTEMPTS:
            if hmac.compare_digest(otp["code_hash"], code_hash(s.cfg.auth.jwt_secret, phone, code)):
                await conn.execute("UPDATE sms_otp SET code_hash = NULL, expires_at = NULL WHERE phone = $1", phone)
                row = await link_account(conn, phone, caller)
            else:
                await conn.execute("UPDATE sms_otp SET attempts = attempts + 1 WHERE phone = $1", phone)
    if row is None:
        await ratelimit.count(s.redis, by_address, ratelimit.OTP_FAILURES_PER_ADDRESS[1])
        raise Unauthorized("wrong or expired code")
    token = s.tokens.issue(str(row["id"]), row["role"], row.get("session_epoch", 0))
    return web.json_response({"token": token, "account": accounts.account_view(row)})


# ------------------------------------------------------------------ wiring

async def _sms_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the core's resources: the gateway, the outbox worker and the dispatch change hooks."""
    s = app[SERVICES]
    svc = sms_mod.SmsService(s.cfg, s.pool, sms_mod.make_gateway(s.cfg))
    s.extras["sms"] = svc
    s.dispatch.on_change(lambda conn, inc, actor_id, via: svc.incident_hook(conn, inc), frozenset({"sms"}))
    svc.start()
    try:
        yield
    finally:
        await svc.stop()


def setup_app(app: web.Application, cfg: Config) -> None:
    r = app.router
    r.add_post("/sms/inbound", inbound)
    r.add_post("/sms/status", status_callback)
    r.add_post("/sms/simulate", simulate)
    r.add_get("/sms/simulate/outbox", simulate_outbox)
    r.add_post("/api/auth/otp/request", otp_request)
    r.add_post("/api/auth/otp/verify", otp_verify)
    app.cleanup_ctx.append(_sms_ctx)
