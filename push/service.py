"""Web Push, carried out: subscriptions kept, notices sent, never in dispatch's way.

The composition root hands `observe` every batch of (channel, message) the dispatch service publishes
after a commit. `observe` is synchronous and cheap (rules.classify looks at a payload's first bytes);
a notice it finds goes into a bounded queue, and one worker per node takes it from there:

    notice --> queue (push.queue_size; full: dropped, counted) --> worker
               offer:       the responder's subscriptions, TTL = the offer's remaining seconds
               escalated,   once across the cluster (Redis SET NX on the escalation event or the
               priority1:   incident), then every dispatcher's subscriptions
           --> one task per notice, its POSTs at most push.max_in_flight at once per node, each within
               push.send_timeout_s; 404/410 drops the subscription

So a slow or failing push service holds up only its own POSTs: the dispatch service never waits for
any of this, and other notices go out beside the slow ones.

Most offers go to responders with no subscription at all, and most escalations find no dispatcher subscribed.
So each node keeps a note of which accounts hold a subscription (`Holders`: loaded from PostgreSQL at start,
reloaded every RELOAD_S and whenever the Redis bus subscribed anew; a subscription kept on any node rings a
doorbell on `Keys.push_subscribed_channel` that every node hears before the subscriber gets its 201). An offer to
an account the note does not name costs no query, and an escalated or priority-1 notice while no dispatcher or
admin is named costs no query and no Redis mark. The note may name accounts that hold none any more (only
reloads forget): that costs a query, as before. While the note may have missed a doorbell (the bus not
subscribed, or subscribed anew and not reloaded since), every notice queries, as before.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import msgspec
import redis.asyncio as aioredis
from pywebpush import WebPushException, webpush_async
from redis.exceptions import RedisError

from infra import ratelimit
from infra.bus import Bus
from infra.config import Config
from infra.errors import Forbidden, RateLimited
from infra.keys import Keys
from infra.metrics import Metrics
from push import rules, store, vapid
from push.rules import Notice, Subscription

log = logging.getLogger(__name__)
ROLES = frozenset({"responder", "dispatcher", "admin"})   # who may subscribe: who gets offers or alerts
ONCE_S = 86400           # how long "this was sent" is remembered (an incident is long settled by then)
_encode = msgspec.json.Encoder().encode
RELOAD_S = 60.0          # how often the note of who holds a subscription is read again from PostgreSQL (see above)


class Holders:
    """Which accounts hold a push subscription, and which of them watch the dispatch queue: never fewer than
    PostgreSQL has (a doorbell and a reload add; only a reload forgets), as of `generation` of the bus."""

    def __init__(self) -> None:
        self.accounts: set[str] = set()
        self.dispatch: set[str] = set()
        self.generation = -1          # the bus generation the last reload began in; -1: never loaded
        self._during: list[tuple[str, str]] | None = None   # added while a reload reads

    def add(self, account_id: str, role: str) -> None:
        self.accounts.add(account_id)
        if role in store.DISPATCH_ROLES:
            self.dispatch.add(account_id)
        if self._during is not None:
            self._during.append((account_id, role))

    def begin(self) -> None:
        self._during = []

    def replace(self, rows: list[tuple[str, str]], generation: int) -> None:
        """What PostgreSQL read, plus what was added while it read (committed after the read's snapshot)."""
        during, self._during = self._during or [], None
        self.accounts, self.dispatch = set(), set()
        for account_id, role in [*rows, *during]:
            self.add(account_id, role)
        self.generation = generation

    def abort(self) -> None:
        self._during = None


class PushService:
    def __init__(self, cfg: Config, pool: asyncpg.Pool, redis: aioredis.Redis, keys: Keys,
                 metrics: Metrics | None = None, bus: Bus | None = None) -> None:
        self.cfg, self.pool, self.redis, self.keys, self.metrics = cfg.push, pool, redis, keys, metrics
        self.bus = bus                  # None: no note of who holds a subscription; every notice queries
        self.holders = Holders()
        self._reloads: asyncio.Task[None] | None = None
        self._reload_lock = asyncio.Lock()
        self.hosts = tuple(h.strip().lower() for h in self.cfg.endpoint_hosts.split(",") if h.strip())
        self.keypair: vapid.Keypair | None = None
        self._queue: asyncio.Queue[Notice] = asyncio.Queue(self.cfg.queue_size)
        self._posts = asyncio.Semaphore(self.cfg.max_in_flight)
        self._sending: set[asyncio.Task[None]] = set()
        self._worker: asyncio.Task[None] | None = None
        # told of each offer a push service took (incident, offer, responder): the composition root logs it
        self.on_offer_pushed: Callable[[str, str, str], Awaitable[None]] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._account_prefix = keys.account_channel("")
        self._dispatch_channel = keys.dispatch_channel

    # ---------------------------------------------------------------- life
    async def start(self) -> None:
        """Load (or create, once for the cluster) the VAPID key; start the worker."""
        if self.cfg.vapid_private_key:
            key = vapid.parse(self.cfg.vapid_private_key)
        else:
            async with self.pool.acquire() as conn:
                key = vapid.parse(await store.vapid_key(conn, vapid.generate()))
        self.keypair = vapid.Keypair(key)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.cfg.send_timeout_s))
        if self.bus is not None:
            await self.bus.listen(self.keys.push_subscribed_channel, _Doorbell(self.holders))
            await self.reload()
            self._reloads = asyncio.create_task(self._reload_loop(), name="push-holders")
        self._worker = asyncio.create_task(self._run(), name="push-worker")

    async def stop(self) -> None:
        for t in [self._reloads, self._worker, *self._sending]:
            if t is not None:
                t.cancel()
        for t in [self._reloads, self._worker, *self._sending]:
            if t is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
        if self._session is not None:
            await self._session.close()

    @property
    def public_key(self) -> str:
        assert self.keypair is not None, "PushService.start() first"
        return self.keypair.public_key

    # ---------------------------------------------------------------- who holds a subscription
    async def reload(self) -> None:
        """Read again which accounts hold a subscription."""
        assert self.bus is not None
        async with self._reload_lock:
            generation = self.bus.generation if self.bus.connected else -1
            self.holders.begin()
            try:
                async with self.pool.acquire() as conn:
                    rows = await store.holders(conn)
            except Exception as e:
                self.holders.abort()
                log.warning("push: could not read who holds a subscription (every notice queries): %s", e)
                return
            self.holders.replace(rows, generation)

    async def _reload_loop(self) -> None:
        assert self.bus is not None
        last = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            if not self.bus.connected:
                continue
            if self.bus.generation != self.holders.generation or time.monotonic() - last >= RELOAD_S:
                last = time.monotonic()
                await self.reload()

    def _known(self) -> Holders | None:
        """The note, if it can have missed nothing since it was read; else None (query)."""
        bus = self.bus
        if bus is None or not bus.connected or bus.generation != self.holders.generation:
            return None
        return self.holders

    # ---------------------------------------------------------------- subscriptions
    async def subscribe(self, account: dict[str, Any], endpoint: str, p256dh: str, auth: str,
                        lang: str | None) -> Subscription:
        if account["role"] not in ROLES:
            raise Forbidden("push alerts are for responders and dispatchers")
        sub = rules.check_subscription(endpoint, p256dh, auth, lang, allow_http=self.cfg.allow_http_endpoints,
                                       hosts=self.hosts)
        limit, window = ratelimit.PUSH_SUBSCRIBES_PER_ACCOUNT
        if await ratelimit.count(self.redis, self.keys.rate("push-subscribe", account["id"]), window) > limit:
            raise RateLimited("too many push subscriptions from this account; try again later")
        async with self.pool.acquire() as conn:
            dropped = await store.save(conn, account["id"], sub)
        self._dropped("limit", len(dropped))
        if self.bus is not None:    # every node hears it (the publish waits for Redis) before the 201 goes
            self.holders.add(str(account["id"]), account["role"])
            await self.bus.publish(self.keys.push_subscribed_channel, f"{account['id']} {account['role']}")
        return sub

    async def unsubscribe(self, account_id: str, endpoint: str) -> None:
        async with self.pool.acquire() as conn:
            if await store.remove(conn, account_id, endpoint):
                self._dropped("unsubscribed")

    async def drop_account(self, account_id: str, reason: str) -> int:
        """Every subscription of the account goes (logout); how many."""
        async with self.pool.acquire() as conn:
            n = await store.remove_account(conn, account_id)
        self._dropped(reason, n)
        return n

    def _dropped(self, reason: str, n: int = 1) -> None:
        if self.metrics and n:
            self.metrics.push_dropped.labels(reason=reason).inc(n)

    # ---------------------------------------------------------------- notices
    def observe(self, items: list[tuple[str, str]]) -> None:
        """Look at what was just published (after its commit); queue what calls for a push. Never blocks."""
        for channel, payload in items:
            notice = rules.classify(channel, payload, self._account_prefix, self._dispatch_channel)
            if notice is None:
                continue
            try:
                self._queue.put_nowait(notice)
            except asyncio.QueueFull:
                log.warning("push queue full: %s for %s dropped", notice.kind, notice.ref_no)
                self._failed(notice.kind, "queue_full")

    def _failed(self, kind: str, reason: str) -> None:
        if self.metrics:
            self.metrics.push_failed.labels(kind=kind, reason=reason).inc()

    async def _run(self) -> None:
        while True:
            notice = await self._queue.get()
            try:
                await self._handle(notice)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("push of %s for %s failed", notice.kind, notice.ref_no)
                self._failed(notice.kind, "error")

    async def _handle(self, notice: Notice) -> None:
        ttl = rules.ttl(notice, datetime.now(UTC))
        if ttl <= 0:
            self._failed(notice.kind, "expired")
            return
        known = self._known()
        if notice.kind == "offer":
            assert notice.account_id is not None
            if known is not None and notice.account_id not in known.accounts:
                return                  # holds no subscription: nothing to look up
            async with self.pool.acquire() as conn:
                subs = await store.of_account(conn, notice.account_id)
        else:
            if known is not None and not known.dispatch:
                return                  # no dispatcher or admin holds a subscription: nobody to tell
            if not await self._first(notice):
                return
            async with self.pool.acquire() as conn:
                subs = await store.of_dispatchers(conn, notice.grid_path)
        if not subs:
            return
        if len(self._sending) >= self.cfg.queue_size:
            log.warning("push: %d notices still sending; %s for %s dropped", len(self._sending), notice.kind,
                        notice.ref_no)
            self._failed(notice.kind, "queue_full")
            return
        task = asyncio.create_task(self._send_all(notice, subs, ttl), name=f"push-{notice.kind}")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _first(self, notice: Notice) -> bool:
        """Whether this node is the one to tell the dispatchers (SET NX: once across the cluster, however
        many times the escalated or new incident is published). Redis down: yes (twice beats never)."""
        marks = [f"p1:{notice.incident_id}"]
        if notice.kind == "escalated":
            async with self.pool.acquire() as conn:
                event = await store.escalation_mark(conn, notice.incident_id)
            # each escalation of the incident is its own event; a P1 escalated at once needs no P1 notice too
            marks = [f"esc:{event}" if event is not None else f"esc:{notice.incident_id}", *marks]
        try:
            first = bool(await self.redis.set(self.keys.push_once(marks[0]), 1, nx=True, ex=ONCE_S))
            for extra in marks[1:]:
                await self.redis.set(self.keys.push_once(extra), 1, nx=True, ex=ONCE_S)
        except RedisError as e:
            log.warning("push: once-only mark unavailable, sending anyway: %s", e)
            return True
        return first

    async def _send_all(self, notice: Notice, subs: list[asyncpg.Record], ttl: int) -> None:
        sent = await asyncio.gather(*(self._send(notice, s, ttl) for s in subs), return_exceptions=True)
        if notice.kind == "offer" and any(ok is True for ok in sent):
            if self.metrics:
                self.metrics.offers_sent.labels(channel="push").inc()
            if self.on_offer_pushed is not None and notice.offer_id and notice.account_id:
                try:
                    await self.on_offer_pushed(notice.incident_id, notice.offer_id, notice.account_id)
                except Exception as e:   # the push went; only its line in the incident's log is missing
                    log.warning("push: could not log the offer sent by push: %s", e)

    async def _send(self, notice: Notice, sub: asyncpg.Record, ttl: int) -> bool:
        """POST one message; whether the push service took it."""
        assert self.keypair is not None and self._session is not None
        data = _encode(rules.message(notice, sub["lang"])).decode()
        info: dict[str, Any] = {"endpoint": sub["endpoint"], "keys": {"p256dh": sub["p256dh"], "auth": sub["auth"]}}
        async with self._posts:
            try:
                async with asyncio.timeout(self.cfg.send_timeout_s):
                    await webpush_async(info, data=data, vapid_private_key=self.keypair.signer,
                                        vapid_claims={"sub": self.cfg.vapid_subject}, ttl=ttl,
                                        headers={"Urgency": "high"}, aiohttp_session=self._session,
                                        timeout=self.cfg.send_timeout_s)
            except WebPushException as e:
                status = e.response.status if e.response is not None else 0
                if status in (404, 410):
                    async with self.pool.acquire() as conn:
                        if await store.remove_gone(conn, sub["endpoint"], sub["p256dh"]):
                            self._dropped("gone")
                    log.info("push subscription of %s gone (%d): dropped", sub["account_id"], status)
                    self._failed(notice.kind, "gone")
                else:
                    log.warning("push to %s: the push service answered %s", sub["account_id"], status or e)
                    self._failed(notice.kind, f"status_{status}" if status else "error")
                return False
            except TimeoutError:
                log.warning("push to %s: no answer within %s s", sub["account_id"], self.cfg.send_timeout_s)
                self._failed(notice.kind, "timeout")
                return False
            except (aiohttp.ClientError, OSError, ValueError) as e:
                log.warning("push to %s failed: %s", sub["account_id"], e)
                self._failed(notice.kind, "error")
                return False
        if self.metrics:
            self.metrics.push_sent.labels(kind=notice.kind).inc()
        return True


class _Doorbell:
    """A subscription was kept on some node: `account_id role`."""

    def __init__(self, holders: Holders) -> None:
        self.holders = holders

    def deliver(self, payload: str) -> None:
        account_id, _, role = payload.partition(" ")
        if account_id:
            self.holders.add(account_id, role)
