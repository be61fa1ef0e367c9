"""The /ws endpoint: hello, the command envelope, pushes, and this node's connections.

Each connection has one outgoing queue drained by a writer task: answers and
pushes leave in the order they were queued, and a client that stops reading
is disconnected once its queue passes server.ws_max_queue instead of growing memory.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from typing import Any

import msgspec
from aiohttp import WSCloseCode, WSMsgType, web

from handlers import messages as m
from handlers.registry import COMMANDS
from infra.errors import BadRequest, Forbidden, HelplineError, RateLimited, Unauthorized, Unavailable
from infra import ratelimit
from infra.auth import SESSION_ENDED_PREFIX
from server.services import SERVICES, Services

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 10
MAX_FRAME = 64 * 1024
CLOSE_UNAUTHORIZED = 4401
_CLOSE = object()   # queued after the last frame a connection gets before it is closed (1008)
# frequent commands that reveal or change nothing of others: no per-command session re-check
# (a role change or suspension still closes the connection at once through Redis)
UNPRIVILEGED = frozenset({"ping", "location.update"})
_envelope = msgspec.json.Decoder(m.Envelope)
_encode = msgspec.json.Encoder().encode     # answers and pushes: compact JSON, a few times faster than json
_hello = msgspec.json.Decoder(m.Hello)

# per-connection token buckets: (burst, refill per second)
RATE_LIMITS = {"help.request": (5, 0.2), "chat.send": (20, 5.0), "location.update": (10, 2.0)}
DEFAULT_RATE = (60, 30.0)


class Bucket:
    def __init__(self, burst: float, rate: float) -> None:
        self.burst, self.rate, self.tokens, self.at = burst, rate, burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Connection:
    """One authenticated client. Handlers see it as `ctx`."""

    def __init__(self, services: Services, ws: web.WebSocketResponse, account: dict[str, Any],
                 claims: Any) -> None:
        self.services, self.ws, self.account, self.claims = services, ws, account, claims
        self.id: str = account["id"]
        self.role: str = account["role"]
        self.channels: set[str] = set()
        self.state: dict[str, Any] = {}            # per-connection data of feature modules
        self._out: deque[Any] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._buckets: dict[str, Bucket] = {}
        self.writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None

    # outgoing
    def deliver(self, payload: str) -> None:
        if self._closing:
            return
        if payload.startswith(SESSION_ENDED_PREFIX):
            self._session_ended(payload)
            return
        if len(self._out) >= self.services.cfg.server.ws_max_queue:
            self._closing = True
            self.services.metrics.slow_consumers.inc()
            log.warning("closing slow consumer %s (%d frames queued)", self.id, len(self._out))
            # kept until done: the loop holds only a weak reference to a task
            self._closer = asyncio.get_running_loop().create_task(
                self.ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"slow consumer"))
            return
        self._out.append(payload)
        self._wake.set()

    def _session_ended(self, payload: str) -> None:
        """An admin changed the account, or this token logged out: close with 1008 (policy)."""
        jti = json.loads(payload).get("jti")
        if jti is None or jti == self.claims.token_id:
            self.end_session()

    def end_session(self) -> None:
        """Close with 1008 once what is already queued (e.g. the answer saying why) has been sent."""
        if not self._closing:
            self._out.append(_CLOSE)
            self._wake.set()
            self._closing = True

    async def session_valid(self) -> bool:
        """Re-read the account: a role change, suspension or logout ends the session now."""
        async with self.services.pool.acquire() as c:
            row = await c.fetchrow(SESSION_SQL, self.id, self.claims.token_id)
        return session_problem(row, self.claims) is None

    def send(self, message: dict[str, Any]) -> None:
        self.deliver(_encode(message).decode())

    async def _write(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._out:
                    item = self._out.popleft()
                    if item is _CLOSE:
                        await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"session ended: log in again")
                        return
                    await self.ws.send_str(item)
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass

    # subscriptions
    async def listen(self, channel: str) -> None:
        if channel not in self.channels:
            self.channels.add(channel)
            await self.services.bus.listen(channel, self)

    async def unlisten(self, channel: str) -> None:
        if channel in self.channels:
            self.channels.discard(channel)
            await self.services.bus.unlisten(channel, self)

    def allow(self, type_: str) -> bool:
        b = self._buckets.get(type_)
        if b is None:
            b = self._buckets[type_] = Bucket(*RATE_LIMITS.get(type_, DEFAULT_RATE))
        return b.take()


class Admission:
    """Admission control: a node works on at most `limit` commands at once, and past `max_waiting`
    commands waiting for a slot it answers `unavailable` at once instead of queueing without bound.

    Under a surge beyond capacity, work already admitted finishes instead of every request slowing
    down together until clients time out; a client told `unavailable` retries (a help.request with
    the same request_id, so nothing is done twice) or is sent by its page to another node or to
    the emergency number.
    """

    def __init__(self, limit: int, max_waiting: int, metrics: Any = None) -> None:
        self.limit, self.max_waiting, self.metrics = limit, max_waiting, metrics
        self.running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def __aenter__(self) -> None:
        if self.running < self.limit and not self._waiters:
            self.running += 1
            return
        if len(self._waiters) >= self.max_waiting:
            if self.metrics is not None:
                self.metrics.shed.inc()
            raise Unavailable("this node is overloaded; retry in a moment")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut                # a finishing command hands its slot over (running stays the same)
        except BaseException:
            if fut.done() and not fut.cancelled():
                self._release()      # the slot was handed to us just as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            raise

    async def __aexit__(self, *exc: Any) -> None:
        self._release()

    def _release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.running -= 1


class Hub:
    """This node's live connections, by account."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.by_account: dict[str, set[Connection]] = {}
        self.count = 0

    def add(self, conn: Connection) -> None:
        self.count += 1
        self.by_account.setdefault(conn.id, set()).add(conn)
        self.services.metrics.connections.labels(role=conn.role).inc()

    def remove(self, conn: Connection) -> bool:
        """True if that was the account's last connection on this node."""
        group = self.by_account.get(conn.id, set())
        if conn in group:
            self.count -= 1
        group.discard(conn)
        self.services.metrics.connections.labels(role=conn.role).dec()
        if not group:
            self.by_account.pop(conn.id, None)
            return True
        return False

    def all(self) -> list[Connection]:
        return [c for group in self.by_account.values() for c in group]

    async def resync(self) -> None:
        """After a Redis outage: send every client its current state again (pushes may have been lost)."""
        from handlers import help as help_handlers

        for conn in self.all():
            with contextlib.suppress(Exception):
                await help_handlers.resync(conn)
        for hook in self.services.extras.get("resync_hooks", []):
            for conn in self.all():
                with contextlib.suppress(Exception):
                    await hook(conn)

    async def refresh_presence(self) -> None:
        ids = [i for i, group in self.by_account.items() if any(c.role == "responder" for c in group)]
        if not ids:
            return
        async with self.services.redis.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.set(self.services.keys.online(i), "1", ex=60)
            await pipe.execute()


