"""The console alarm's two changes (rules: dispatch/alarm.py): a dispatcher's "I'm on it" (`incident.ack`),
and the supervisor text about an escalation nobody took, which the sweeper sends (dispatch/sweeps.py).

The acknowledgement goes through the service's one change helper: the row locked, the rule applied, the
`acknowledged` event logged, incident.updated published to every console after commit. The supervisor
text is queued through the TextQueue port in the transaction that logs `supervisor_alerted` on each
incident it names, with their rows locked (SKIP LOCKED): once across a cluster, and never lost.
This module is the service's friend, like dispatch/sweeps.py.
"""
from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from dispatch import alarm, store
from dispatch import alarm_store as als
from dispatch.notices import Tx
from infra.accounts import shown_name
from infra.formats import iso
from infra.identity import Account
from infra.texts import IncidentText, Template

if TYPE_CHECKING:
    from dispatch.service import DispatchService

log = logging.getLogger(__name__)

SCAN_LIMIT = 200           # escalated incidents looked at per sweep (the longest waiting first)
SUPERVISOR_TTL_S = 3600.0  # a supervisor text not sent within an hour is stale


class Alarms:
    def __init__(self, svc: DispatchService) -> None:
        self.svc = svc

    async def acknowledge(self, who: Account, incident_id: str, *, via: str = "ws") -> dict[str, Any]:
        """Record that `who` is on it; the incident after (unchanged when their earlier acknowledgement
        already covers what it rings for: acknowledging twice is harmless)."""
        recorded = False

        async def decide(tx: Tx, row: asyncpg.Record) -> dict[str, Any]:
            nonlocal recorded
            name = shown_name(await als.display_name(tx.conn, who.id) or who.name, fallback="Dispatcher")
            new = alarm.Ack(who.id, name, iso(datetime.now(UTC)) or "", row["status"])
            after = alarm.acknowledge(row["status"], row["priority"], als.acks_of(row), new)
            if after is None:
                return store.incident_view(row)
            row = await store.update_incident(tx.conn, incident_id, acknowledged_by=[a.as_data() for a in after],
                                              event=(als.ACKNOWLEDGED, who.id, {"status": row["status"]}))
            recorded = True
            return await self.svc.notices.incident(tx, row)
        got = await self.svc._change(incident_id, decide, actor_id=who.id, via=via)
        if recorded and self.svc.metrics:      # committed
            self.svc.metrics.incident_acks.labels(via=via).inc()
        return got

    async def alert_supervisors(self) -> int:
        """Text the supervisors about escalations nobody took within dispatch.supervisor_after_s (0: never);
        how many incidents the text named. Several nodes may run this at once: one of them texts."""
        after_s = self.svc.dcfg.supervisor_after_s
        texts = self.svc.texts
        if after_s <= 0 or texts is None:
            return 0
        async with self.svc.pool.acquire() as conn:     # a look without locks first: most ticks find nothing
            seen = [als.escalation(r) for r in await als.escalations(conn, SCAN_LIMIT)]
            if not alarm.supervisor_batch(seen, datetime.now(UTC), after_s):
                return 0
            async with conn.transaction():
                rows = await als.lock_escalations(conn, SCAN_LIMIT)
                now = datetime.now(UTC)
                batch = alarm.supervisor_batch([als.escalation(r) for r in rows], now, after_s)
                if not batch:
                    return 0     # taken meanwhile, or another node is texting about them right now
                by_id = {str(r["id"]): r for r in rows}
                first = by_id[batch[0].incident_id]
                minutes = max(1, math.floor((now - first["escalated_at"]).total_seconds() / 60))
                body = Template(IncidentText.SUPERVISOR, {
                    "ref": first["ref_no"], "category": first["category"], "minutes": str(minutes),
                    "more": str(len(batch) - 1), "public_url": self.svc.cfg.server.public_url})
                phones = await als.supervisor_phones(conn)
                for _, phone in phones:
                    await texts.enqueue(conn, phone, body, kind="supervisor", incident_id=batch[0].incident_id,
                                        ttl_s=SUPERVISOR_TTL_S)
                for e in batch:
                    waited = (now - e.escalated_at).total_seconds()
                    await store.log_event(conn, e.incident_id, None, als.SUPERVISOR_ALERTED,
                                          texted=len(phones), waited_s=round(waited))
        if self.svc.metrics and phones:         # committed: the texts are queued
            self.svc.metrics.supervisor_texts.inc(len(phones))
        if not phones:
            log.warning("escalated incidents nobody took (%s): no supervisor with a phone to text",
                        ", ".join(str(by_id[e.incident_id]["ref_no"]) for e in batch))
        return len(batch)
