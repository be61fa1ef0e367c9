"""Offers by phone: the dispatch offer hook (`DispatchService.on_offer`) that texts an offer and/or queues
a call to its responder, inside the offer's transaction (contract §7, issue 12).

Dispatch decides the channels (dispatch.offers.channels); this carries them out. The text and the call are
outbox rows about the offer (`offer_id`: at most one of each per offer) that expire at the offer's deadline,
and the outbox sends neither once the offer has ended (SmsOutbox.offer_open), so a late text or call is
never made. The responder's language is the one their phone last texted in, else their number's country's.
"""
from __future__ import annotations

import logging
from datetime import UTC, datetime

import asyncpg

from infra.config import Config
from infra.db import Conn
from infra.texts import OfferNotice, TextQueue
from sms.contacts import contact
from sms.outbox import CALL
from sms.texts import offer_twiml, render_offer

log = logging.getLogger(__name__)

MIN_TTL_S = 1.0
VOICE_PATH = "/voice/offer"


class OfferTexts:
    def __init__(self, texts: TextQueue, cfg: Config) -> None:
        self.texts, self.cfg = texts, cfg

    async def __call__(self, conn: Conn, n: OfferNotice) -> None:
        try:
            async with conn.transaction():   # a savepoint: a failed text never undoes the offer (it still rings)
                phone = await conn.fetchval("SELECT phone FROM accounts WHERE id = $1", n.responder_id)
                if not phone:
                    log.warning("offer %s: responder %s has no phone any more", n.offer_id, n.responder_id)
                    return
                lang, _ = await contact(conn, phone)
                ttl = max(MIN_TTL_S, (n.expires_at - datetime.now(UTC)).total_seconds())
                inc_id = str(n.incident["id"])
                if "sms" in n.channels:
                    await self.texts.enqueue(conn, phone, render_offer(lang, n.incident, n.distance_km), kind="offer",
                                             incident_id=inc_id, ttl_s=ttl, offer_id=n.offer_id)
                if "voice" in n.channels:
                    action = f"{self.cfg.server.public_url.rstrip('/')}{VOICE_PATH}?offer={n.offer_id}"
                    await self.texts.enqueue(conn, phone, offer_twiml(lang, n.incident, n.distance_km, action),
                                             kind=CALL, incident_id=inc_id, ttl_s=ttl, offer_id=n.offer_id)
        except (asyncpg.PostgresError, KeyError) as e:
            log.warning("offer %s by phone not queued: %s", n.offer_id, e)
