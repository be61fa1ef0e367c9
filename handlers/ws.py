"""The /ws endpoint: hello, the command envelope, and what happens when a connection ends.

Commands are looked up in the one table (handlers/commands.py), decoded once by their
struct, checked against the role, the session, the per-connection bucket and the
account's cluster-wide window, then run under the node's admission control.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import asyncpg
import msgspec
from aiohttp import WSCloseCode, WSMsgType, web
from redis.exceptions import RedisError

from handlers import help as help_handlers
from handlers import mediation as mediation_handlers
from handlers import messages as m
from handlers import transport, wire
from handlers.commands import COMMANDS
from handlers.connection import Connection, Hub, authenticate
from handlers.context import ADMISSION, CONFIG, DISPATCH, FEEDS, HUB
from infra import logs, ratelimit
from infra.auth import Claims
from infra.errors import BadRequest, Forbidden, HelplineError, RateLimited, SessionEnded, Unauthorized, Unavailable

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 10
MAX_FRAME = 64 * 1024
CLOSE_UNAUTHORIZED = 4401
# frequent commands that reveal or change nothing of others: no per-command session re-check
# (a role change or suspension still closes the connection at once through Redis)
UNPRIVILEGED = frozenset({"ping", "location.update"})
# a resident's commands are not re-checked one by one (the periodic re-check covers them), except a help
# request: a device account disabled in the database must not send one more. That check is made by the
# report's own statement (dispatch/store.py REPORT_SQL, SessionEnded below), not by a query of its own here
RECHECKED: frozenset[str] = frozenset()
_envelope = msgspec.json.Decoder(m.Envelope)
_encode = msgspec.json.Encoder().encode
_hello = msgspec.json.Decoder(m.Hello)
# what an unexpected failure of the backing stores looks like: answered `unavailable`, the socket stays
INFRA_ERRORS = (asyncpg.InterfaceError, asyncpg.CannotConnectNowError, asyncpg.ConnectionDoesNotExistError,
                RedisError,
                asyncpg.InternalClientError)   # mid-failover: only standbys, a lost connection (db.OUTAGE)


def _origin_ok(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser
    cfg = request.app[CONFIG].server
    allowed = {o.strip().rstrip("/") for o in cfg.allowed_origins.split(",") if o.strip()}
    same = f"{request.scheme}://{request.host}"
    return origin.rstrip("/") in allowed | {same, cfg.public_url.rstrip("/")}


async def welcome(conn: Connection) -> dict[str, Any]:
    """Everything a (re)connecting client needs to pick up where it was, read concurrently."""
    parts = await asyncio.gather(help_handlers.welcome_state(conn), mediation_handlers.welcome_state(conn))
    out: dict[str, Any] = {"type": "welcome", "account": conn.account}
    for part in parts:
        out.update(part)
    out["server_time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return out


async def resync(app: web.Application) -> None:
    """After a Redis outage: send every client its current state again (pushes may have been lost)."""
    hub, feeds = app[HUB], app[FEEDS]
    try:
        await hub.recheck_sessions()    # pushes lost in the outage may include a session.ended
    except Exception as e:
        log.warning("session re-check before resync: %s", e)
    for conn in hub.all():
        if conn.closed:
            continue
        with contextlib.suppress(Exception):
            await help_handlers.resync(conn)
    for conn in hub.all():
        if conn.closed:
            continue
        with contextlib.suppress(Exception):
            await feeds.resync(conn)


async def ws_handler(request: web.Request) -> web.StreamResponse:
    app = request.app
    hub: Hub = app[HUB]
    if not _origin_ok(request):
        raise web.HTTPForbidden(text='{"error":{"code":"forbidden","message":"origin not allowed"}}',
                                content_type="application/json")
    if hub.count + hub.pending >= hub.max_sockets:
        raise web.HTTPServiceUnavailable(
            text='{"error":{"code":"unavailable","message":"this node is full; try another"}}',
            content_type="application/json", headers={"Retry-After": "5"})
    # no permessage-deflate: it costs ~100 KiB per idle connection and a tenth of the CPU for frames
    # of a few hundred bytes
    ws = web.WebSocketResponse(max_msg_size=MAX_FRAME, heartbeat=25, autoping=True, compress=False)
    # a socket waiting for its hello holds a descriptor like any other: counted against the node's cap
    hub.pending += 1
    try:
        await ws.prepare(request)
        transport.set_busy(request.transport, False)    # no session yet: evictable at the node's TCP cap
        first = await _hello_of(app, ws)
    finally:
        hub.pending -= 1
    if first is None:
        return ws
    transport.set_busy(request.transport, True)         # a session: never evicted
    account, claims = first
    conn = Connection(hub, ws, account, claims, request.remote or "-")
    hub.add(conn)
    # the connection's own lines carry its account and role: its start and its end here, each command in
    # handle_frame (a scope of its own, not one held for the connection's life: ~300 bytes less per socket)
    try:
        with logs.scope(account_id=conn.id, role=conn.role):
            await _open(conn, request)
        conn.start_writing()
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await handle_frame(conn, msg.data)
            elif msg.type == WSMsgType.BINARY:
                conn.send({"type": "error", "ref": None, "code": "bad_request", "message": "text frames only"})
            elif msg.type == WSMsgType.ERROR:
                break
    except Exception:
        with logs.scope(account_id=conn.id, role=conn.role):
            log.exception("connection %s failed", conn.id)
    finally:
        with logs.scope(account_id=conn.id, role=conn.role):
            await _close(conn)
    return ws


async def _open(conn: Connection, request: web.Request) -> None:
    """Listen to the account's channel, list the session, mark a responder online, send the welcome."""
    hub = conn.hub
    await conn.listen(hub.keys.account_channel(conn.id))
    try:     # listed on /admin before the welcome: whoever sees the welcome finds the session there
        await hub.session_opened(conn, request.headers.get("User-Agent", ""))
    except Exception as e:      # not listed until the next refresh; the session itself is fine
        log.warning("listing the session of %s: %s", conn.id, e)
    if conn.role == "responder" and hub.bus.connected:   # who can be offered incidents (and hear them)
        with contextlib.suppress(Exception):
            key = hub.keys.online(conn.id)
            await hub.bus.batch.run(lambda pipe: pipe.set(key, "1", ex=60), 1)
    # listening already: what changes from here on arrives as a push; now read the state
    await conn.ws.send_str(_encode(await welcome(conn)).decode())


