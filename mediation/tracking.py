"""Cases followed up (issue 15): the event log read, the overdue sweep, the one extension, satisfaction.

A mixin of MediationService (mediation/service.py), like parties.py and intake.py; the rules are in
mediation/followup.py. Every change runs through the service's one change helper (`_mutate`: the case
row locked, the rule applied, the event logged, case.updated published after commit), except:

* the overdue sweep, which every node runs every mediation.sweep_s: it locks the cases past a deadline
  and not yet marked with FOR UPDATE SKIP LOCKED, marks each, logs `overdue` and queues case.updated for
  its mediator and the mediators watching, in one transaction; several nodes share the work and a case
  is marked once (the next sweep no longer selects it);
* a satisfaction answer, which fills the party's own question row (UPDATE ... WHERE score IS NULL: two
  answers at once, one wins) and changes nothing of the case itself.
"""
from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from infra import audit
from infra.db import Conn
from infra.errors import Conflict, NotFound
from infra.events import Outbox
from infra.formats import iso
from infra.identity import Account
from infra.texts import CaseText, Template, TextQueue
from mediation import followup, store, views
from mediation.followup import Event
from mediation.rules import Case

if TYPE_CHECKING:
    import asyncpg

    from infra.config import Mediation as MediationSettings
    from infra.keys import Keys

log = logging.getLogger(__name__)

InTxn = Callable[[Conn], Awaitable[None]]     # run inside the answer's transaction (an SMS's MessageSid)
SWEEP_LIMIT = 200                             # cases marked per transaction


class FollowUp:
    pool: asyncpg.Pool
    keys: Keys
    texts: TextQueue
    public_url: str
    settings: MediationSettings
    clock: Callable[[], datetime]
    metrics: Any
    publish: Callable[[list[tuple[str, str]]], Awaitable[None]]

    def _case_changed(self, out: Outbox, case: Case) -> None:
        raise NotImplementedError

    async def _mutate(self, actor: Account, case_id: str,
                      change: Callable[[Conn, Case], Awaitable[bool]]) -> dict[str, Any]:
        raise NotImplementedError

    # ---------------------------------------------------------------- the event log
    async def case_events(self, actor: Account, case_id: str) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            case = await store.get_case(conn, case_id)
            if case is None:
                raise NotFound("no such case")
            followup.check_events(case, actor)
            await audit.record(conn, actor.id, actor.role, "read", "case_events", case_id)
            return await store.events(conn, case_id)

    # ---------------------------------------------------------------- deadlines
    async def extend(self, actor: Account, case_id: str, days: int, reason: str) -> dict[str, Any]:
        async def change(conn: Conn, case: Case) -> bool:
            x = followup.extend(case, actor, days, reason, self.clock())
            await store.update_case(conn, case_id, due_at=x.due_at, overdue_since=x.overdue_since,
                                    extended_at=self.clock())
            await store.log_event(conn, case_id, actor.id, Event.EXTENDED, days=days, reason=x.reason,
                                  due_at=iso(x.due_at), previous_due_at=iso(case.due_at),
                                  overdue=x.overdue_since is not None)
            return True
        return await self._mutate(actor, case_id, change)

    async def sweep_overdue(self, limit: int = SWEEP_LIMIT) -> int:
        """Mark the open cases that passed a deadline (once each, whichever node gets them); how many.
        Refreshes the gauge of open overdue cases (the whole cluster's) as it goes."""
        now = self.clock()
        out = Outbox()
        marked = 0
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                for case_id in await store.lock_due(conn, now, limit):
                    case = await store.get_case(conn, case_id)
                    reason = followup.overdue_reason(case, now) if case is not None else None
                    if case is None or reason is None:
                        continue      # the database's clock and ours disagree by a hair: the next sweep
                    await store.update_case(conn, case_id, overdue_since=now)
                    await store.log_event(conn, case_id, None, Event.OVERDUE, reason=str(reason),
                                          due_at=iso(case.due_at), take_by=iso(case.take_by))
                    after = await store.get_case(conn, case_id)
                    assert after is not None
                    self._case_changed(out, after)
                    marked += 1
            overdue = await store.count_overdue(conn)
        if self.metrics is not None:
            if marked:
                self.metrics.cases_became_overdue.inc(marked)
            self.metrics.cases_overdue.set(overdue)
        await self.publish(out.items)
        return marked

    # ---------------------------------------------------------------- satisfaction
    async def _ask_feedback(self, conn: Conn, case: Case) -> None:
        """Inside the closing transaction: one question per party who had joined; one text to each SMS party."""
        phones = dict(await store.sms_phones(conn, case.id))
        for party_id, via in followup.ask(case):
            await store.ask_feedback(conn, case.id, party_id, via)
            if via == "sms" and party_id in phones:
                await self.texts.enqueue(conn, phones[party_id], Template(CaseText.FEEDBACK, {"ref": case.ref_no}),
                                         kind="case", case_id=case.id)

    async def feedback(self, actor: Account, case_id: str, score: int, comment: str | None, via: str = "ws",
                       also: InTxn | None = None) -> dict[str, Any]:
        """A party's one answer; their view of the case after (with their answer, nobody else's)."""
        async with self.pool.acquire() as conn:
            case = await store.get_case(conn, case_id)
            if case is None:
                raise NotFound("no such case")
            text = followup.check_feedback(case, actor, score, comment)
            async with conn.transaction():
                if not await store.answer_feedback(conn, case_id, actor.id, score, text, via):
                    raise Conflict("you have already answered; the first answer stands")
                if also is not None:
                    await also(conn)
            case = await store.get_case(conn, case_id)
        assert case is not None
        view = views.view_for(case, actor.id, actor.role)
        out = Outbox()        # the party's other screens
        out.add(self.keys.account_channel(actor.id), {"type": "case.updated", "case": view})
        await self.publish(out.items)
        return view

    async def feedback_by_sms(self, phone: str, score: int, also: InTxn | None = None) -> str | None:
        """A bare 1-5 from a phone: the answer to its latest pending question (asked by SMS within
        mediation.feedback_sms_days); the case's ref_no, or None if no question is pending."""
        async with self.pool.acquire() as conn:
            row = await store.feedback_of_phone(conn, phone, answered=False)
        if row is None or row["role"] != "resident":
            return None
        q = store.feedback_from_row(row)
        if not followup.sms_pending(q, self.clock(), self.settings.feedback_sms_days):
            return None
        actor = Account(str(row["party_id"]), row["role"], row["name"])
        await self.feedback(actor, str(row["case_id"]), score, None, via="sms", also=also)
        return str(row["ref_no"])

    async def answered_by_sms(self, phone: str) -> tuple[str, int] | None:
        """(ref_no, score) of this phone's latest answered SMS question, while a bare digit would still be
        read as an answer: a second one is told the first stands."""
        async with self.pool.acquire() as conn:
            row = await store.feedback_of_phone(conn, phone, answered=True)
        if row is None:
            return None
        q = store.feedback_from_row(row)
        if self.clock() - q.asked_at > timedelta(days=self.settings.feedback_sms_days):
            return None
        return str(row["ref_no"]), int(row["score"])


async def run(sweep: Callable[[], Awaitable[int]], tick_s: float) -> None:
    """Until cancelled: the overdue sweep every `tick_s` (+-25 %, so nodes started together do not tick together)."""
    while True:
        await asyncio.sleep(tick_s * (0.75 + random.random() / 2))
        try:
            await sweep()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - one bad tick (PostgreSQL restarting) must not end the worker
            log.warning("mediation deadline sweep: %s", e)