def _origin_ok(request: web.Request, services: Services) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser
    allowed = {o.strip().rstrip("/") for o in services.cfg.server.allowed_origins.split(",") if o.strip()}
    same = f"{request.scheme}://{request.host}"
    return origin.rstrip("/") in allowed | {same, services.cfg.server.public_url.rstrip("/")}


SESSION_SQL = ("SELECT a.*, EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $2) AS revoked"
               " FROM accounts a WHERE a.id = $1")


def session_problem(row: Any, claims: Any) -> str | None:
    """Why this account row no longer accepts these token claims, or None if it does."""
    if row is None or row["disabled"]:
        return "account not found or disabled"
    if row["revoked"]:
        return "token revoked (logged out)"
    if row["role"] != claims.role or row["session_epoch"] != claims.epoch:
        return "session ended: log in again"
    return None


async def authenticate(services: Services, token: str) -> tuple[dict[str, Any], Any]:
    """The token's account (as sent in welcome) and claims; Unauthorized if it may not be used."""
    from infra import accounts

    claims = services.tokens.decode(token)
    async with services.pool.acquire() as conn:
        row = await conn.fetchrow(SESSION_SQL, claims.account_id, claims.token_id)
    problem = session_problem(row, claims)
    if problem:
        raise Unauthorized(problem)
    return accounts.account_view(row), claims


