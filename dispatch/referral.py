"""incident.refer (issue 15, contract §10): dispatch's half of referring a dispute into mediation.

The edge (handlers/referral.py) holds one transaction for both domains: `lock` here (the incident row, the
rules: lifecycle.check_refer), mediation opens the case on the same connection, `close` here records the
case on the incident and closes it with disposition `referred` (its responder freed, a pending offer
withdrawn, as incident.close does), queuing incident.updated, and `referred` tells the reporter on their
incident stream. Nothing is published before the commit. This module is the service's friend, like
dispatch/intake.py.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg

from dispatch import lifecycle as lc
from dispatch import store
from dispatch.notices import Tx
from infra.db import Conn
from infra.errors import NotFound
from infra.events import Outbox
from infra.identity import Account

if TYPE_CHECKING:
    from dispatch.service import DispatchService

DISPOSITION = "referred"
# channels whose reporter takes part by SMS once referred (an SMS report, a caller opened for with a phone)
SMS_CHANNELS = frozenset({"sms", "phone", "walk_in"})
CALLER_CHANNELS = frozenset({"phone", "walk_in"})      # incidents a dispatcher opened for a caller


class Referral:
    def __init__(self, svc: DispatchService) -> None:
        self.svc = svc

    async def peek(self, conn: Conn, who: Account, incident_id: str) -> asyncpg.Record:
        """The incident (no lock) for a first look: a re-sent refer is answered from it."""
        row = await store.get_incident(conn, incident_id)
        if row is None:
            raise NotFound("no such incident")
        lc.check_refer(store.rules_view(row), row["category"], who.id, who.role,
                       str(row["case_id"]) if row["case_id"] else None)
        return row

    async def lock(self, conn: Conn, who: Account, incident_id: str) -> tuple[asyncpg.Record, bool]:
        """(the incident, locked FOR UPDATE; whether it is already referred). Raises as check_refer does."""
        row = await store.lock_incident(conn, incident_id)
        if row is None:
            raise NotFound("no such incident")
        again = lc.check_refer(store.rules_view(row), row["category"], who.id, who.role,
                               str(row["case_id"]) if row["case_id"] else None)
        return row, again

    async def close(self, tx: Tx, row: asyncpg.Record, case_id: str, case_ref: str) -> dict[str, Any]:
        """Record the case on the incident and close it `referred` (in tx's transaction); the actor's view."""
        row = await store.update_incident(tx.conn, str(row["id"]), case_id=case_id, case_ref=case_ref)
        inc = await self.svc._finish(tx, row, lc.DISPOSITIONS[DISPOSITION], "closed", disposition=DISPOSITION,
                                     case_id=case_id, case_ref=case_ref)
        self.referred(tx.out, row, case_id, case_ref)
        return inc

    def referred(self, out: Outbox, row: asyncpg.Record, case_id: str, case_ref: str) -> None:
        """`incident.referred` on the reporter's stream: which case their report became."""
        out.add(self.svc.keys.account_channel(str(row["reporter_id"])),
                {"type": "incident.referred", "incident_id": str(row["id"]), "ref_no": row["ref_no"],
                 "case_id": case_id, "case_ref": case_ref})

    def view(self, row: asyncpg.Record) -> dict[str, Any]:
        return store.incident_view(row)

    @staticmethod
    def joins(row: asyncpg.Record) -> bool:
        """Whether the reporter can be a party at once: not a caller opened for without a phone (an account of
        that one call, which nobody holds)."""
        return row["channel"] not in CALLER_CHANNELS or store.reporter_phone(row) is not None

    @staticmethod
    def by_sms(row: asyncpg.Record) -> bool:
        """Whether the reporter takes part in the case by SMS: a report by SMS or a caller with a phone."""
        return row["channel"] in SMS_CHANNELS and store.reporter_phone(row) is not None
