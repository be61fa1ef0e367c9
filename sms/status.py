"""Status texts: the reporter of an SMS incident is told, by SMS, what happens to it.

A dispatch change hook (`DispatchService.on_change(hook, STATUS_TEXT_CHANNELS)`) run inside the
transaction of every change to an incident reported by SMS, or opened by a dispatcher for a caller
(`phone`, `walk_in`: the caller's phone, if they gave one). It texts a phase (PHASES: queued and
offered both read "searching") only when the phase moves, and stays silent when the reporter caused
the change by SMS: the webhook's reply says it then.

A call attached to another incident (incident.link, disposition `duplicate`) is told so ("linked",
naming the other's reference) instead of "cancelled"; from then on the other incident's phases go to
that caller too, as long as the other incident is of these channels (an app's report runs no hook: its
fast path stays one statement).
"""
from __future__ import annotations

import logging
from typing import Any

import asyncpg

from infra.db import Conn
from infra.texts import TextQueue
from sms.contacts import contact
from sms.texts import PHASES, render

log = logging.getLogger(__name__)

STATUS_TTL_S = 3600.0    # a status text not sent within an hour is stale
STATUS_TEXT_CHANNELS = frozenset({"sms", "phone", "walk_in"})
LINKED_SQL = """SELECT a.phone FROM incidents d JOIN accounts a ON a.id = d.reporter_id
                WHERE d.duplicate_of = $1 AND a.phone IS NOT NULL AND a.phone <> $2"""


class StatusTexts:
    def __init__(self, texts: TextQueue) -> None:
        self.texts = texts

    async def __call__(self, conn: Conn, inc: dict[str, Any], actor_id: str | None, via: str) -> None:
        if inc.get("channel") not in STATUS_TEXT_CHANNELS:
            return
        if inc.get("case_id"):     # referred into mediation (incident.refer): mediation's text says so, with the code
            return
        phase = PHASES.get(inc["status"], inc["status"])
        reporter = inc["reporter"]["id"]
        try:
            async with conn.transaction():   # a savepoint: an SMS failure never undoes the incident change
                prev = await conn.fetchval("SELECT phase FROM sms_incidents WHERE incident_id = $1", inc["id"])
                if prev == phase:
                    return
                await conn.execute("INSERT INTO sms_incidents (incident_id, phase) VALUES ($1, $2)"
                                   " ON CONFLICT (incident_id) DO UPDATE SET phase = EXCLUDED.phase,"
                                   " updated_at = now()", inc["id"], phase)
                if via == "sms" and actor_id == reporter:
                    return
                phone = await conn.fetchval("SELECT phone FROM accounts WHERE id = $1", reporter)
                linked = [r["phone"] for r in await conn.fetch(LINKED_SQL, inc["id"], phone or "")]
                main = (await conn.fetchval("SELECT ref_no FROM incidents WHERE id = $1", inc["duplicate_of"])
                        if inc.get("disposition") == "duplicate" and inc.get("duplicate_of") else None)
                for to in ([phone] if phone else []) + linked:
                    lang, _ = await contact(conn, to)
                    body = (render(lang, "linked", ref=inc["ref_no"], main=main) if main else
                            render(lang, phase, ref=inc["ref_no"], name=(inc.get("responder") or {}).get("name")))
                    await self.texts.enqueue(conn, to, body, kind="status", incident_id=inc["id"],
                                             ttl_s=STATUS_TTL_S)
        except (asyncpg.PostgresError, KeyError) as e:
            log.warning("status SMS for incident %s not queued: %s", inc.get("id"), e)