async def _close(conn: Connection) -> None:
    """The connection ended: stop writing, drop its channels and feeds, unlist it; the account's last one here
    gone: _gone."""
    hub = conn.hub
    conn.mark_closing()
    conn.stop_writing()
    for ch in list(conn.channels):
        with contextlib.suppress(Exception):
            await conn.unlisten(ch)
    try:
        await conn.app[FEEDS].forget(conn)
    except Exception:
        log.exception("dropping the feeds of %s", conn.id)
    with contextlib.suppress(Exception):      # else it ages out of the listing (infra/sessions.py STALE_S)
        await hub.session_closed(conn)
    if hub.remove(conn):
        await _gone(conn)


async def _hello_of(app: web.Application, ws: web.WebSocketResponse) -> tuple[dict[str, Any], Claims] | None:
    """The account and claims of the first frame, or None once the socket is closed for want of them."""
    try:
        msg = await ws.receive(timeout=HELLO_TIMEOUT_S)
    except TimeoutError:
        await ws.close(code=CLOSE_UNAUTHORIZED, message=b"no hello")
        return None
    if msg.type != WSMsgType.TEXT:
        await ws.close(code=CLOSE_UNAUTHORIZED, message=b"expected hello")
        return None
    try:
        hello = wire.decode(_hello, msg.data, "hello")
        if hello.type != "hello":
            raise Unauthorized("first frame must be hello")
        return await authenticate(app, hello.token)
    except HelplineError as e:
        await ws.close(code=CLOSE_UNAUTHORIZED, message=e.message.encode()[:120])
    except Exception:
        log.exception("hello failed")
        await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"unavailable")
    return None


async def _gone(conn: Connection) -> None:
    """The account's last connection on this node closed."""
    if conn.role == "responder":
        hub = conn.hub
        with contextlib.suppress(Exception):
            await hub.redis.delete(hub.keys.online(conn.id))
        try:
            await conn.app[DISPATCH].responder_gone(conn.id)
        except Exception:
            log.exception("moving on the offer of disconnected responder %s", conn.id)


