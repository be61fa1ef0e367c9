"""How an offer reaches its responder: on their open page, and by phone (SMS, a call) when they are off line
(contract §7, issue 12). The service's friend, like dispatch/assign.py.

Which channels an offer goes out on is the pure rule dispatch.offers.channels, decided at offer time from
what the live index said of the candidate (online; pageable: on duty with a phone). The `offer` push is
published after commit as ever; the phone channels are carried out by the offer hooks (the sms package's
OfferTexts, wired in server/app.py) inside the offer's transaction, so a text or call exists exactly when
the offer does. The `offered` event records the channels; /metrics counts them (helpline_offers_sent).

A responder with a phone whose last connection closes while holding an offer (a phone locking in a pocket)
keeps it: it is sent to them by phone then, and left to its deadline. Without one, the offer moves on as
before (contract §4).
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from dispatch import lifecycle as lc
from dispatch import offers, store
from dispatch import roster_store as rs
from dispatch.notices import SYSTEM, Tx
from dispatch.offers import Channel, Reason
from infra.texts import OfferNotice

if TYPE_CHECKING:
    from dispatch.service import DispatchService


class Reach:
    def __init__(self, svc: DispatchService) -> None:
        self.svc = svc

    def channels_of(self, c: lc.Candidate, priority: int) -> tuple[Channel, ...]:
        d = self.svc.dcfg
        return offers.channels(online=c.online, has_phone=c.pageable, priority=priority, offer_sms=d.offer_sms,
                               voice_priority=d.voice_priority)

    def plan(self, priority: int, candidates: list[lc.Candidate],
             ids: tuple[str, ...]) -> dict[str, tuple[Channel, ...]]:
        """The channels an offer to each of these candidates would go out on (a report's first offer)."""
        by_id = {c.responder_id: c for c in candidates}
        return {rid: self.channels_of(by_id[rid], priority) for rid in ids if rid in by_id}

    def remote(self, channels: tuple[str, ...]) -> bool:
        """Whether an offer on these channels needs the offer hooks (a text or a call), i.e. a transaction."""
        return bool(self.svc.notices.offer_hooks) and bool(offers.REMOTE.intersection(channels))

    async def offered(self, tx: Tx, offer_id: str, responder_id: str, inc: dict[str, Any], expires_at: datetime,
                      distance_km: float | None, channels: tuple[str, ...]) -> None:
        """An offer was made in this transaction: run the offer hooks if it goes out by phone; count it."""
        if self.remote(channels):
            await self.svc.notices.run_offer_hooks(tx, OfferNotice(offer_id, responder_id, inc, expires_at,
                                                                   distance_km, tuple(channels)))
        self.svc.notices.sent(channels)

    async def gone(self, responder_id: str) -> None:
        """The responder's last connection closed: a pending offer is sent by phone if they have one (and
        offers by SMS are on), else it moves on as `disconnected`."""
        async with self.svc.pool.acquire() as conn:
            offer = await rs.pending_for_responder(conn, responder_id)
            phone = await conn.fetchval("SELECT phone FROM accounts WHERE id = $1", responder_id)
        if offer is None:
            return
        if phone is None or not self.svc.notices.offer_hooks or self.svc.dcfg.offer_sms == offers.OfferSms.NEVER:
            await self.svc._end_offer(offer.id, Reason.DISCONNECTED, responder_id, via=SYSTEM)
            return

        async def decide(tx: Tx, row: asyncpg.Record) -> None:
            got = await rs.offer(tx.conn, offer.id)
            if got is None or not offers.may_end(got[0], got[1], only_if_due=False):
                return      # answered or ended meanwhile
            gone = lc.Candidate(responder_id, 0.0, "offered", online=False, pageable=True)
            channels = tuple(ch for ch in self.channels_of(gone, row["priority"])
                             if not (ch == Channel.SMS and self.svc.dcfg.offer_sms == offers.OfferSms.ALWAYS))
            if not channels:    # `always`: the text went with the offer already; nothing new to send
                return
            await store.log_event(tx.conn, str(row["id"]), None, "offer_sent", offer_id=offer.id,
                                  responder_id=responder_id, channels=list(channels), why="disconnected")
            await self.offered(tx, offer.id, responder_id, store.incident_view(row), got[0].expires_at, None,
                               channels)
        await self.svc._change(offer.incident_id, decide, actor_id=None, via=SYSTEM)
