"""One client's WebSocket connection, and this node's connections by account (the Hub).

Each connection has one outgoing queue drained by a writer task: answers and
pushes leave in the order they were queued, and a client that stops reading
is disconnected once its queue passes server.ws_max_queue instead of growing memory.

An idle connection holds as little as it can (issue 18: thousands of them per node):
the queue and its writer task exist only while there is something to send (the writer
ends when the queue is empty, the next frame starts a new one), rate-limit buckets
and filtered listeners are made on first use, an account's only connection is kept
without a set around it, and Connection has __slots__.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import socket
import sys
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import redis.asyncio as aioredis
from aiohttp import WSCloseCode, web

from handlers.context import POOL, TOKENS
from infra import accounts
from infra import sessions as live_sessions
from infra.auth import SESSION_ENDED_PREFIX, Claims
from infra.bus import Bus, Listener
from infra.config import Config
from infra.errors import Unauthorized
from infra.identity import Account
from infra.keys import Keys
from infra.metrics import Metrics
from infra.ratelimit import CONNECTION_BUCKETS, DEFAULT_BUCKET

log = logging.getLogger(__name__)

_CLOSE = object()   # queued after the last frame a connection gets before it is closed (1008)
_NO_INFO: dict[str, Any] = {}   # session_info of a connection not listed (shared: never written to)
_encode = msgspec.json.Encoder().encode     # answers and pushes: compact JSON, a few times faster than json

SESSION_SQL = ("SELECT a.*, EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $2) AS revoked,"
               f" {accounts.GRIDS_COLUMN} FROM accounts a WHERE a.id = $1")

RECHECK_BATCH = 500      # sessions re-read per query by Hub.recheck_sessions
# every (account, token) of a batch of a node's sessions: the account as it is now and whether the token was revoked
RECHECK_SQL = ("SELECT t.account_id::text AS account_id, t.jti, a.id, a.role, a.disabled, a.session_epoch,"
               " r.jti IS NOT NULL AS revoked"
               " FROM unnest($1::uuid[], $2::text[]) AS t(account_id, jti)"
               " LEFT JOIN accounts a ON a.id = t.account_id LEFT JOIN revoked_tokens r ON r.jti = t.jti")


def session_problem(row: asyncpg.Record | None, claims: Claims) -> str | None:
    """Why this account row no longer accepts these token claims, or None if it does."""
    if row is None or row["disabled"]:
        return "account not found or disabled"
    if row["revoked"]:
        return "token revoked (logged out)"
    if row["role"] != claims.role or row["session_epoch"] != claims.epoch:
        return "session ended: log in again"
    return None


async def authenticate(app: web.Application, token: str) -> tuple[dict[str, Any], Claims]:
    """The token's account (as sent in welcome) and claims; Unauthorized if it may not be used."""
    claims = app[TOKENS].decode(token)
    async with app[POOL].acquire() as conn:
        row = await conn.fetchrow(SESSION_SQL, claims.account_id, claims.token_id)
    problem = session_problem(row, claims)
    if problem:
        raise Unauthorized(problem)
    assert row is not None
    view = accounts.account_view(row)
    # one copy of each string a connection keeps (an idle socket's bytes, issue 18): the account id as the
    # token has it (the same value: the row was read by it), the role interned (the same few for everyone)
    role = sys.intern(claims.role)
    claims = dataclasses.replace(claims, role=role)
    if view["id"] == claims.account_id:
        view["id"] = claims.account_id
    if view["role"] == role:
        view["role"] = role
    return view, claims


class Bucket:
    """A per-connection token bucket: `burst` at once, refilled at `rate` per second."""

    __slots__ = ("burst", "rate", "tokens", "at")

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


