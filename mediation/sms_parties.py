"""Parties who take part by SMS: joining with a texted code, their open cases, signing with their own code.

A mixin of MediationService (mediation/service.py). Every code texted in is counted per phone
before it is looked up (mediation/guard.py), and given back when it matched: guessing gains
nothing, and a party texting an eight-letter word now and then is not locked out of the real
code. Each SMS party of an agreement has a signing code of their own (agreement_sign_codes).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from infra.errors import RateLimited
from infra.identity import Account
from mediation import store
from mediation.codes import CODE_LENGTHS, normalise_code

if TYPE_CHECKING:
    import asyncpg

    from mediation.guard import Guard


class SmsParties:
    pool: asyncpg.Pool
    guard: Guard

    async def join(self, actor: Account, code: str, via: str = "ws", remote: str | None = None) -> dict[str, Any]:
        raise NotImplementedError

    async def join_by_sms(self, phone: str, code: str) -> tuple[dict[str, Any], Account] | None:
        """Join the case of this code as the phone's account; None if there is no such code (or the
        phone is past its guesses: it is told nothing more than for a wrong code)."""
        code = normalise_code(code)
        if len(code) not in CODE_LENGTHS or not await self.guard.sms_guess("join", phone):
            return None
        async with self.pool.acquire() as conn:
            hit = await store.case_of_code(conn, code)
            if hit is None:
                return None
            await self.guard.sms_refund("join", phone)
            async with conn.transaction():
                acc = await store.resident_for_phone(conn, phone, await store.party_name(conn, *hit))
        actor = Account(str(acc["id"]), acc["role"], acc["name"])
        return await self.join(actor, code, via="sms"), actor

    async def sms_cases(self, phone: str) -> list[tuple[str, Account]]:
        async with self.pool.acquire() as conn:
            rows = await store.sms_cases_of_phone(conn, phone)
        return [(str(r["id"]), Account(str(r["account_id"]), r["role"], r["name"])) for r in rows]

    async def agreement_for_code(self, phone: str, cases: list[tuple[str, Account]], code: str
                                 ) -> tuple[str, str, bool] | None:
        """(case id, agreement id, whether it is the current proposal) for this phone's own sign code.
        RateLimited past the phone's wrong sign codes."""
        if not await self.guard.sms_guess("sign", phone):
            raise RateLimited("too many wrong sign codes; try again in an hour")
        async with self.pool.acquire() as conn:
            hit = await store.agreement_of_sign_code(conn, [(c, a.id) for c, a in cases], code)
        if hit is not None:
            await self.guard.sms_refund("sign", phone)
        return hit
