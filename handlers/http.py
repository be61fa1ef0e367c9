"""HTTP routes of contract §2: health, metrics, auth, help, incidents, pages."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from handlers import messages as m
from handlers import transport, wire
from handlers.apidoc import BEARER, LOOPBACK, route_doc
from handlers.connection import authenticate
from handlers.context import BUS, CONFIG, DISPATCH, KEYS, MEDIATION, METRICS, POOL, PUSH, REDIS, TOKENS
from handlers.static import StaticFiles, compress_json
from handlers.wire import NUL_MESSAGE
from infra import accounts, audit, db, logs, ratelimit, redisclient
from infra.auth import Claims, session_ended
from infra.errors import BadRequest, Forbidden, HelplineError, NotFound, RateLimited, TooLarge, Unauthorized
from infra.identity import Account
from mediation import agreement_pdf

log = logging.getLogger(__name__)
STATIC = web.AppKey("static", StaticFiles)
MAX_BODY = 64 * 1024
WEB = Path(__file__).resolve().parent.parent / "web" / "static"
PAGES = {"/": "index.html", "/responder": "responder.html", "/dispatch": "dispatch.html", "/mediate": "mediate.html",
         "/reports": "reports.html", "/admin": "admin.html"}
CSP = ("default-src 'self'; img-src 'self' data: https: http:; connect-src 'self' ws: wss:; "
       "style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


class LoginBody(msgspec.Struct):
    username: Annotated[str, msgspec.Meta(max_length=64)]
    password: Annotated[str, msgspec.Meta(max_length=256)]


class DeviceBody(msgspec.Struct):
    device_id: Annotated[str, msgspec.Meta(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]


def error_body(e: HelplineError) -> web.Response:
    return web.json_response({"error": {"code": e.code, "message": e.message}}, status=e.status)


REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@web.middleware
async def log_context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request's log lines carry its request id: the client's `X-Request-Id` (letters, digits, `._:-`,
    up to 64), else a new one; it is answered in `X-Request-Id` (infra/logs.py). The path only, never the
    query, goes in the DEBUG line (a query may hold a phone number)."""
    given = request.headers.get("X-Request-Id", "")
    rid = given if REQUEST_ID.match(given) else uuid.uuid4().hex
    t0 = time.perf_counter()
    status = 0
    with logs.scope(request_id=rid):
        try:
            resp = await handler(request)
            status = resp.status
        except web.HTTPException as e:
            status = e.status
            e.headers["X-Request-Id"] = rid
            raise
        finally:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s answered %d in %.1f ms", request.method, request.path, status,
                          (time.perf_counter() - t0) * 1000)
    resp.headers["X-Request-Id"] = rid
    return resp


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(peer: str | None, forwarded_for: list[str], trusted: list[Network]) -> str | None:
    """The client's address: the peer's, unless the peer is a trusted proxy; then the nearest address in
    X-Forwarded-For (read from the right, each hop appending the address it got the request from) that is
    not a trusted proxy itself. Hops a trusted proxy did not write (left of the first untrusted one) are the
    client's own words and never believed; a malformed hop stops the walk at the last good one."""
    def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        try:
            return ipaddress.ip_address(text.strip())
        except ValueError:
            return None

    here = ip(peer or "")
    if here is None or not trusted or not any(here in net for net in trusted):
        return peer
    hops = [h for value in forwarded_for for h in value.split(",")]
    for hop in reversed(hops):
        addr = ip(hop)
        if addr is None:
            break
        here = addr
        if not any(addr in net for net in trusted):
            break
    return str(here)


