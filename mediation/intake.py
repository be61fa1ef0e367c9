"""Cases opened for visitors at the counter (issue 13): `case.open` with `parties`, by a mediator or a clerk.

A mixin of MediationService (mediation/service.py), like parties.py. The rules are
rules.check_open_for_visitors, rules.check_distinct_phones and rules.is_opener; the views' OPENER.

* Every party is named (at least two) and gets a join code of its own; nobody is slot 0. The case
  records its opener (cases.filer_id, cases.opened_by_role): `opened_by` {id, name, role} on the
  case, in its `opened` event and in the audit log, with the party slots it was opened for (their names stay
  in case_parties only, which `helpline purge` blanks: the append-only logs never copy a visitor's name).
* A party with a phone is invited by text (CaseText.VISIT: the reference, category and code, no
  one's own words). Phones only in sms.allowed_countries; a number stands for one party. Texts
  count against the staff member's limits and the destination's (mediation/guard.py); past them
  the party is kept, not texted, and the answer says so: the codes are handed over on paper.
* The same request_id from the same staff account returns the case it opened (and the same
  invitations), nothing new.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import phonenumbers

from infra import audit
from infra.accounts import check_name, normalise_phone
from infra.db import Conn
from infra.errors import BadRequest, NotFound
from infra.events import Outbox
from infra.identity import Account
from infra.texts import CaseText, Template, TextQueue
from mediation import rules, store, views
from mediation.codes import new_join_code
from mediation.followup import Event
from mediation.guard import check_destinations
from mediation.rules import Case, OtherParty

if TYPE_CHECKING:
    import asyncpg

    from mediation.guard import Guard


class Intake:
    pool: asyncpg.Pool
    guard: Guard
    texts: TextQueue
    public_url: str
    sms_countries: frozenset[str]
    publish: Callable[[list[tuple[str, str]]], Awaitable[None]]

    def _case_changed(self, out: Outbox, case: Case) -> None:
        raise NotImplementedError

    def _deadlines(self) -> tuple[datetime, datetime]:
        raise NotImplementedError

    async def open_for_visitors(self, actor: Account, category: str, summary: str, parties: list[OtherParty],
                                request_id: str | None = None) -> dict[str, Any]:
        """Open a case for people at the counter: `case` (the opener's view, with the join codes) and
        `invitations` [{name, phone, join_code, texted}] to hand over on paper."""
        rules.check_open_for_visitors(actor, category, summary, parties)
        named = [OtherParty(check_name(p.name, f"parties[{i}].name"), _phone(p.phone, i))
                 for i, p in enumerate(parties)]
        rules.check_distinct_phones(named)
        check_destinations([p.phone for p in named], self.sms_countries, "parties[{i}].phone")
        if request_id is not None:
            async with self.pool.acquire() as conn:
                earlier = await store.case_by_request(conn, actor.id, request_id)
            if earlier is not None:
                return await self._opened_before(actor, earlier)
        texted = await self.guard.staff_opening(actor.id, [p.phone for p in named])
        out = Outbox()
        async with self.pool.acquire() as conn, conn.transaction():
            case_id = await store.insert_case(conn, actor.id, category, summary, request_id,
                                              opened_by_role=actor.role, deadlines=self._deadlines())
            if case_id is not None:
                case = await self._fill(conn, actor, case_id, named, texted)
                self._case_changed(out, case)
        if case_id is None:      # the same request_id committed in parallel: that case
            assert request_id is not None
            async with self.pool.acquire() as conn:
                earlier = await store.case_by_request(conn, actor.id, request_id)
            if earlier is None:
                raise NotFound("no such case")
            return await self._opened_before(actor, earlier)
        await self.publish(out.items)
        return _answer(case, actor, texted)

    async def _fill(self, conn: Conn, actor: Account, case_id: str, named: list[OtherParty],
                    texted: set[int]) -> Case:
        """The parties, the event, the audit row and the invitation texts of a new case (one transaction)."""
        for slot, visitor in enumerate(named, 1):
            code = new_join_code()
            while await store.code_exists(conn, code):
                code = new_join_code()
            await store.insert_party(conn, case_id, slot, visitor.name, visitor.phone, code)
        sent = sorted(s for s in texted if named[s - 1].phone)
        slots = list(range(1, len(named) + 1))
        opener = {"id": actor.id, "name": actor.name, "role": actor.role}
        case = await store.get_case(conn, case_id)
        assert case is not None
        await store.log_event(conn, case_id, actor.id, Event.OPENED, category=case.category, parties=len(named),
                              opened_by=opener, on_behalf_of=slots, texted=sent)
        await audit.record(conn, actor.id, actor.role, "open_for_visitors", "case", case_id,
                           ref_no=case.ref_no, on_behalf_of=slots, texted=sent)
        for p in case.parties:
            if p.phone and p.join_code and p.slot in texted:
                await self.texts.enqueue(conn, p.phone, Template(CaseText.VISIT, {
                    "ref": case.ref_no, "category": case.category, "code": p.join_code,
                    "public_url": self.public_url}), kind="case", case_id=case.id)
        return case

    async def _opened_before(self, actor: Account, case_id: str) -> dict[str, Any]:
        """The answer to a request_id already used: the case as it is now, the invitations as they went."""
        async with self.pool.acquire() as conn:
            case = await store.get_case(conn, case_id)
            if case is None:
                raise NotFound("no such case")
            opened = await store.opened_event(conn, case_id)
        return _answer(case, actor, set(opened.get("texted", [])), upto=int(opened.get("parties", 0)))


def _phone(phone: str | None, i: int) -> str | None:
    if phone is None or not phone.strip():
        return None
    try:
        e164 = normalise_phone(phone)
    except BadRequest as e:
        raise BadRequest(f"parties[{i}].phone: {e.message}; check the number or leave it out") from None
    # staff type numbers read out at a counter: a slip gives a possible but unassigned number (a stranger's
    # or nobody's), so the number must be a valid one, not only of a possible length
    if not phonenumbers.is_valid_number(phonenumbers.parse(e164)):
        raise BadRequest(f"parties[{i}].phone: {phone.strip()!r} is not a valid phone number;"
                         " check the number or leave it out")
    return e164


def _answer(case: Case, actor: Account, texted: set[int], upto: int | None = None) -> dict[str, Any]:
    """The case and the invitations of the parties it was opened with (`upto`: their number; parties
    added later are not part of this answer)."""
    return {"case": views.view_for(case, actor.id, actor.role),
            "invitations": [{"name": p.name, "phone": p.phone, "join_code": p.join_code,
                             "texted": p.slot in texted} for p in case.parties
                            if 0 < p.slot and (upto is None or p.slot <= upto)]}
