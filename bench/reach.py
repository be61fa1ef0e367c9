"""Offers that reach responders who are not looking at a page (issue 12), measured under press_to_offer's load.

`press_to_offer` uses this (`--offline N`, `--push N`): the node sends texts through the twilio library to
the Twilio stand-in (testkit.twilio.FakeTwilio) and Web Push through pywebpush to the push stand-in
(testkit.webpush.FakePushService, which checks the VAPID signature and decrypts each message), both in
the benchmark's process.

- `offline` more responders go on duty in the app with a phone and close it (a phone locked in a
  pocket): they are offered by SMS (and, for priority-1 incidents, by a call too). Each answers its text
  like a person: `1` (or `2`, with the run's decline probability) `--sms-answer` seconds after the text
  arrived, then `OTW`, `ARR`, `DONE` `--hold` seconds apart, all through the signed /sms/inbound webhook.
- `push` responders (drawn from all of them, on line and off) subscribe at the push stand-in through
  POST /api/push/subscribe: each offer to them is also sent by Web Push.

Measured, for the offers of the measured incidents (offer times are the offers' `created_at` in
PostgreSQL; arrival times are when the stand-in took the request; one clock, one machine):

    offer -> SMS handed to the provider    every offer to an off-line responder must get its text
    offer -> call placed                    priority-1 offers to off-line responders
    offer -> push received                  every offer to a subscribed responder must arrive

Target (issue 12): p99 <= 1 s for SMS and push, none lost.
"""
from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as aioredis

from infra.keys import Keys
from testkit.accounts import create_accounts, tokens_for
from testkit.client import close_all, connect_many, http
from testkit.nodes import NodeProcess
from testkit.runtime import log
from testkit.stack import BenchStack
from testkit.stats import ms
from testkit.twilio import TW_FROM, TW_SID, FakeTwilio, twilio_signature
from testkit.webpush import FakePushService, Subscriber

TARGET_S = 1.0
ACCEPTED = ("it is yours", "已派给您")


def pcts(values: list[float]) -> dict[str, float]:
    """n, p50, p90, p99, max (nearest rank), seconds."""
    xs = sorted(values)
    n = len(xs)
    if not n:
        return {"n": 0, "p50": math.nan, "p90": math.nan, "p99": math.nan, "max": math.nan}

    def rank(p: float) -> float:
        return xs[min(n - 1, max(0, math.ceil(p / 100 * n) - 1))]

    return {"n": n, "p50": rank(50), "p90": rank(90), "p99": rank(99), "max": xs[-1]}


def line(label: str, st: dict[str, float]) -> str:
    return (f"  {label:<34} n={st['n']:<5} p50 {ms(st['p50'])} ms  p90 {ms(st['p90'])} ms  "
            f"p99 {ms(st['p99'])} ms  max {ms(st['max'])} ms")


@dataclass
class SmsAnswers:
    texts: int = 0
    accepted: int = 0
    declined: int = 0
    ended: int = 0          # "this offer has ended": the answer came after the offer moved on
    resolved: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)