def proxies_middleware(trusted: list[Network]) -> Any:
    """Requests (and WebSocket upgrades) through a trusted reverse proxy carry the client's address in
    `request.remote`, which every limit per address, the audit log and the sessions list read."""
    @web.middleware
    async def real_client(request: web.Request, handler: Handler) -> web.StreamResponse:
        forwarded = request.headers.getall("X-Forwarded-For", [])
        if forwarded:
            remote = client_address(request.remote, forwarded, trusted)
            if remote is not None and remote != request.remote:
                request = request.clone(remote=remote)
        return await handler(request)
    return real_client


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every answer of every route is JSON when it is an error, 500 included (logged)."""
    # every audit entry written for this request (or for this /ws connection's commands): from where
    audit.CLIENT_ADDRESS.set(request.remote)
    try:
        await screen(request)
        # from here the request is handled (its body has arrived): its connection is not evicted at the
        # node's connection cap until the handler returns (handlers/transport.py)
        transport.set_busy(request.transport, True)
        try:
            resp = await handler(request)
        finally:
            transport.set_busy(request.transport, False)
    except HelplineError as e:
        resp = error_body(e)
    except web.HTTPException as e:
        if e.status < 400 or e.content_type == "application/json":
            raise
        code = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "bad_request",
                408: "bad_request", 413: "bad_request", 429: "rate_limited"}.get(e.status, "unavailable")
        resp = web.json_response({"error": {"code": code, "message": e.reason}}, status=e.status)
    except asyncpg.DataError as e:
        # a value the database cannot hold that no check caught first: the client's input, not an outage
        # the class only: asyncpg's message quotes the value (a note, a name)
        log.warning("%s %s: refused by the database: %s", request.method, request.path, type(e).__name__)
        resp = error_body(BadRequest("a value of this request cannot be stored"))
    except db.OUTAGE as e:     # timeouts, no database host taking writes, a connection lost (mid-failover)
        log.warning("%s %s: unavailable: %s", request.method, request.path, e)
        resp = web.json_response({"error": {"code": "unavailable", "message": "service unavailable; retry"}},
                                 status=503)
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        resp = web.json_response({"error": {"code": "unavailable", "message": "internal error"}}, status=500)
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "no-referrer")
    compress_json(request, resp)
    return resp


class BodyTimeout(HelplineError):
    code, status = "bad_request", 408


async def screen(request: web.Request) -> None:
    """What no route may be given, checked once for all of them: a body sent slower than
    server.body_timeout_s (the header deadline is the transport's: server.keepalive_timeout_s),
    a multipart body (no route takes one), and a NUL character in the query or a form body
    (JSON bodies are checked where they are decoded: read_json)."""
    if "%00" in request.raw_path or "\x00" in request.raw_path:
        raise BadRequest(NUL_MESSAGE)
    if not request.body_exists:
        return
    ctype = request.content_type
    if ctype.startswith("multipart/"):
        raise BadRequest("multipart bodies are not accepted")
    try:
        async with asyncio.timeout(request.app[CONFIG].server.body_timeout_s):
            raw = await request.read()      # kept by aiohttp: read() and post() return it again
    except TimeoutError:
        request.protocol.force_close()
        raise BodyTimeout("the request body was not sent in time") from None
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge("body too large") from None
    if ctype == "application/x-www-form-urlencoded" and (b"%00" in raw or b"\x00" in raw):
        raise BadRequest(NUL_MESSAGE)


_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def _decoder(struct: type[Any]) -> msgspec.json.Decoder[Any]:
    d = _decoders.get(struct)
    if d is None:
        d = _decoders[struct] = msgspec.json.Decoder(struct)
    return d


async def read_json(request: web.Request, struct: type[Any]) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise TooLarge("body too large")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge("body too large") from None
    if len(raw) > MAX_BODY:
        raise TooLarge("body too large")
    body = wire.decode(_decoder(struct), raw, "JSON body")
    wire.check_nul(raw)
    return body


def who_of(account: dict[str, Any]) -> Account:
    return Account(account["id"], account["role"], account.get("name") or "")


async def bearer(request: web.Request) -> dict[str, Any]:
    return (await bearer_claims(request))[0]


def bearer_token(request: web.Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    h = request.headers.get("Authorization", "")
    return h[7:].strip() if h.startswith("Bearer ") else None


async def bearer_claims(request: web.Request) -> tuple[dict[str, Any], Claims]:
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("Authorization: Bearer <token> required")
    account, claims = await authenticate(request.app, token)
    logs.add(account_id=account["id"], role=account["role"])
    return account, claims


# ---------------------------------------------------------------- health and metrics
@route_doc()
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@route_doc(statuses={503: "not ready: the database or Redis does not answer"})
async def readyz(request: web.Request) -> web.Response:
    app = request.app
    failed: dict[str, str] = {}
    try:
        async with asyncio.timeout(2):
            async with app[POOL].acquire() as conn:
                await conn.fetchval("SELECT 1")
    except TimeoutError:
        failed["postgres"] = "no connection or answer within 2 s (pool busy, or a host that does not answer)"
    except db.UNREACHABLE as e:          # in words: which hosts, and why none of them takes writes
        cfg_url = app[CONFIG].database.url
        failed["postgres"] = db.unavailable(db.hosts_text(cfg_url) if cfg_url else "the embedded database", e)
    except Exception as e:
        failed["postgres"] = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    said: dict[str, str] = {}     # per part, what is happening, for an operator (docs/protocol.md, GET /readyz)
    try:
        async with asyncio.timeout(2):
            problem, said["redis"] = await redisclient.describe(app[REDIS], app[KEYS].keepalive_channel)
        if problem is None and not app[BUS].connected:
            problem = "Resubscribing"
            said["redis"] += "; the subscriptions are being made again (pushes wait)"
        if problem is not None:
            failed["redis"] = problem
    except Exception as e:
        failed["redis"] = type(e).__name__
        said["redis"] = ("Redis did not answer within 2 s" if isinstance(e, TimeoutError)
                         else f"Redis: {type(e).__name__}: {e}")
    if failed:
        return web.json_response({"status": "unavailable", "failed": failed, **said}, status=503)
    return web.json_response({"status": "ready", **said})


def _loopback(request: web.Request) -> bool:
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


@route_doc(auth=LOOPBACK, answers="text/plain")
async def metrics(request: web.Request) -> web.Response:
    if not _loopback(request):
        raise Forbidden("metrics are served on loopback only")
    app = request.app
    try:
        async with asyncio.timeout(2):
            async with app[POOL].acquire() as conn:
                rows = await conn.fetch("SELECT status, count(*) AS n FROM incidents GROUP BY status")
        seen = {r["status"]: r["n"] for r in rows}
        for st in ("queued", "offered", "assigned", "en_route", "on_scene", "resolved", "escalated", "cancelled"):
            app[METRICS].incidents_by_status.labels(status=st).set(seen.get(st, 0))
    except Exception as e:  # still serve what this node knows
        log.warning("metrics: incident counts unavailable: %s", e)
    body = generate_latest(app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


# ---------------------------------------------------------------- auth
@route_doc(body=LoginBody)
async def login(request: web.Request) -> web.Response:
    body = await read_json(request, LoginBody)
    app = request.app
    username, address = body.username.lower(), request.remote or "-"
    limits = ((app[KEYS].rate("login-fail-pair", f"{username}|{address}"),
               ratelimit.LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS),
              (app[KEYS].rate("login-fail", username), ratelimit.LOGIN_FAILURES_PER_ACCOUNT),
              (app[KEYS].rate("login-fail-addr", address), ratelimit.LOGIN_FAILURES_PER_ADDRESS))
    for key, (limit, _) in limits:
        if await ratelimit.peek(app[REDIS], key) >= limit:
            raise RateLimited("too many failed logins; try again in 15 minutes")
    async with app[POOL].acquire() as conn:
        row = await accounts.check_login(conn, body.username, body.password)
    if row is None:
        for key, (_, window) in limits:
            await ratelimit.count(app[REDIS], key, window)
        raise Unauthorized("wrong username or password")
    return web.json_response({"token": app[TOKENS].issue(str(row["id"]), row["role"], row["session_epoch"]),
                              "account": accounts.account_view(row)})


async def _count_new_device(request: web.Request) -> None:
    """RateLimited past the new-device limits of the client's address, then of its network (an
    attempt refused for its address does not use up its neighbours' share)."""
    app = request.app
    address = request.remote or "-"
    for key, (limit, window) in ((app[KEYS].rate("new-device-addr", address), ratelimit.NEW_DEVICES_PER_ADDRESS),
                                 (app[KEYS].rate("new-device-net", ratelimit.address_prefix(address)),
                                  ratelimit.NEW_DEVICES_PER_NETWORK)):
        if await ratelimit.count(app[REDIS], key, window) > limit:
            raise RateLimited("too many new devices from this network; try again later,"
                              " or call the emergency number")


@route_doc(body=DeviceBody)
async def device(request: web.Request) -> web.Response:
    body = await read_json(request, DeviceBody)
    app = request.app
    async with app[POOL].acquire() as conn:
        if not await accounts.device_is_known(conn, body.device_id):
            await _count_new_device(request)
        row = await accounts.for_device(conn, body.device_id)
    if row["disabled"]:
        raise Forbidden("this device is blocked")
    return web.json_response({"token": app[TOKENS].issue(str(row["id"]), row["role"], row["session_epoch"]),
                              "account": accounts.account_view(row)})


@route_doc(auth=BEARER)
async def logout(request: web.Request) -> web.Response:
    """Revoke this token: it is refused from now on, and its open connections close (1008); the account's
    push subscriptions are dropped (no alerts on a device nobody is signed in on)."""
    account, claims = await bearer_claims(request)
    app = request.app
    async with app[POOL].acquire() as conn:
        await conn.execute("INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, to_timestamp($2))"
                           " ON CONFLICT DO NOTHING", claims.token_id, claims.expires_at)
    await app[BUS].publish(app[KEYS].account_channel(account["id"]), session_ended(claims.token_id))
    await app[PUSH].drop_account(account["id"], "logout")
    return web.Response(status=204)


# ---------------------------------------------------------------- help and incidents
@route_doc(body=m.HelpFields, auth=BEARER)
async def post_help(request: web.Request) -> web.Response:
    account = await bearer(request)
    if account["role"] != "resident":
        raise Forbidden("only residents ask for help")
    body = await read_json(request, m.HelpFields)
    inc, created = await request.app[DISPATCH].request_help(
        who_of(account), request_id=body.request_id,
        category=body.category, lat=body.lat, lon=body.lon, accuracy_m=body.accuracy_m, note=body.note,
        channel="http", remote=request.remote or "-")
    return web.json_response({"incident": inc}, status=201 if created else 200)


@route_doc(auth=BEARER)
async def get_incident(request: web.Request) -> web.Response:
    account = await bearer(request)
    iid = request.match_info["id"]
    logs.add(incident_id=iid[:40])
    try:
        msgspec.convert(iid, m.Id)
    except msgspec.ValidationError:
        raise NotFound("no such incident") from None
    data = await request.app[DISPATCH].reads.incident_with_events(
        who_of(account), iid)
    return web.json_response(data)


@route_doc(auth=BEARER, answers="application/pdf",
           statuses={403: "not a participant of the case nor an admin", 404: "no such case",
                     409: "the case is not settled", 503: "no CJK font to embed (pdf.font)"})
async def get_agreement_pdf(request: web.Request) -> web.Response:
    """The settled agreement of a case as a PDF (issue 15): its participants and admins."""
    account = await bearer(request)
    cid = request.match_info["id"].lower()
    logs.add(case_id=cid[:40])
    try:
        msgspec.convert(cid, m.Id)
    except msgspec.ValidationError:
        raise NotFound("no such case") from None
    doc = await request.app[MEDIATION].settled_agreement(who_of(account), cid)
    font = agreement_pdf.find_font(request.app[CONFIG].pdf.font)
    # subsetting a CJK font: off the loop, one at a time (agreement_pdf.EXECUTOR)
    body = await asyncio.get_running_loop().run_in_executor(agreement_pdf.EXECUTOR, agreement_pdf.document, doc, font)
    return web.Response(body=body, content_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="agreement-{doc.ref_no}.pdf"',
        "Cache-Control": "no-store"})