class Hub:
    """This node's live connections, by account, and what every connection needs of the node."""

    def __init__(self, app: web.Application, cfg: Config, pool: asyncpg.Pool, redis: aioredis.Redis,
                 bus: Bus, keys: Keys, metrics: Metrics) -> None:
        self.app, self.cfg, self.pool, self.redis = app, cfg, pool, redis
        self.bus, self.keys, self.metrics = bus, keys, metrics
        # an account's connection on this node, or a set of them when it has more than one (most have one:
        # a set per connection would cost an idle connection another 216 bytes)
        self.by_account: dict[str, Connection | set[Connection]] = {}
        self.count = 0
        self.pending = 0        # upgraded sockets still waiting for their hello (they hold descriptors too)
        # WebSockets this node takes, both kinds: server.max_connections_per_node, lowered by `serve` to leave
        # room for plain HTTP under its TCP cap (handlers/transport.py socket_cap)
        self.max_sockets = cfg.server.max_connections_per_node
        # staff sessions, listed on /admin across the cluster (infra/sessions.py)
        self.sessions = live_sessions.LiveSessions(
            redis, keys, f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}")

    def add(self, conn: Connection) -> None:
        self.count += 1
        got = self.by_account.get(conn.id)
        if got is None:
            self.by_account[conn.id] = conn
        elif isinstance(got, set):
            got.add(conn)
        elif got is not conn:
            self.by_account[conn.id] = {got, conn}
        self.metrics.connections.labels(role=conn.role).inc()

    def remove(self, conn: Connection) -> bool:
        """True if that was the account's last connection on this node."""
        got = self.by_account.get(conn.id)
        self.metrics.connections.labels(role=conn.role).dec()
        if got is conn:
            self.count -= 1
            del self.by_account[conn.id]
            return True
        if isinstance(got, set):
            if conn in got:
                self.count -= 1
                got.discard(conn)
            if len(got) == 1:
                self.by_account[conn.id] = next(iter(got))
            elif not got:       # never left empty; kept for safety
                del self.by_account[conn.id]
                return True
            return False
        return got is None

    def of_account(self, account_id: str) -> tuple[Connection, ...]:
        """The account's connections on this node."""
        got = self.by_account.get(account_id)
        if got is None:
            return ()
        return tuple(got) if isinstance(got, set) else (got,)

    def all(self) -> list[Connection]:
        out: list[Connection] = []
        for got in self.by_account.values():
            if isinstance(got, set):
                out.extend(got)
            else:
                out.append(got)
        return out

    async def recheck_sessions(self) -> int:
        """Close (1008) every connection whose account lost the right to its session, read from PostgreSQL.

        The Redis announcement (`helpline user set`, logout) closes them at once when it arrives;
        this is what holds when it does not (embedded default, Redis unreachable, a change made
        in the database by hand). One query per RECHECK_BATCH sessions of the node (the rows of all ten
        thousand at once were a peak of ~0.4 KiB per connection that the process kept: issue 18). Returns
        how many closed.
        """
        conns = [c for c in self.all() if not c.closed]
        closed = 0
        for i in range(0, len(conns), RECHECK_BATCH):
            part = conns[i:i + RECHECK_BATCH]
            pairs = {(c.id, c.claims.token_id) for c in part}
            async with self.pool.acquire() as db:
                rows = await db.fetch(RECHECK_SQL, [p[0] for p in pairs], [p[1] for p in pairs])
            found = {(r["account_id"], r["jti"]): r for r in rows}
            for c in part:
                if c.closed:
                    continue
                row = found.get((c.id, c.claims.token_id))
                problem = session_problem(row if row is not None and row["id"] is not None else None, c.claims)
                if problem:
                    log.info("closing session of %s (%s): %s", c.id, c.role, problem)
                    c.end_session()
                    closed += 1
        return closed

    async def session_opened(self, conn: Connection, user_agent: str) -> None:
        """List a staff connection among its account's live sessions (infra/sessions.py)."""
        if not live_sessions.tracked(conn.role):
            return
        conn.session_id = self.sessions.new_id()
        since = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        conn.session_info = {"since": since, "address": conn.remote,
                             "user_agent": user_agent[:200], "token_id": conn.claims.token_id,
                             "token_expires": conn.claims.expires_at}
        if self.bus.connected:      # else the refresh lists it once Redis is back (never a wait on a dead Redis)
            await self.sessions.opened(conn.id, conn.session_id, conn.session_info)

    async def session_closed(self, conn: Connection) -> None:
        if conn.session_id is not None and self.bus.connected:
            await self.sessions.closed(conn.id, conn.session_id)

    async def refresh_sessions(self) -> None:
        """Every listed session of this node seen now (the presence worker, every infra/sessions.py REFRESH_S)."""
        if self.bus.connected:
            await self.sessions.refresh([(c.id, c.session_id, c.session_info) for c in self.all()
                                         if c.session_id is not None and not c.closed])

    async def refresh_presence(self) -> None:
        """Responders connected here are online (a key with a TTL, refreshed by the presence worker).

        Not while this node's pub/sub connection is down (e.g. Redis just restarted and the sweeper
        rebuilt the live index before the bus reconnected): an offer's push could not reach them and
        would wait for the resync; the bus's resync refreshes presence once pushes flow again."""
        ids = [i for i, got in self.by_account.items()
               if any(c.role == "responder" for c in (got if isinstance(got, set) else (got,)))]
        if not ids or not self.bus.connected:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.set(self.keys.online(i), "1", ex=60)
            await pipe.execute()