class Reach:
    def __init__(self, rng: random.Random, offline: int, push: int, decline_p: float, hold_s: float,
                 answer_s: float) -> None:
        self.rng, self.offline, self.push = rng, offline, push
        self.decline_p, self.hold_s, self.answer_s = decline_p, hold_s, answer_s
        self.twilio = FakeTwilio()
        self.pushsvc = FakePushService()
        self.epoch_of_monotonic = time.time() - time.monotonic()     # a stand-in's `at` -> seconds since 1970
        self.phones: dict[str, str] = {}          # phone -> off-line responder id
        self.offline_ids: list[str] = []
        self.subscribers: dict[str, Subscriber] = {}   # responder id -> its subscription
        self.answers = SmsAnswers()
        self._tasks: set[asyncio.Task[None]] = set()
        self._watch: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._inbound = ""

    @property
    def on(self) -> bool:
        return self.offline > 0 or self.push > 0

    async def start(self) -> Reach:
        await self.twilio.start()
        await self.pushsvc.start()
        return self

    def node_settings(self) -> dict[str, str]:
        """The node's settings: SMS through the Twilio stand-in; push endpoints on plain http allowed."""
        return {**self.twilio.config(), "push_allow_http_endpoints": "true"} if self.on else {}

    async def setup(self, stack: BenchStack, node: NodeProcess, online_ids: list[str],
                    places: list[tuple[float, float]]) -> None:
        """Off-line responders on duty with a phone (connected, duty.start, closed); push subscriptions."""
        conn = await stack.connect()
        try:
            self.offline_ids = await create_accounts(conn, "responder", self.offline, "reach", with_phone=True)
            rows = await conn.fetch("SELECT id::text AS id, phone FROM accounts WHERE id = ANY($1::uuid[])",
                                    self.offline_ids)
        finally:
            await conn.close()
        self.phones = {r["phone"]: r["id"] for r in rows}
        if self.offline_ids:
            clients, failed = await connect_many([node.ws_url], tokens_for(self.offline_ids, "responder"))
            if failed:
                raise RuntimeError(f"{failed} off-line responders could not connect")
            for c, (lat, lon) in zip(clients, places):
                assert c is not None
                await c.ok("duty.start", lat=lat, lon=lon)
            await close_all(clients)
            await self._until_gone(stack)
        everyone = self.offline_ids + online_ids
        chosen = self.rng.sample(everyone, min(self.push, len(everyone)))
        for rid, token in zip(chosen, tokens_for(chosen, "responder")):
            sub = self.pushsvc.subscriber()
            st, body = await http("POST", node.base + "/api/push/subscribe", token=token, json=sub.json("en"))
            if st != 201:
                raise RuntimeError(f"push subscription refused: {st} {body}")
            self.subscribers[rid] = sub
        self._inbound = node.base + "/sms/inbound"
        self._session = aiohttp.ClientSession()
        self._watch = asyncio.create_task(self._watch_texts())
        log(f"{len(self.offline_ids)} responders off line with a phone, {len(self.subscribers)} with a push "
            "subscription")

    async def _until_gone(self, stack: BenchStack, timeout: float = 15) -> None:
        """Wait until the node has seen every off-line responder's socket close (presence gone)."""
        keys = Keys(stack.prefix)
        r = aioredis.Redis.from_url(stack.redis_url)
        try:
            deadline = time.monotonic() + timeout
            while await r.exists(*(keys.online(i) for i in self.offline_ids)):
                if time.monotonic() > deadline:
                    raise RuntimeError("off-line responders still shown on line")
                await asyncio.sleep(0.1)
        finally:
            await r.aclose()

    # ------------------------------------------------------------------ the off-line responders' phones
    async def _watch_texts(self) -> None:
        seen = 0
        while True:
            while seen < len(self.twilio.sent):
                msg = self.twilio.sent[seen]
                seen += 1
                if msg.get("To") in self.phones:
                    self.answers.texts += 1
                    task = asyncio.create_task(self._answer(msg["To"]))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            await asyncio.sleep(0.02)

    async def _text_in(self, phone: str, body: str) -> str:
        assert self._session is not None
        params = {"AccountSid": TW_SID, "From": phone, "To": TW_FROM, "Body": body,
                  "MessageSid": "SM" + uuid.uuid4().hex, "NumMedia": "0", "SmsStatus": "received"}
        headers = {"X-Twilio-Signature": twilio_signature(self._inbound, params)}
        async with self._session.post(self._inbound, data=params, headers=headers) as r:
            text = await r.text()
            if r.status != 200:
                raise RuntimeError(f"/sms/inbound {body!r}: {r.status} {text[:100]}")
            return text

    async def _answer(self, phone: str) -> None:
        a = self.answers
        try:
            await asyncio.sleep(self.answer_s)
            if self.rng.random() < self.decline_p:
                await self._text_in(phone, "2")
                a.declined += 1
                return
            reply = await self._text_in(phone, "1")
            if not any(w in reply for w in ACCEPTED):
                a.ended += 1
                return
            a.accepted += 1
            for word in ("OTW", "ARR", "DONE"):
                await asyncio.sleep(self.hold_s)
                await self._text_in(phone, word)
            a.resolved += 1
        except Exception as e:
            a.errors += 1
            if len(a.error_samples) < 3:
                a.error_samples.append(repr(e))

    async def drain(self, timeout: float = 15) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        for t in list(self._tasks):
            t.cancel()
        if self._session is not None:
            await self._session.close()
        await self.twilio.stop()
        await self.pushsvc.stop()

    # ------------------------------------------------------------------ the figures
    async def report(self, stack: BenchStack, incident_ids: set[str]) -> tuple[list[str], bool, set[str]]:
        """Report lines, whether the target was met, and the measured incidents whose first offer went to
        an off-line responder (press_to_offer leaves those out of its on-screen `offer` latency)."""
        conn: asyncpg.Connection = await stack.connect()
        try:
            offers = await conn.fetch(
                "SELECT id::text AS id, incident_id::text AS incident_id, responder_id::text AS responder_id,"
                " attempt, extract(epoch FROM created_at)::float8 AS at FROM offers"
                " WHERE incident_id = ANY($1::uuid[])", list(incident_ids))
            outbox = await conn.fetch(
                "SELECT offer_id::text AS offer_id, kind, status, provider_sid,"
                " extract(epoch FROM sent_at - created_at)::float8 AS queued_s FROM sms_outbox"
                " WHERE offer_id IS NOT NULL")
            priority = {str(r["id"]): r["priority"] for r in await conn.fetch(
                "SELECT id, priority FROM incidents WHERE id = ANY($1::uuid[])", list(incident_ids))}
        finally:
            await conn.close()
        at = {r["id"]: r["at"] for r in offers}
        offline = set(self.offline_ids)
        off_offers = [r for r in offers if r["responder_id"] in offline]
        first_off = {r["incident_id"] for r in off_offers if r["attempt"] == 1}
        by_sid = {r["provider_sid"]: r for r in outbox if r["provider_sid"]}
        to_epoch = self.epoch_of_monotonic

        def arrivals(sent: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
            got: dict[tuple[str, str], float] = {}
            for m in sent:
                row = by_sid.get(m["sid"])
                if row is not None and row["offer_id"] in at:
                    got.setdefault((row["offer_id"], row["kind"]), m["at"] + to_epoch)
            return got

        texts = arrivals(self.twilio.sent)
        calls = arrivals(self.twilio.calls)
        sms_lat = [texts[(r["id"], "offer")] - r["at"] for r in off_offers if (r["id"], "offer") in texts]
        sms_lost = [r["id"] for r in off_offers if (r["id"], "offer") not in texts]
        p1 = [r for r in off_offers if priority.get(r["incident_id"]) == 1]
        call_lat = [calls[(r["id"], "call")] - r["at"] for r in p1 if (r["id"], "call") in calls]
        queued = [r["queued_s"] for r in outbox if r["offer_id"] in at and r["kind"] == "offer"
                  and r["queued_s"] is not None]
        statuses: dict[str, int] = {}
        for r in outbox:
            if r["offer_id"] in at and r["kind"] == "offer":
                statuses[r["status"]] = statuses.get(r["status"], 0) + 1

        pushed: dict[str, float] = {}
        for sub in self.subscribers.values():
            for m in sub.received:
                oid = m["payload"].get("offer_id")
                if oid in at:
                    pushed.setdefault(oid, m["at"] + to_epoch)
        push_offers = [r for r in offers if r["responder_id"] in self.subscribers]
        push_lat = [pushed[r["id"]] - r["at"] for r in push_offers if r["id"] in pushed]
        push_lost = [r["id"] for r in push_offers if r["id"] not in pushed]

        sms_st, push_st, call_st = pcts(sms_lat), pcts(push_lat), pcts(call_lat)
        a = self.answers
        out = [
            f"reach (issue 12): {len(self.offline_ids)} more responders off line with a phone, "
            f"{len(self.subscribers)} responders with a push subscription",
            line("offer -> SMS at the provider", sms_st),
            f"    {len(off_offers)} offers to off-line responders, {len(sms_lat)} texts received, "
            f"{len(sms_lost)} lost; outbox rows by status {statuses}; queued -> sent at the node "
            f"p99 {ms(pcts(queued)['p99'])} ms",
            line("offer -> call placed (priority 1)", call_st),
            line("offer -> push at the push service", push_st),
            f"    {len(push_offers)} offers to subscribed responders, {len(push_lat)} pushes received, "
            f"{len(push_lost)} lost; push service refused {len(self.pushsvc.rejected)} "
            f"{self.pushsvc.rejected[:2]}",
            f"    off-line responders by SMS: {a.texts} texts, {a.accepted} accepted, {a.declined} declined, "
            f"{a.ended} too late, {a.resolved} resolved, {a.errors} errors {a.error_samples}",
        ]
        met = True
        for name, st, lost in (("SMS", sms_st, sms_lost), ("push", push_st, push_lost)):
            if not st["n"]:
                out.append(f"  target {name}: nothing measured")
                continue
            ok = st["p99"] <= TARGET_S and not lost
            met = met and ok
            out.append(f"  target {name} (offer -> {name} p99 <= {TARGET_S * 1000:.0f} ms, none lost): "
                       f"{'met' if ok else 'NOT met'} (p99 {st['p99'] * 1000:.1f} ms, {len(lost)} lost)")
        return out, met, first_off