@route_doc()
async def public_config(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    w = cfg.web
    return web.json_response({"map_tile_url": w.map_tile_url, "emergency_number": w.emergency_number,
                              "city_center": [w.city_center_lat, w.city_center_lon],
                              "sms_number": cfg.sms.from_number})


# ---------------------------------------------------------------- pages
def page(name: str) -> Any:
    async def serve(request: web.Request) -> web.StreamResponse:
        if not (WEB / name).is_file():
            raise NotFound("page not built")
        resp = request.app[STATIC].response(request, name)
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Frame-Options"] = "DENY"
        return resp
    return serve


@route_doc(answers="application/octet-stream")
async def static_file(request: web.Request) -> web.StreamResponse:
    return request.app[STATIC].response(request, request.match_info["path"])


@route_doc(answers="text/javascript")
async def service_worker(request: web.Request) -> web.StreamResponse:
    """The resident page's offline shell; served from the root so that its scope covers `/`."""
    path = WEB / "sw.js"
    if not path.is_file():
        raise NotFound("page not built")
    resp = web.FileResponse(path, headers={"Content-Type": "text/javascript; charset=utf-8"})
    resp.headers["Service-Worker-Allowed"] = "/"
    resp.headers["Cache-Control"] = "no-cache"  # a changed worker is picked up on the next visit
    return resp


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/healthz", healthz)
    r.add_get("/readyz", readyz)
    r.add_get("/metrics", metrics)
    r.add_post("/api/auth/login", login)
    r.add_post("/api/auth/device", device)
    r.add_post("/api/auth/logout", logout)
    r.add_post("/api/help", post_help)
    r.add_get("/api/incidents/{id}", get_incident)
    r.add_get("/api/config", public_config)
    r.add_get("/api/cases/{id}/agreement.pdf", get_agreement_pdf)
    for path, name in PAGES.items():
        r.add_get(path, page(name))
    app[STATIC] = StaticFiles(WEB)
    r.add_get("/static/{path:.+}", static_file)
    r.add_get("/sw.js", service_worker)