class Connection:
    """One authenticated client. Command handlers see it as `ctx`; feeds as an infra.bus.Peer."""

    __slots__ = ("hub", "ws", "account", "claims", "remote", "session_id", "session_info", "app", "id", "role",
                 "_channel", "_more", "state", "_out", "_closing", "_buckets", "writer", "_writing", "_closer",
                 "__weakref__")

    def __init__(self, hub: Hub, ws: web.WebSocketResponse, account: dict[str, Any], claims: Claims,
                 remote: str = "-") -> None:
        self.hub, self.ws, self.account, self.claims = hub, ws, account, claims
        self.remote = remote                       # the client's address, for limits per address
        self.session_id: str | None = None          # as listed among the account's live sessions (staff only)
        self.session_info: dict[str, Any] = _NO_INFO    # its listing (staff only: set by Hub.session_opened)
        self.app = hub.app
        self.id: str = account["id"]
        self.role: str = account["role"]
        self._channel: str | None = None                 # a channel heard directly (see listen)
        self._more: dict[str, Listener] | None = None    # the other channels heard, and by what
        self.state: dict[str, Any] = {}            # per-connection data of feeds and commands
        self._out: deque[Any] | None = None        # frames waiting for the writer (None: none)
        self._closing = False
        self._buckets: dict[str, Bucket] | None = None
        self.writer: asyncio.Task[None] | None = None     # while frames are waiting: the task writing them
        self._writing = False                       # frames may go out (after the welcome): start_writing
        self._closer: asyncio.Task[bool] | None = None

    @property
    def who(self) -> Account:
        """The signed-in account, as the domains take it."""
        return Account(self.id, self.role, self.account.get("name") or "")

    @property
    def closed(self) -> bool:
        return self._closing or self.ws.closed

    @property
    def queued(self) -> int:
        """Frames waiting for the writer."""
        return len(self._out) if self._out is not None else 0

    # outgoing
    def deliver(self, payload: str) -> None:
        if self._closing:
            return
        if payload.startswith(SESSION_ENDED_PREFIX):
            self._session_ended(payload)
            return
        out = self._out
        if out is None:
            out = self._out = deque()
        elif len(out) >= self.hub.cfg.server.ws_max_queue:
            self._closing = True
            self.hub.metrics.slow_consumers.inc()
            log.warning("closing slow consumer %s (%d frames queued)", self.id, len(out))
            # kept until done: the loop holds only a weak reference to a task
            self._closer = asyncio.get_running_loop().create_task(
                self.ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"slow consumer"))
            return
        out.append(payload)
        if self.writer is None and self._writing:
            self.writer = asyncio.get_running_loop().create_task(self._write())

    def _session_ended(self, payload: str) -> None:
        """An admin changed the account, or this token logged out: close with 1008 (policy)."""
        jti = json.loads(payload).get("jti")
        if jti is None or jti == self.claims.token_id:
            self.end_session()

    def end_session(self) -> None:
        """Close with 1008 once what is already queued (e.g. the answer saying why) has been sent."""
        if not self._closing:
            if self._out is None:
                self._out = deque()
            self._out.append(_CLOSE)
            self._closing = True
            if self.writer is None and self._writing:
                self.writer = asyncio.get_running_loop().create_task(self._write())

    def mark_closing(self) -> None:
        """The read loop ended: deliver nothing more."""
        self._closing = True

    async def session_valid(self) -> bool:
        """Re-read the account: a role change, suspension or logout ends the session now."""
        async with self.hub.pool.acquire() as c:
            row = await c.fetchrow(live_sessions.CHECK_SQL, self.id, self.claims.token_id)
        return session_problem(row, self.claims) is None

    def send(self, message: dict[str, Any]) -> None:
        self.deliver(_encode(message).decode())

    def start_writing(self) -> None:
        """The welcome has gone out: from now on queued frames are written (those queued meanwhile first)."""
        self._writing = True
        if self._out and self.writer is None:
            self.writer = asyncio.get_running_loop().create_task(self._write())

    def stop_writing(self) -> None:
        """The connection ended: the writer, if one is running, stops."""
        self._writing = False
        if self.writer is not None:
            self.writer.cancel()

    async def _write(self) -> None:
        """Write the queued frames in order; ends when the queue is empty (the next frame starts another)."""
        out = self._out
        try:
            while out:
                item = out.popleft()
                if item is _CLOSE:
                    await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"session ended: log in again")
                    return
                await self.ws.send_str(item)
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            # the socket is gone: nothing more can be written to it (the read loop ends the connection)
            self._closing = True
        finally:
            self.writer = None
            if out is self._out and not out:
                self._out = None       # an empty deque still holds a 500-byte block

    # subscriptions: the first channel heard directly (the account's own, for all but a few) in `_channel`,
    # any other in `_more` with what hears it (this connection, or a `via`) - no set and dict per connection
    @property
    def channels(self) -> list[str]:
        """The channels this connection hears (directly or through a `via`)."""
        return ([self._channel] if self._channel is not None else []) + list(self._more or ())

    def _heard_by(self, channel: str) -> Listener | None:
        if channel == self._channel:
            return self
        return self._more.get(channel) if self._more is not None else None

    async def listen(self, channel: str, via: Listener | None = None) -> None:
        """Hear `channel`, directly or through `via` (a listener that filters before passing on: a queue
        watched by grid). Listening again with another `via` replaces the old one without a gap."""
        new: Listener = via if via is not None else self
        old = self._heard_by(channel)
        if old is new:
            return
        if new is self and self._channel is None:
            self._channel = channel
            if self._more is not None:
                self._more.pop(channel, None)
        else:
            if channel == self._channel:
                self._channel = None
            if self._more is None:
                self._more = {}
            self._more[channel] = new
        await self.hub.bus.listen(channel, new)
        if old is not None:
            await self.hub.bus.unlisten(channel, old)

    async def unlisten(self, channel: str) -> None:
        if channel == self._channel:
            self._channel = None
            listener: Listener | None = self
        else:
            listener = self._more.pop(channel, None) if self._more is not None else None
        if listener is not None:
            await self.hub.bus.unlisten(channel, listener)

    def allow(self, type_: str) -> bool:
        if self._buckets is None:
            self._buckets = {}
        b = self._buckets.get(type_)
        if b is None:
            b = self._buckets[type_] = Bucket(*CONNECTION_BUCKETS.get(type_, DEFAULT_BUCKET))
        return b.take()
