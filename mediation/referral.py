"""Cases opened from a dispute incident (issue 15, contract §10 `incident.refer`): mediation's half.

A mixin of MediationService (mediation/service.py), like intake.py. Dispatch and mediation never import each
other: the edge (handlers/referral.py) opens ONE transaction, locks the incident through dispatch, calls
`open_referred` here with that connection and what it read of the incident (`Referred`), closes the
incident through dispatch, and publishes both domains' events after the commit.

* The reporter is the first party (slot 1), already joined: an SMS reporter (channel sms, or a caller
  dispatch opened the incident for, with a phone) as an SMS party with their phone, who is texted the
  case's reference and their join code (CaseText.REFERRED) and then takes part by SMS; anyone else by the
  app (they are told on their incident stream). Their slot has a join code like every named slot, so the
  code they are given works on the web page too (the same account joining again changes nothing). A caller
  a dispatcher opened the incident for without a phone has no account anyone holds: their slot waits with
  its code, which the referrer (the opener, who sees the codes) hands over.
* The other parties are invited as at the counter (intake.py): a join code each, a text (CaseText.VISIT)
  to those with a phone, within the referrer's limits (mediation/guard.py).
* The referrer is the case's opener (cases.filer_id, opened_by_role); the case keeps the incident's grid
  and its id and reference (cases.incident_id is unique: one case per incident).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from infra import audit
from infra.accounts import check_name
from infra.db import Conn
from infra.events import Outbox
from infra.identity import Account
from infra.texts import CaseText, Template, TextQueue
from mediation import rules, store
from mediation.codes import new_join_code
from mediation.guard import check_destinations
from mediation.intake import _phone
from mediation.rules import Case, OtherParty

if TYPE_CHECKING:
    from mediation.guard import Guard


@dataclass(frozen=True)
class Referred:
    """What mediation is told of the incident being referred (read by dispatch under its lock)."""

    incident_id: str
    incident_ref: str
    reporter_id: str
    reporter_name: str
    reporter_phone: str | None
    by_sms: bool                 # the reporter takes part by SMS
    joins: bool                  # the reporter is a party at once (not a caller without a phone: see below)
    grid_code: str | None


@dataclass(frozen=True)
class Plan:
    """The checked input of a referral, and the invitation slots its limits allow texting."""

    category: str
    summary: str
    others: list[OtherParty]
    texted: set[int]


class Referral:
    guard: Guard
    texts: TextQueue
    public_url: str
    sms_countries: frozenset[str]

    def _case_changed(self, out: Outbox, case: Case, untaken_before: bool = False) -> None:
        raise NotImplementedError

    def _deadlines(self) -> tuple[datetime, datetime]:
        raise NotImplementedError

    async def plan_referral(self, actor: Account, category: str, summary: str, others: list[OtherParty]) -> Plan:
        """Check the referral's fields (BadRequest naming the field) and count the referrer's limits, before
        the transaction (Redis may hang)."""
        rules.check_refer_open(actor, category, summary, others)
        named = [OtherParty(check_name(o.name, f"other_parties[{i}].name"),
                            _phone(o.phone, i, "other_parties")) for i, o in enumerate(others)]
        rules.check_distinct_phones(named)
        check_destinations([o.phone for o in named], self.sms_countries)
        # slot 1 is the reporter (never counted: their text is about their own report), the others from 2
        texted = await self.guard.staff_opening(actor.id, [None, *(o.phone for o in named)])
        return Plan(category, summary.strip(), named, texted)

    async def open_referred(self, conn: Conn, out: Outbox, actor: Account, inc: Referred, plan: Plan) -> Case:
        """Open the case inside the caller's transaction; its events are queued on `out` (publish after commit)."""
        case_id = await store.insert_case(conn, actor.id, plan.category, plan.summary, None,
                                          opened_by_role=actor.role, deadlines=self._deadlines())
        assert case_id is not None
        await store.set_referral(conn, case_id, inc.incident_id, inc.incident_ref, inc.grid_code)
        reporter_phone = inc.reporter_phone if inc.by_sms else None
        for slot, (name, phone) in enumerate([(inc.reporter_name, reporter_phone),
                                              *((o.name, o.phone) for o in plan.others)], 1):
            code = new_join_code()
            while await store.code_exists(conn, code):
                code = new_join_code()
            await store.insert_party(conn, case_id, slot, name, phone, code)
        if inc.joins:
            await store.join_party(conn, case_id, 1, inc.reporter_id, "sms" if inc.by_sms else "ws")
        case = await store.get_case(conn, case_id)
        assert case is not None
        sent = sorted(s for s in plan.texted if s > 1)
        opener = {"id": actor.id, "name": actor.name, "role": actor.role}
        await store.log_event(conn, case_id, actor.id, "opened", category=plan.category,
                              parties=len(plan.others) + 1, opened_by=opener, incident_id=inc.incident_id,
                              incident_ref=inc.incident_ref, texted=sent)
        if inc.joins:
            await store.log_event(conn, case_id, inc.reporter_id, "joined", slot=1,
                                  via="sms" if inc.by_sms else "ws")
        await audit.record(conn, actor.id, actor.role, "incident.refer", "case", case_id, ref_no=case.ref_no,
                           incident_id=inc.incident_id, texted=sent)
        for p in case.parties:
            if p.slot == 1 and reporter_phone and p.join_code:
                await self.texts.enqueue(conn, reporter_phone, Template(CaseText.REFERRED, {
                    "ref": case.ref_no, "incident": inc.incident_ref, "code": p.join_code,
                    "public_url": self.public_url}), kind="case", case_id=case.id)
            elif p.slot > 1 and p.phone and p.join_code and p.slot in plan.texted:
                await self.texts.enqueue(conn, p.phone, Template(CaseText.VISIT, {
                    "ref": case.ref_no, "category": case.category, "code": p.join_code,
                    "public_url": self.public_url}), kind="case", case_id=case.id)
        self._case_changed(out, case)
        return case

    async def referred_case(self, conn: Conn, case_id: str) -> Case:
        case = await store.get_case(conn, case_id)
        assert case is not None     # incidents.case_id references cases
        return case