async def ws_handler(request: web.Request) -> web.StreamResponse:
    services: Services = request.app[SERVICES]
    if not _origin_ok(request, services):
        raise web.HTTPForbidden(text='{"error":{"code":"forbidden","message":"origin not allowed"}}',
                                content_type="application/json")
    if services.hub.count >= services.cfg.server.max_connections_per_node:
        raise web.HTTPServiceUnavailable(
            text='{"error":{"code":"unavailable","message":"this node is full; try another"}}',
            content_type="application/json", headers={"Retry-After": "5"})
    # no permessage-deflate: it costs ~100 KiB per idle connection and a tenth of the CPU for frames
    # of a few hundred bytes
    ws = web.WebSocketResponse(max_msg_size=MAX_FRAME, heartbeat=25, autoping=True, compress=False)
    await ws.prepare(request)
    try:
        msg = await ws.receive(timeout=HELLO_TIMEOUT_S)
    except asyncio.TimeoutError:
        await ws.close(code=CLOSE_UNAUTHORIZED, message=b"no hello")
        return ws
    if msg.type != WSMsgType.TEXT:
        await ws.close(code=CLOSE_UNAUTHORIZED, message=b"expected hello")
        return ws
    try:
        hello = _hello.decode(msg.data)
        if hello.type != "hello":
            raise Unauthorized("first frame must be hello")
        account, claims = await authenticate(services, hello.token)
    except (msgspec.DecodeError, HelplineError) as e:
        reason = e.message if isinstance(e, HelplineError) else "bad hello"
        await ws.close(code=CLOSE_UNAUTHORIZED, message=reason.encode()[:120])
        return ws
    except Exception:
        log.exception("hello failed")
        await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"unavailable")
        return ws

    conn = Connection(services, ws, account, claims)
    hub: Hub = services.hub
    hub.add(conn)
    try:
        from handlers import help as help_handlers

        await conn.listen(services.keys.account_channel(conn.id))
        if conn.role == "responder":   # presence only matters for who can be offered incidents
            with contextlib.suppress(Exception):
                key = services.keys.online(conn.id)
                await services.bus.batch.run(lambda pipe: pipe.set(key, "1", ex=60), 1)
        # listening already: what changes from here on arrives as a push; now read the state
        parts = await asyncio.gather(help_handlers.welcome_state(conn),
                                     *(hook(conn) for hook in services.extras.get("welcome_hooks", [])))
        welcome = {"type": "welcome", "account": account}
        for part in parts:
            welcome.update(part)
        welcome["server_time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        await ws.send_str(_encode(welcome).decode())
        conn.writer = asyncio.create_task(conn._write())
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await handle_frame(conn, msg.data)
            elif msg.type == WSMsgType.BINARY:
                conn.send({"type": "error", "ref": None, "code": "bad_request", "message": "text frames only"})
            elif msg.type == WSMsgType.ERROR:
                break
    except Exception:
        log.exception("connection %s failed", conn.id)
    finally:
        conn._closing = True
        if conn.writer:
            conn.writer.cancel()
        for ch in list(conn.channels):
            with contextlib.suppress(Exception):
                await conn.unlisten(ch)
        for hook in services.extras.get("close_hooks", []):
            try:
                await hook(conn)
            except Exception:
                log.exception("close hook failed for %s", conn.id)
        last = hub.remove(conn)
        if last:
            await _gone(conn)
    return ws


async def _gone(conn: Connection) -> None:
    services = conn.services
    if conn.role == "responder":
        with contextlib.suppress(Exception):
            await services.redis.delete(services.keys.online(conn.id))
        try:
            await services.dispatch.responder_gone(conn.id)
        except Exception:
            log.exception("moving on the offer of disconnected responder %s", conn.id)


async def handle_frame(conn: Connection, data: str) -> None:
    services = conn.services
    ref = None
    type_ = "-"
    try:
        try:
            env = _envelope.decode(data)
        except msgspec.DecodeError as e:
            raise BadRequest(f"not a valid frame: {e}") from None
        ref = env.ref
        if env.ref is None:
            raise BadRequest("every command needs a ref")
        cmd = COMMANDS.get(env.type)
        if cmd is not None:
            type_ = env.type
        if cmd is None:
            raise BadRequest(f"unknown type {env.type!r}")
        if conn.role not in cmd.roles:
            raise Forbidden(f"{env.type} is not for a {conn.role}")
        if conn.role != "resident" and env.type not in UNPRIVILEGED and not await conn.session_valid():
            conn.send({"type": "error", "ref": ref, "code": "unauthorized", "message": "session ended: log in again"})
            conn.end_session()
            return
        try:
            msg = cmd.decoder.decode(data)
        except msgspec.ValidationError as e:
            raise BadRequest(str(e)) from None
        if not conn.allow(env.type):
            raise RateLimited(f"too many {env.type}; slow down")
        limit = None if env.type in ratelimit.COUNTED_BY_SERVICE else ratelimit.ACCOUNT_LIMITS.get(env.type)
        if limit and not await ratelimit.allow(services.bus.batch, services.keys.rate(env.type, conn.id), *limit):
            raise RateLimited(f"too many {env.type} from this account; wait a few minutes")
        t0 = time.perf_counter()
        if env.type in UNPRIVILEGED:            # ping and location updates: cheap, never held back
            result = await cmd.fn(conn, msg)
        else:
            async with services.admission:
                result = await cmd.fn(conn, msg)
        services.metrics.command_seconds.labels(type=env.type).observe(time.perf_counter() - t0)
        services.metrics.commands.labels(type=env.type, result="ok").inc()
        conn.send({"type": "ok", "ref": ref, **(result or {})})
    except HelplineError as e:
        services.metrics.commands.labels(type=type_, result=e.code).inc()
        conn.send({"type": "error", "ref": ref, "code": e.code, "message": e.message})
    except (OSError, ConnectionError, asyncio.TimeoutError) as e:
        log.warning("command failed, service unavailable: %s", e)
        conn.send({"type": "error", "ref": ref, "code": Unavailable.code, "message": "service unavailable; retry"})
    except Exception as e:
        if _is_infra_error(e):
            log.warning("command failed, backing store unavailable: %s", e)
            conn.send({"type": "error", "ref": ref, "code": "unavailable", "message": "service unavailable; retry"})
        else:
            log.exception("command %s failed", ref)
            conn.send({"type": "error", "ref": ref, "code": "unavailable", "message": "internal error"})


def _is_infra_error(e: Exception) -> bool:
    import asyncpg
    from redis.exceptions import RedisError

    return isinstance(e, (asyncpg.PostgresConnectionStatusError, asyncpg.InterfaceError,
                          asyncpg.CannotConnectNowError, RedisError))
