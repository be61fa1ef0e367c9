"""The mediation service: carries out the rules' decisions.

Every change to a case runs in one PostgreSQL transaction that first locks the
case row (FOR UPDATE), so takes, joins, proposals, signatures and closes on one
case are serialised. A chat message is checked against the case as this node
holds it in memory and written only if the case is still at that version, by
one statement (store.SEND_SQL; under load with the messages of other senders,
store.BATCH_SEND_SQL via ChatBatch) that holds the case row FOR SHARE (no close
slips in between) and takes the room's next `seq` from its counter row, whose
lock it keeps until commit: seqs are gap-free and unique across nodes. Redis events go
out only after the commit.

Texts to parties who take part by SMS are queued through the TextQueue port (infra/texts.py)
inside the transaction of the change that causes them, so they exist exactly when it commits
(the sms package's worker sends them; a node lost after the commit loses none). A chat message
for the joint room of a case with an SMS party therefore takes the locking transaction
(_send_locked) instead of the one-statement fast path: the message and its texts commit together.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from infra import audit
from infra.accounts import check_name, normalise_phone, shown_name
from infra.config import Mediation as MediationSettings
from infra.db import Conn
from infra.errors import HelplineError, NotFound, Unavailable
from infra.events import Outbox
from infra.identity import Account
from infra.keys import Keys
from infra.texts import CaseText, Template, TextQueue
from mediation import followup, rules, store, views
from mediation.chatbatch import ChatBatch
from mediation.codes import new_join_code, new_sign_code, normalise_code
from mediation.followup import Event
from mediation.guard import Guard, check_destinations
from mediation.intake import Intake
from mediation.parties import Parties
from mediation.rules import Case
from mediation.sms_parties import SmsParties
from mediation.tracking import FollowUp

log = logging.getLogger(__name__)

CASES_IN_MEMORY = 10_000                            # cases a node keeps for chat (checked by version)
Change = Callable[[Conn, Case], Awaitable[bool]]


class MediationService(SmsParties, Parties, Intake, FollowUp):
    def __init__(self, pool: asyncpg.Pool, redis: aioredis.Redis, keys: Keys,
                 publish: Callable[[list[tuple[str, str]]], Awaitable[None]], texts: TextQueue,
                 public_url: str = "", sms_countries: frozenset[str] = frozenset({"CN"}),
                 settings: MediationSettings | None = None) -> None:
        self.pool, self.redis, self.keys, self.publish = pool, redis, keys, publish
        self.texts = texts                # the SMS outbox, written inside our transactions
        self.public_url = public_url.rstrip("/")
        self.sms_countries = sms_countries    # where a party named by phone may be texted (sms.allowed_countries)
        self.guard = Guard(redis, keys)
        self._cases: OrderedDict[str, Case] = OrderedDict()   # chat's view of cases, checked by version
        self.chat = ChatBatch(pool)
        self.feeds: Any = None            # mediation.live.Feeds of this node, set by setup_app
        self.settings = settings or MediationSettings()   # deadlines and satisfaction (mediation/followup.py)
        self.clock: Callable[[], datetime] = _now          # what deadlines are judged by (tests move it)
        self.metrics: Any = None          # infra.metrics.Metrics of this node, set by create_app

    def _deadlines(self) -> tuple[datetime, datetime]:
        """(due_at, take_by) of a case filed now."""
        return followup.deadlines(self.clock(), self.settings.due_days, self.settings.take_within_h)

    # ---------------------------------------------------------------- events
    def _case_changed(self, out: Outbox, case: Case, untaken_before: bool = False) -> None:
        """case.updated to every participant (their own view, on their account channel) and to watchers.

        The staff member who opened it for visitors follows it until a mediator takes it, that change
        included (`untaken_before`): their page shows who took it, then lets it go."""
        audience = [(p.account_id, "resident") for p in case.joined if p.account_id]
        audience += [(case.mediator.id, "mediator")] if case.mediator else []
        audience += [(a.id, "agency") for a in case.agencies]
        if case.opened_by and case.mediator is None:
            audience.append((case.opened_by.id, case.opened_by.role))
        for aid, role in audience:
            out.add(self.keys.account_channel(aid),
                    {"type": "case.updated", "case": views.view_for(case, aid, role)})
        if case.opened_by and case.mediator is not None and untaken_before:    # taken: the last word, masked
            out.add(self.keys.account_channel(case.opened_by.id),
                    {"type": "case.updated", "case": views.case_view(case, views.Viewer.STAFF)})
        out.add(self.keys.cases_channel,
                {"type": "case.updated", "case": views.case_view(case, views.Viewer.STAFF)})

    async def _mutate(self, actor: Account, case_id: str, change: Change) -> dict[str, Any]:
        """Lock the case, apply the change, publish after commit; the actor's view of the case after."""
        out = Outbox()
        async with self.pool.acquire() as conn, conn.transaction():
            case = await store.lock_case(conn, case_id)
            if case is None:
                raise NotFound("no such case")
            untaken = case.mediator is None
            if await change(conn, case):
                case = await store.get_case(conn, case_id)
                assert case is not None
                self._case_changed(out, case, untaken_before=untaken)
        self._remember(case)
        await self.publish(out.items)
        return views.view_for(case, actor.id, actor.role)

    async def _sms_parties(self, conn: Conn, case: Case, key: CaseText, skip: str | None = None,
                           **fields: str) -> None:
        """Queue a text to every party who joined by SMS, inside the caller's transaction."""
        text = Template(key, {"ref": case.ref_no, **fields})
        for aid, phone in await store.sms_phones(conn, case.id):
            if aid != skip:
                await self.texts.enqueue(conn, phone, text, kind="case", case_id=case.id)

    # ---------------------------------------------------------------- cases
    async def open_case(self, actor: Account, category: str, summary: str, others: list[rules.OtherParty],
                        name: str | None = None, request_id: str | None = None,
                        remote: str = "-") -> dict[str, Any]:
        """Open a case; with a request_id already used by this filer, the case it opened (nothing new).

        Names are never phone numbers; phones only in sms.allowed_countries; cases and invitation texts
        are limited per filer, per address and per destination (mediation/guard.py)."""
        rules.check_open(actor, category, summary, others)
        others = [rules.OtherParty(check_name(o.name, f"other_parties[{i}].name"),
                                   normalise_phone(o.phone) if o.phone else None) for i, o in enumerate(others)]
        check_destinations([o.phone for o in others], self.sms_countries)
        out = Outbox()
        held: list[str] = []
        async with self.pool.acquire() as conn:    # limits are counted before the transaction (Redis may hang)
            again = request_id is not None and await store.case_by_request(conn, actor.id, request_id) is not None
        texted = set() if again else await self.guard.opening(actor.id, remote, [o.phone for o in others])
        async with self.pool.acquire() as conn, conn.transaction():
            me = await store.account(conn, actor.id)
            # no name: stored empty, and each page says "Applicant" in its own language
            filer_name = check_name(name or "") or shown_name(me["name"] if me else "", "")
            verified = bool(me and me["verified"])
            case_id = await store.insert_case(conn, actor.id, category, summary, request_id,
                                              deadlines=self._deadlines())
            if case_id is None:    # opened before under this request_id (its answer was lost): that case
                assert request_id is not None
                earlier = await store.case_by_request(conn, actor.id, request_id)
                case = await store.get_case(conn, earlier) if earlier else None
                if case is None:
                    raise NotFound("no such case")
                return views.view_for(case, actor.id, actor.role)
            await store.insert_party(conn, case_id, 0, filer_name, None, None, actor.id)
            for slot, o in enumerate(others, 1):
                code = new_join_code()
                while await store.code_exists(conn, code):
                    code = new_join_code()
                await store.insert_party(conn, case_id, slot, o.name, o.phone, code)
            await store.log_event(conn, case_id, actor.id, Event.OPENED, category=category, parties=len(others))
            case = await store.get_case(conn, case_id)
            assert case is not None
            for p in case.parties:
                if not (p.phone and p.join_code):
                    continue
                if p.slot not in texted:
                    held.append(p.name)      # kept, not texted: the filer has the code to pass on
                    continue
                # the filer's own words go out only if their phone is verified, and then inside the template
                await self.texts.enqueue(conn, p.phone, Template(CaseText.INVITATION, {
                    "ref": case.ref_no, "category": case.category, "filer": filer_name if verified else "",
                    "code": p.join_code, "public_url": self.public_url}), kind="case", case_id=case.id)
            self._case_changed(out, case)
        await self.publish(out.items)
        view = views.view_for(case, actor.id, actor.role)
        return {**view, "invitations_not_texted": held} if held else view

    async def join(self, actor: Account, code: str, via: str = "ws", remote: str | None = None) -> dict[str, Any]:
        code = normalise_code(code)
        # counted before the lookup (parallel sockets cannot slip past), given back if the code exists
        counters = await self.guard.join_attempt(actor.id, remote, code)
        async with self.pool.acquire() as conn:
            hit = await store.case_of_code(conn, code)
        if hit is None:
            raise NotFound("no case with that join code")
        await self.guard.refund(counters)
        case_id, slot_no = hit

        async def change(conn: Conn, case: Case) -> bool:
            slot = next(p for p in case.parties if p.slot == slot_no)
            if rules.check_join(case, slot, actor):
                return False
            await store.join_party(conn, case_id, slot_no, actor.id, via)
            await store.log_event(conn, case_id, actor.id, Event.JOINED, slot=slot_no, via=via)
            return True
        return await self._mutate(actor, case_id, change)

    async def take(self, actor: Account, case_id: str) -> dict[str, Any]:
        async def change(conn: Conn, case: Case) -> bool:
            to = rules.take(case, actor)
            if to is None:
                return False
            # the take deadline no longer applies: an overdue mark stays only if due_at has passed too
            await store.update_case(conn, case_id, status=str(to), mediator_id=actor.id,
                                    overdue_since=followup.overdue_after_take(case, self.clock()))
            await store.log_event(conn, case_id, actor.id, Event.TAKEN)
            await self._sms_parties(conn, case, CaseText.TAKEN, mediator=actor.name)
            return True
        return await self._mutate(actor, case_id, change)

    async def invite(self, actor: Account, case_id: str, account_id: str) -> dict[str, Any]:
        async def change(conn: Conn, case: Case) -> bool:
            acc = await store.account(conn, account_id)
            target = rules.Person(account_id, acc["name"] if acc else "")
            role = None if acc is None or acc["disabled"] else acc["role"]
            if rules.check_invite(case, actor, target, role):
                return False
            await store.add_agency(conn, case_id, account_id, actor.id)
            await store.log_event(conn, case_id, actor.id, Event.INVITED, agency_id=account_id)
            return True
        return await self._mutate(actor, case_id, change)

    async def propose(self, actor: Account, case_id: str, text: str) -> dict[str, Any]:
        async def change(conn: Conn, case: Case) -> bool:
            p = rules.propose(case, actor, text)
            # agreements.sign_code is texted to nobody: each SMS party gets a code of their own
            ag_id = await store.insert_agreement(conn, case_id, p.text, p.sha256, new_sign_code(), actor.id)
            await store.update_case(conn, case_id, status=str(p.status), agreement_id=ag_id)
            await store.log_event(conn, case_id, actor.id, Event.PROPOSED, agreement_id=ag_id,
                                  sha256=p.sha256)
            for aid, phone in await store.sms_phones(conn, case.id):
                code = new_sign_code()
                await store.insert_sign_code(conn, ag_id, aid, code)
                await self.texts.enqueue(conn, phone, Template(CaseText.PROPOSAL, {
                    "ref": case.ref_no, "text": p.text, "code": code, "public_url": self.public_url}),
                    kind="case", case_id=case.id)
            return True
        return await self._mutate(actor, case_id, change)

    async def sign(self, actor: Account, case_id: str, agreement_id: str | None,
                   via: str = "ws") -> dict[str, Any]:
        async def change(conn: Conn, case: Case) -> bool:
            d = rules.sign(case, actor, agreement_id)
            if d.already:
                return False
            ag, party = case.agreement, case.party(actor.id)
            assert ag is not None and party is not None
            await store.insert_signature(conn, ag.id, actor.id, party.name, via)
            await store.log_event(conn, case_id, actor.id, Event.SIGNED, agreement_id=ag.id, via=via)
            if d.settles:
                await store.update_case(conn, case_id, status=str(rules.Status.SETTLED), closed_at=_now())
                settled = await store.get_case(conn, case_id)
                assert settled is not None
                await store.insert_settlement(conn, settled)
                await store.log_event(conn, case_id, None, Event.SETTLED, agreement_id=ag.id, sha256=d.sha256)
                await self._sms_parties(conn, case, CaseText.SETTLED, sha256=d.sha256)
                await self._ask_feedback(conn, settled)
            else:
                await store.update_case(conn, case_id)
            return True
        return await self._mutate(actor, case_id, change)

    async def close_case(self, actor: Account, case_id: str, outcome: str, note: str | None) -> dict[str, Any]:
        async def change(conn: Conn, case: Case) -> bool:
            to = rules.close(case, actor, outcome)
            if to is None:
                return False
            await store.update_case(conn, case_id, status=str(to), closed_at=_now(), outcome_note=note)
            await store.log_event(conn, case_id, actor.id, followup.close_event(to), outcome=outcome)
            await self._sms_parties(conn, case, CaseText.CLOSED, status=str(to))
            await self._ask_feedback(conn, case)
            return True
        return await self._mutate(actor, case_id, change)

    async def withdraw(self, actor: Account, case_id: str) -> dict[str, Any]:
        async def change(conn: Conn, case: Case) -> bool:
            to = rules.withdraw(case, actor)
            if to is None:
                return False
            await store.update_case(conn, case_id, status=str(to), closed_at=_now())
            await store.log_event(conn, case_id, actor.id, Event.WITHDRAWN)
            await self._sms_parties(conn, case, CaseText.CLOSED, status=str(to))
            await self._ask_feedback(conn, case)
            return True
        return await self._mutate(actor, case_id, change)

    # ---------------------------------------------------------------- reading
    async def watch_list(self, actor: Account, record: bool = True) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            if record and actor.role != "resident":
                await audit.record(conn, actor.id, actor.role, "watch", "cases", None)
            return [views.view_for(c, actor.id, actor.role) for c in await store.open_cases(conn)]

    async def my_cases(self, actor: Account) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            mine = store.opened_cases if actor.role == "clerk" else store.cases_of   # a clerk: untaken cases opened
            return [views.view_for(c, actor.id, actor.role) for c in await mine(conn, actor.id)]

    async def authorize_room(self, actor: Account, case_id: str, room: str) -> rules.Room:
        r = rules.parse_room(room)
        async with self.pool.acquire() as conn:
            case = await store.get_case(conn, case_id)
            if case is None:
                raise NotFound("no such case")
            rules.check_read(case, actor, r)
            if actor.role != "resident":       # staff reading residents' words: on the record
                await audit.record(conn, actor.id, actor.role, "read", "case_room", case_id, room=r.name)
        return r

    async def backlog(self, case_id: str, room: str, after_seq: int, limit: int
                      ) -> tuple[list[dict[str, Any]], bool, int]:
        """(messages after after_seq, oldest first; whether more follow; the room's last committed seq)."""
        async with self.pool.acquire() as conn:
            msgs = await store.messages_after(conn, case_id, room, after_seq, limit + 1)
            last = await store.last_seq(conn, case_id, room)
        return msgs[:limit], len(msgs) > limit, last

    async def messages_after(self, case_id: str, room: str, after_seq: int, limit: int
                             ) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            return await store.messages_after(conn, case_id, room, after_seq, limit)

    # ---------------------------------------------------------------- chat
    async def _case_at_hand(self, case_id: str, fresh: bool = False) -> tuple[Case, bool]:
        """(the case, whether it came from memory): this node's copy (any version) or a snapshot read."""
        case = None if fresh else self._cases.get(case_id)
        if case is not None:
            self._cases.move_to_end(case_id)
            return case, True
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            case = await store.get_case(conn, case_id)
        if case is None:
            self._cases.pop(case_id, None)
            raise NotFound("no such case")
        self._remember(case)
        return case, False

    def _remember(self, case: Case) -> None:
        held = self._cases.get(case.id)
        if held is None or held.version <= case.version:
            self._cases[case.id] = case
            self._cases.move_to_end(case.id)
        while len(self._cases) > CASES_IN_MEMORY:
            self._cases.popitem(last=False)

    async def send(self, actor: Account, case_id: str, room: str, client_msg_id: str, body: str,
                   via: str = "ws") -> dict[str, Any]:
        """Persist a message with the room's next seq; the same client_msg_id again → the same message.

        The rules are checked against the case as this node holds it in memory, and the message is
        written by one statement only if the case is still at that version (store.SEND_SQL): one round
        trip to PostgreSQL per message. A stale case is re-read and checked again; a case that keeps
        changing under us falls back to the locking transaction.
        """
        r = rules.parse_room(room)
        rules.check_body(body)
        fresh = False
        for _ in range(3):
            case, from_memory = await self._case_at_hand(case_id, fresh)
            fresh = True
            try:
                rules.check_write(case, actor, r, body)
            except HelplineError:
                if from_memory:
                    continue    # our copy may predate a join or an invitation: judge on a fresh one
                raise
            if self._texted(case, r):
                break     # the message and its texts commit together: the locking transaction
            party = case.party(actor.id)
            try:
                done = await self.chat.send(dict(
                    case_id=case.id, version=case.version, room=r.name, sender_id=actor.id,
                    sender_name=party.name if party else actor.name, sender_role=actor.role,
                    client_msg_id=client_msg_id, body=body, via=via))
            except asyncpg.UniqueViolationError:  # a concurrent re-send of this client_msg_id committed first
                return await self._sent_before(case_id, r.name, actor.id, client_msg_id)
            if done is None:
                continue      # the case changed since we read it
            msg, new = done
            if new:
                await self._announce(case, r, msg)
            return msg
        return await self._send_locked(actor, case_id, r, client_msg_id, body, via)

    async def _sent_before(self, case_id: str, room: str, sender_id: str, client_msg_id: str) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            again = await store.message_by_client_id(conn, case_id, room, sender_id, client_msg_id)
        if again is None:
            raise Unavailable("message not stored; send it again")
        return again

    @staticmethod
    def _texted(case: Case, r: rules.Room) -> bool:
        """Whether a message in this room goes out by SMS too (the joint room, with a party by SMS)."""
        return r.party_id is None and any(p.via == "sms" for p in case.parties)

    async def _announce(self, case: Case, r: rules.Room, msg: dict[str, Any]) -> None:
        """After commit: the room's doorbell."""
        out = Outbox()
        out.add(self.keys.room_channel(case.id, r.name), {"type": "chat.message", "message": msg})
        await self.publish(out.items)

    async def _send_locked(self, actor: Account, case_id: str, r: rules.Room, client_msg_id: str, body: str,
                           via: str) -> dict[str, Any]:
        """The slow, sure way: lock the case row, check, take the seq, insert, all in one transaction."""
        async with self.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    case = await store.lock_case(conn, case_id, share=True)
                    if case is None:
                        raise NotFound("no such case")
                    rules.check_write(case, actor, r, body)
                    again = await store.message_by_client_id(conn, case_id, r.name, actor.id, client_msg_id)
                    if again is not None:
                        return again
                    party = case.party(actor.id)
                    seq = await store.next_seq(conn, case_id, r.name)
                    msg = await store.insert_message(
                        conn, case_id=case_id, room=r.name, seq=seq, sender_id=actor.id,
                        sender_name=party.name if party else actor.name, sender_role=actor.role,
                        client_msg_id=client_msg_id, body=body, via=via)
                    if self._texted(case, r):
                        # someone's words reach a phone only if they are verified (issue 20 #1)
                        me = await store.account(conn, actor.id)
                        verified = bool(me and me["verified"])
                        await self._sms_parties(conn, case, CaseText.CHAT, skip=actor.id,
                                                sender=msg["sender"]["name"] if verified else "",
                                                body=msg["body"] if verified else "", public_url=self.public_url)
            except asyncpg.UniqueViolationError:
                return await self._sent_before(case_id, r.name, actor.id, client_msg_id)
        self._remember(case)
        await self._announce(case, r, msg)
        return msg

    async def settled_agreement(self, actor: Account, case_id: str) -> views.AgreementDoc:
        """The settlement record of a settled case as a document (mediation/agreement_pdf.py makes the
        PDF); for its participants and admins (rules.check_agreement_read). Staff reading it: audited."""
        async with self.pool.acquire() as conn:
            case = await store.get_case(conn, case_id)
            if case is None:
                raise NotFound("no such case")
            rules.check_agreement_read(case, actor)
            rec = await store.settlement(conn, case_id)
            if rec is None:      # settled in the same transaction as its record: only a broken database
                raise NotFound("no settlement record for this case")
            if actor.role != "resident":
                await audit.record(conn, actor.id, actor.role, "read", "agreement", case_id)
        sigs = [views.DocSignature(s.get("name") or "", s.get("via") or "ws", datetime.fromisoformat(s["signed_at"]))
                for s in rec["signatures"]]   # jsonb: decoded by the pool (infra/db.py)
        return views.agreement_doc(case, rec["text"], rec["sha256"], rec["settled_at"], sigs)

    async def case_for(self, actor: Account, case_id: str) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            case = await store.get_case(conn, case_id)
        if case is None:
            raise NotFound("no such case")
        return views.view_for(case, actor.id, actor.role)


def _now() -> datetime:
    return datetime.now(UTC)