def _ids(obj: Any) -> dict[str, str | None]:
    """The identifiers a command names or an answer carries, for the log context (infra/logs.py)."""
    out: dict[str, str | None] = {}
    for field in ("incident_id", "case_id", "offer_id"):
        v = getattr(obj, field, None)
        if isinstance(v, str):
            out[field] = v.lower()
    if isinstance(obj, dict):
        for key, field in (("incident", "incident_id"), ("case", "case_id")):
            rec = obj.get(key)
            if isinstance(rec, dict) and isinstance(rec.get("id"), str):
                out[field] = rec["id"]
                out["ref"] = rec.get("ref_no")
    return out


async def handle_frame(conn: Connection, data: str) -> None:
    """One command, its log lines carrying the account, the command's ref (request_id) and the ids it names."""
    with logs.scope(account_id=conn.id, role=conn.role):
        await _handle_frame(conn, data)


async def _handle_frame(conn: Connection, data: str) -> None:
    hub = conn.hub
    metrics = hub.metrics
    ref = None
    type_ = "-"
    try:
        env = wire.decode(_envelope, data)
        ref = env.ref
        wire.check_nul(data)        # every text field of every command, before any reaches a domain
        if env.ref is None:
            raise BadRequest("every command needs a ref")
        cmd = COMMANDS.get(env.type)
        if cmd is None:
            raise BadRequest(f"unknown type {env.type!r}")
        type_ = env.type
        logs.add(request_id=ref, command=type_)
        if conn.role not in cmd.roles:
            raise Forbidden(f"{env.type} is not for a {conn.role}")
        if ((env.type in RECHECKED or (conn.role != "resident" and env.type not in UNPRIVILEGED))
                and not await conn.session_valid()):
            conn.send({"type": "error", "ref": ref, "code": "unauthorized", "message": "session ended: log in again"})
            conn.end_session()
            return
        msg = wire.decode(cmd.decoder, data)
        logs.add(**_ids(msg))
        if not conn.allow(env.type):
            raise RateLimited(f"too many {env.type}; slow down")
        limit = None if env.type in ratelimit.COUNTED_BY_SERVICE else ratelimit.ACCOUNT_LIMITS.get(env.type)
        if limit and not await ratelimit.allow(hub.bus.batch, hub.keys.rate(env.type, conn.id), *limit):
            raise RateLimited(f"too many {env.type} from this account; wait a few minutes")
        t0 = time.perf_counter()
        if env.type in UNPRIVILEGED:            # ping and location updates: cheap, never held back
            result = await cmd.fn(conn, msg)
        else:
            async with conn.app[ADMISSION]:
                result = await cmd.fn(conn, msg)
        took = time.perf_counter() - t0
        metrics.command_seconds.labels(type=env.type).observe(took)
        metrics.commands.labels(type=env.type, result="ok").inc()
        conn.send({"type": "ok", "ref": ref, **(result or {})})
        if log.isEnabledFor(logging.DEBUG):
            logs.add(**_ids(result))
            log.debug("command %s ok in %.1f ms", env.type, took * 1000)
    except HelplineError as e:
        log.debug("command %s answered %s", type_, e.code)     # the code only: messages may quote input
        metrics.commands.labels(type=type_, result=e.code).inc()
        conn.send({"type": "error", "ref": ref, "code": e.code, "message": e.message})
        if isinstance(e, SessionEnded):
            conn.end_session()
    except asyncpg.DataError as e:
        # a value the database cannot hold that no check caught first: the client's input, not an outage
        # the class only: asyncpg's message quotes the value (a note, a name)
        log.warning("command %s refused by the database: %s", type_, type(e).__name__)
        conn.send({"type": "error", "ref": ref, "code": BadRequest.code, "message": "a value cannot be stored"})
    except (TimeoutError, OSError, ConnectionError, *INFRA_ERRORS) as e:
        log.warning("command failed, service unavailable: %s", e)
        conn.send({"type": "error", "ref": ref, "code": Unavailable.code, "message": "service unavailable; retry"})
    except Exception:
        log.exception("command %s failed", ref)
        conn.send({"type": "error", "ref": ref, "code": "unavailable", "message": "internal error"})
