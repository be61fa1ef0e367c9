"""Parties after filing: naming one more party (`case.add_party`), and taking a party by phone (`cases.claim`).

A mixin of MediationService (mediation/service.py), like sms_parties.py. The rules are
rules.check_add_party and rules.may_claim; the limits are filing's (mediation/guard.py):

* A new party gets a join code of its own (of a case opened for visitors: by its opener too, until a
  mediator takes it, and texted the counter's invitation, CaseText.VISIT). With a phone, the number must be in
  sms.allowed_countries and the invitation text counts against the same limits as filing's
  (per account, per address, per destination number); past them the party is kept, not texted,
  and the answer says so. The text is filing's template: the filer's name only if the filer's
  phone is verified, nobody else's words.
* A verified resident whose phone is the number given for a party nobody has joined yet takes
  that party by the phone instead of the code (the code was texted to that phone). A joined
  party is never moved to another account (docs/security.md, "Back into a case").
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from infra.accounts import check_name, normalise_phone
from infra.db import Conn
from infra.errors import BadRequest, Forbidden, NotFound
from infra.identity import Account
from infra.texts import CaseText, Template, TextQueue
from mediation import rules, store
from mediation.codes import new_join_code
from mediation.followup import Event
from mediation.guard import check_destinations
from mediation.rules import Case

if TYPE_CHECKING:
    import asyncpg

    from mediation.guard import Guard

Change = Callable[[Conn, Case], Awaitable[bool]]


class Parties:
    pool: asyncpg.Pool
    guard: Guard
    texts: TextQueue
    public_url: str
    sms_countries: frozenset[str]

    async def _mutate(self, actor: Account, case_id: str, change: Change) -> dict[str, Any]:
        raise NotImplementedError

    async def add_party(self, actor: Account, case_id: str, name: str, phone: str | None,
                        remote: str = "-") -> dict[str, Any]:
        """Name one more party of an open case (the filer or the case's mediator): the case, and
        `added` {name, join_code, texted} for the one who added it."""
        name = check_name(name, "name")
        if phone is not None and phone.strip():
            try:
                phone = normalise_phone(phone)
            except BadRequest as e:
                raise BadRequest(f"phone: {e.message}") from None
            check_destinations([phone], self.sms_countries, "phone")
        else:
            phone = None
        async with self.pool.acquire() as conn:     # refuse before any invitation is counted
            case = await store.get_case(conn, case_id)
        if case is None:
            raise NotFound("no such case")
        rules.check_add_party(case, actor, name)
        texted = phone is not None and await self.guard.may_invite(actor.id, remote, phone)
        added: dict[str, Any] = {}

        async def change(conn: Conn, case: Case) -> bool:
            rules.check_add_party(case, actor, name)
            slot = await store.next_slot(conn, case.id)
            code = new_join_code()
            while await store.code_exists(conn, code):
                code = new_join_code()
            await store.insert_party(conn, case.id, slot, name, phone, code)
            await store.log_event(conn, case.id, actor.id, Event.PARTY_ADDED, slot=slot, by=actor.role,
                                  phone=phone is not None, texted=texted)
            if phone is not None and texted and case.opened_by is not None:    # registered at a counter
                await self.texts.enqueue(conn, phone, Template(CaseText.VISIT, {
                    "ref": case.ref_no, "category": case.category, "code": code,
                    "public_url": self.public_url}), kind="case", case_id=case.id)
            elif phone is not None and texted:
                filer = await store.account(conn, case.filer_id)
                filer_name = next((p.name for p in case.parties if p.slot == 0), "")
                await self.texts.enqueue(conn, phone, Template(CaseText.INVITATION, {
                    "ref": case.ref_no, "category": case.category,
                    "filer": filer_name if filer is not None and filer["verified"] else "",
                    "code": code, "public_url": self.public_url}), kind="case", case_id=case.id)
            added.update(name=name, join_code=code, texted=texted)
            return True
        view = await self._mutate(actor, case_id, change)
        return {"case": view, "added": added}

    async def claim_by_phone(self, actor: Account) -> dict[str, Any]:
        """Take every party of an open case that was named with the actor's verified phone and that nobody
        has joined: `cases` (the cases taken now), `held_by_others` (such parties another account holds)."""
        async with self.pool.acquire() as conn:
            me = await store.account(conn, actor.id)
            if actor.role != "resident" or me is None or not me["verified"] or not me["phone"]:
                raise Forbidden("confirm your mobile number with a code first")
            slots = await store.open_slots_of_phone(conn, me["phone"])
        taken: list[dict[str, Any]] = []
        held = 0
        for case_id, slot_no, holder in slots:
            if holder == actor.id:
                continue
            if holder is not None:
                held += 1
                continue
            got: list[bool] = []

            async def change(conn: Conn, case: Case, slot_no: int = slot_no, got: list[bool] = got) -> bool:
                slot = next((p for p in case.parties if p.slot == slot_no), None)
                if slot is None or not rules.may_claim(case, slot, actor):
                    return False
                await store.join_party(conn, case.id, slot_no, actor.id, "ws")
                await store.log_event(conn, case.id, actor.id, Event.JOINED, slot=slot_no, via="ws", by="phone")
                got.append(True)
                return True
            view = await self._mutate(actor, case_id, change)
            if got:
                taken.append(view)
            elif view["status"] not in rules.FINAL and not any(p["id"] == actor.id for p in view["parties"]):
                held += 1      # someone joined it meanwhile
        return {"cases": taken, "held_by_others": held}
