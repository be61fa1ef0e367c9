"""What each change tells whom: events queued during a change (published after its commit) and the
change hooks other domains hang on it (run inside its transaction)."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from dispatch import access, store
from dispatch import roster_store as rs
from dispatch.offers import Offer, Reason
from infra.db import Conn
from infra.events import Outbox
from infra.formats import iso
from infra.keys import Keys
from infra.metrics import Metrics
from infra.texts import OfferNotice

# work of the caller's own, run in the transaction of the change before it commits; if it raises,
# the change rolls back and the exception propagates
InTxn = Callable[[Conn], Awaitable[None]]
# hook(conn, incident_view, actor_id, via), run in the transaction of a change to an incident
ChangeHook = Callable[[Conn, dict[str, Any], "str | None", str], Awaitable[None]]
# hook(conn, notice), run in the transaction of an offer that goes out by SMS or voice (dispatch/reach.py)
OfferHook = Callable[[Conn, OfferNotice], Awaitable[None]]


@dataclass
class Tx:
    """One change in progress: its connection, the events to publish after commit, who caused it and how."""

    conn: Conn
    out: Outbox
    actor_id: str | None
    via: str
    rematch: list[str] = field(default_factory=list)   # incidents to match again once this change commits


class Notices:
    def __init__(self, keys: Keys, metrics: Metrics | None) -> None:
        self.keys, self.metrics = keys, metrics
        self._hooks: list[tuple[ChangeHook, frozenset[str]]] = []
        self.hooked: frozenset[str] = frozenset()     # channels some hook covers
        self.offer_hooks: list[OfferHook] = []

    def on_change(self, hook: ChangeHook, channels: frozenset[str]) -> None:
        self._hooks.append((hook, channels))
        self.hooked |= channels

    def on_offer(self, hook: OfferHook) -> None:
        self.offer_hooks.append(hook)

    async def run_offer_hooks(self, tx: Tx, notice: OfferNotice) -> None:
        for hook in self.offer_hooks:
            await hook(tx.conn, notice)

    def sent(self, channels: tuple[str, ...]) -> None:
        """Count an offer by each channel it went out on."""
        if self.metrics:
            for ch in channels:
                self.metrics.offers_sent.labels(channel=ch).inc()

    def answered(self, via: str, answer: str) -> None:
        """Count a responder's answer (accepted, declined) by the channel it came back on."""
        if self.metrics:
            self.metrics.offer_answers.labels(channel=via, answer=answer).inc()

    async def run_hooks(self, tx: Tx, inc: dict[str, Any]) -> None:
        for hook, channels in self._hooks:
            if inc["channel"] in channels:
                await hook(tx.conn, inc, tx.actor_id, tx.via)

    async def incident(self, tx: Tx, row: asyncpg.Record) -> dict[str, Any]:
        """Run the change hooks and queue incident.updated; the incident's view."""
        inc = store.incident_view(row)
        await self.run_hooks(tx, inc)
        self.queue_incident(tx.out, inc)
        return inc

    def queue_incident(self, out: Outbox, inc: dict[str, Any]) -> None:
        responder = inc["responder"]["id"] if inc["responder"] else None
        told = access.told(access.Parties(inc["reporter"]["id"], responder))
        out.add_to([self.keys.account_channel(a) for a in told] + [self.keys.dispatch_channel],
                   {"type": "incident.updated", "incident": inc})
        if self.metrics:
            self.metrics.incident_status(inc["status"])

    def responder(self, out: Outbox, row: asyncpg.Record | None, prefix: str = "") -> dict[str, Any] | None:
        """Queue responder.updated for the dispatchers (nothing if the row is None: nothing changed)."""
        if row is None:
            return None
        resp = rs.responder_view(row, prefix)
        out.add(self.keys.dispatch_channel, {"type": "responder.updated", "responder": resp})
        return resp

    def offer(self, out: Outbox, responder_id: str, offer_id: str, inc: dict[str, Any],
              expires_at: datetime) -> None:
        out.add(self.keys.account_channel(responder_id),
                {"type": "offer", "offer_id": offer_id, "incident": inc, "expires_at": iso(expires_at)})

    def withdrawn(self, out: Outbox, offer: Offer, reason: Reason) -> None:
        out.add(self.keys.account_channel(offer.responder_id),
                {"type": "offer.withdrawn", "offer_id": offer.id, "reason": str(reason)})
        self.outcome(reason)

    def outcome(self, outcome: str) -> None:
        if self.metrics:
            self.metrics.offer_outcome(str(outcome))


SYSTEM = "system"     # `via` of the changes the worker and disconnects make


class Held(Exception):
    """Another node holds the incident right now (the worker skips it and comes back next tick)."""
