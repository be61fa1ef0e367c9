"""The durable SMS outbox: every text is a row of `sms_outbox`, and a worker on every node sends them.

Writers (`SmsOutbox.enqueue`, the `infra.texts.TextQueue` port) insert the row inside their own
transaction: the text exists exactly when the change that causes it commits. The worker claims
due rows (`FOR UPDATE SKIP LOCKED` and a lease), sends them and records the provider's sid. A
send is retried, with backoff, only where a retry cannot duplicate the text: HTTP 429 and a
connection that never opened. A 5xx answer, a timeout or a dropped connection after the request
went out, and a node lost mid-send are marked `failed` (logged, never resent). Error 21610 (the
number texted STOP to Twilio) marks the number opted out. A node that dies with texts claimed
leaves them to another node once the lease runs out; texts still pending are simply sent by
whichever node is alive.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from infra import db
from infra.accounts import normalise_phone
from infra.config import Config
from infra.db import Conn
from infra.formats import mask_phone
from infra.metrics import Metrics
from infra.texts import Template
from sms.contacts import set_opted_out
from sms.gateway import Gateway, NotSent, ProviderError
from sms.texts import MAX_BODY, as_text

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 300.0
LEASE_S = 60.0           # longer than the gateway's HTTP timeout: a live sender never loses its lease
OPTED_OUT = 21610
# the hourly budget (sms.hourly_budget, cluster-wide): these always go; the rest wait past it
CRITICAL_KINDS = frozenset({"status", "otp", "reply", "offer", "call", "supervisor"})
CALL = "call"            # a row that is a phone call (its body the TwiML), placed by the call worker
OFFER_KINDS = frozenset({"offer", CALL})
HOLD_RETRY_S = 60.0      # a held text looks again this much later
HOLD_MAX_S = 86400.0     # a text held back this long is dropped (expired)
# PostgreSQL delivers a NOTIFY when (and only if) the transaction that queued the row commits, to every node
NOTIFY_CHANNEL = "helpline_sms_outbox"
LISTEN_RETRY_S = (0.5, 30.0)   # reconnecting the listening connection: first and longest wait

_CLAIM = """
WITH due AS (
    SELECT id FROM sms_outbox
    WHERE ((status = 'pending' AND due_at <= now()) OR (status = 'claimed' AND lease_until < now()))
      AND (kind = 'call') = $4
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


class SmsOutbox:
    """The outbox: `enqueue` (the TextQueue port both domains write through) and its two workers: texts,
    and phone calls (kind "call"), so that a slow call never holds a text back; each call is placed in a
    task of its own, so that it does not hold other calls back either."""

    def __init__(self, cfg: Config, pool: asyncpg.Pool, gateway: Gateway, metrics: Metrics | None = None,
                 listen_dsn: str | None = None) -> None:
        self.cfg, self.pool, self.gateway = cfg, pool, gateway
        self.metrics = metrics
        # with a DSN the workers are woken at commit (LISTEN on a connection of their own); without one, or
        # while that connection is down, by timers after each enqueue and the poll
        self.listen_dsn = listen_dsn
        self._listener: asyncpg.Connection | None = None
        self._listen_task: asyncio.Task[None] | None = None
        self.node_id = uuid.uuid4().hex
        self.poll_s = 1.0
        self.batch = 20
        self._wake = asyncio.Event()
        self._wake_calls = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._calls_task: asyncio.Task[None] | None = None
        self._calling: set[asyncio.Task[float | None]] = set()
        # whether an offer is still pending (set by the composition root): a text or call about an offer that
        # has ended (answered, moved on, withdrawn) is never sent
        self.offer_open: Callable[[str], Awaitable[bool]] | None = None

    # -- writing
    async def send(self, to: str, body: str) -> int | None:
        """Queue a text on its own (no change to go with it); never raises (a failure is logged)."""
        if not body.strip():
            return None
        try:
            async with self.pool.acquire() as conn:
                return await self.enqueue(conn, normalise_phone(to), body)
        except Exception as e:
            log.warning("SMS to %s not queued: %s", mask_phone(str(to)), e)
            return None

    async def enqueue(self, conn: Conn, to: str, body: str | Template, *, kind: str = "notice",
                      incident_id: str | None = None, case_id: str | None = None,
                      ttl_s: float | None = None, offer_id: str | None = None) -> int:
        """Queue a text (or, kind "call", a call) inside the caller's transaction (it goes out once that
        commits). About an offer: one of each kind per offer (a second is the first's id)."""
        text = as_text(body).strip()
        text = text if kind == CALL else text[:MAX_BODY]
        oid = await conn.fetchval(
            "WITH ins AS (INSERT INTO sms_outbox (to_phone, body, kind, incident_id, case_id, offer_id, expires_at)"
            " VALUES ($1, $2, $3, $4, $5, $7, CASE WHEN $6::float8 IS NULL THEN NULL"
            " ELSE now() + make_interval(secs => $6::float8) END)"
            " ON CONFLICT (offer_id, kind) WHERE offer_id IS NOT NULL DO NOTHING RETURNING id, kind)"
            f" SELECT id, pg_notify('{NOTIFY_CHANNEL}', kind) FROM ins",
            to, text, kind, incident_id, case_id, ttl_s, offer_id)
        if oid is None:
            oid = await conn.fetchval("SELECT id FROM sms_outbox WHERE offer_id = $1 AND kind = $2", offer_id, kind)
        if self._listener is None:
            self.wake_soon()
        return int(oid)

    def wake_soon(self) -> None:
        """Wake the worker shortly after the current transaction has (most likely) committed: what wakes it
        while it is not listening for the commit itself."""
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_running_loop()
            for wake in (self._wake, self._wake_calls):
                loop.call_later(0.05, wake.set)
                loop.call_later(0.3, wake.set)     # a slow commit: the poll is the last resort

    # -- the workers
    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="sms-worker")
        self._calls_task = asyncio.create_task(self.run(calls=True), name="call-worker")
        if self.listen_dsn:
            self._listen_task = asyncio.create_task(self._listen(self.listen_dsn), name="sms-listen")

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        (self._wake_calls if payload == CALL else self._wake).set()

    async def _listen(self, dsn: str) -> None:
        """LISTEN on a connection of its own: a transaction that queued a text (on any node) wakes the workers
        as it commits. A lost connection is opened again (the timers and the poll wake them meanwhile)."""
        wait = LISTEN_RETRY_S[0]
        while not self._stopping:
            lost = asyncio.Event()
            try:
                # the host that takes writes now (after a failover, the promoted standby): a standby's LISTEN
                # would never hear the primary's commits
                conn = await db.connect_plain(dsn)
            except (OSError, asyncpg.PostgresError, TimeoutError, db.DatabaseUnavailable) as e:
                log.warning("SMS outbox: cannot listen for commits (%s); retrying in %.1fs", e, wait)
                await asyncio.sleep(wait)
                wait = min(LISTEN_RETRY_S[1], wait * 2)
                continue
            try:
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(NOTIFY_CHANNEL, self._notified)
                self._listener = conn
                wait = LISTEN_RETRY_S[0]
                self._wake.set()          # whatever was committed while nobody listened
                self._wake_calls.set()
                await lost.wait()
                log.warning("SMS outbox: the connection listening for commits was lost; opening another")
            except (OSError, asyncpg.PostgresError) as e:
                log.warning("SMS outbox: listening for commits failed: %s", e)
                await asyncio.sleep(wait)
            finally:
                self._listener = None
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)

    async def stop(self, grace_s: float = 5.0) -> None:
        """Let a send in flight finish (so it is recorded), then stop."""
        self._stopping = True
        self._wake.set()
        self._wake_calls.set()
        if self._listen_task is not None:
            self._listen_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listen_task
        tasks = [t for t in (self._task, self._calls_task, *self._calling) if t is not None]
        if tasks:
            _, pending = await asyncio.wait([asyncio.ensure_future(asyncio.shield(t)) for t in tasks],
                                            timeout=grace_s)
            for t in tasks:
                if not t.done():
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await t
        await self.gateway.close()

    async def run(self, calls: bool = False) -> None:
        wake = self._wake_calls if calls else self._wake
        while not self._stopping:
            try:
                next_in = await self.work_once(calls)
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
                    await asyncio.wait_for(wake.wait(), wait)
            wake.clear()

    async def work_once(self, calls: bool = False) -> float | None:
        """Send what is due (texts, or calls). Returns when to look again: 0 if the batch was full, the
        earliest retry, or None. Calls are placed in tasks of their own and not waited for."""
        room = self.batch - len(self._calling) if calls else self.batch
        if room <= 0:
            return None
        async with self.pool.acquire() as conn:
            if not calls:
                lost = await conn.execute(
                    "UPDATE sms_outbox SET status = 'failed', error = 'outcome unknown: the sending node was lost',"
                    " updated_at = now() WHERE status = 'sending' AND lease_until < now()")
                if lost != "UPDATE 0":
                    log.warning("SMS outbox: %s texts whose sender vanished mid-send marked failed",
                                lost.split()[-1])
                    if self.metrics is not None:
                        self.metrics.sms.labels(result="failed").inc(int(lost.split()[-1]))
            rows = await conn.fetch(_CLAIM, room, self.node_id, LEASE_S, calls)
            if rows:
                rows = await self._within_budget(conn, rows)
        if not rows:
            return None
        if calls:
            for r in rows:
                task = asyncio.create_task(self._deliver(r), name="call")
                self._calling.add(task)
                task.add_done_callback(self._call_done)
            return None
        retries = await asyncio.gather(*(self._deliver(r) for r in rows))
        if len(rows) >= self.batch:
            return 0.0
        pending = [r for r in retries if r is not None]
        return min(pending) if pending else None

    def _call_done(self, task: asyncio.Task[float | None]) -> None:
        self._calling.discard(task)
        if task.done() and not task.cancelled() and task.result() is not None:
            self._wake_calls.set()     # a retry is due later: the poll picks it up

    async def _within_budget(self, conn: Conn, rows: list[asyncpg.Record]) -> list[asyncpg.Record]:
        """The claimed texts that may go now: critical ones always, the rest while the hour's budget lasts.
        The others go back to pending for HOLD_RETRY_S (dropped as expired after HOLD_MAX_S)."""
        sent = int(await conn.fetchval("SELECT count(*) FROM sms_outbox WHERE sent_at > now() - interval '1 hour'"
                                       " OR status = 'sending'"))
        room = self.cfg.sms.hourly_budget - sent
        go, held = [], []
        for r in rows:
            if r["kind"] in CRITICAL_KINDS or room > 0:
                go.append(r)
                room -= 1
            else:
                held.append(r)
        if held:
            await conn.execute(
                "UPDATE sms_outbox SET status = CASE WHEN created_at < now() - make_interval(secs => $3)"
                " THEN 'expired' ELSE 'pending' END, lease_owner = NULL, lease_until = NULL,"
                " due_at = now() + make_interval(secs => $2), error = 'waiting: the hourly SMS budget is spent',"
                " updated_at = now() WHERE id = ANY($1::bigint[])", [r["id"] for r in held], HOLD_RETRY_S, HOLD_MAX_S)
            log.warning("SMS outbox: hourly budget of %d spent; %d texts wait", self.cfg.sms.hourly_budget, len(held))
        if self.metrics is not None:
            self.metrics.sms_sent_last_hour.set(sent)
            self.metrics.sms_over_budget.set(1 if room <= 0 else 0)
            for r in held:
                self.metrics.sms_held.labels(kind=r["kind"]).inc()
        return go

    async def _deliver(self, row: asyncpg.Record) -> float | None:
        """One text; returns the retry delay if it was rescheduled."""
        oid = row["id"]
        try:
            if row["offer_id"] is not None and self.offer_open is not None \
                    and not await self.offer_open(str(row["offer_id"])):
                async with self.pool.acquire() as conn:
                    await conn.execute("UPDATE sms_outbox SET status = 'expired', error = 'the offer has ended',"
                                       " updated_at = now() WHERE id = $1 AND lease_owner = $2", oid, self.node_id)
                return None
            async with self.pool.acquire() as conn:
                started = await conn.fetchrow(_START, oid, self.node_id, LEASE_S)
            if started is None or started["status"] != "sending":
                return None
            callback = self.cfg.server.public_url.rstrip("/") + "/sms/status"
            try:
                if row["kind"] == CALL:
                    sent = await self.gateway.call(row["to_phone"], row["body"])
                else:
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
                took = await conn.fetchval(
                    "UPDATE sms_outbox SET status = 'sent', provider_sid = $2, delivery_status ="
                    " COALESCE(delivery_status, $3), sent_at = now(), updated_at = now(),"
                    " error = NULL WHERE id = $1 RETURNING extract(epoch FROM sent_at - created_at)",
                    oid, sent.sid, sent.status)
            if self.metrics is not None:
                self.metrics.sms.labels(result="sent").inc()
            if self.metrics is not None and row["kind"] in OFFER_KINDS and took is not None:
                self.metrics.offer_sms_seconds.labels(kind=row["kind"]).observe(float(took))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("SMS %s: bookkeeping failed: %s", oid, e)
        return None

    async def _retry_or_fail(self, oid: int, attempts: int, why: str) -> float | None:
        if attempts >= MAX_ATTEMPTS:
            await self._failed(oid, f"gave up after {attempts} attempts: {why}", None)
            return None
        delay = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0 ** (attempts - 1)) * (0.8 + 0.4 * random.random())
        async with self.pool.acquire() as conn:
            await conn.execute("UPDATE sms_outbox SET status = 'pending', lease_owner = NULL, lease_until = NULL,"
                               " due_at = now() + make_interval(secs => $2), error = $3, updated_at = now()"
                               " WHERE id = $1", oid, delay, why)
        log.info("SMS %s not sent (%s); retry %d in %.1fs", oid, why, attempts, delay)
        return delay

    async def _failed(self, oid: int, why: str, code: int | None, opted_out: str | None = None) -> None:
        log.warning("SMS %s failed: %s", oid, why)
        if self.metrics is not None:
            self.metrics.sms.labels(result="failed").inc()
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
