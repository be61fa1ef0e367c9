"""Mediation against abuse (issue 20): who may make the city text a stranger, and code guessing.

A case names other parties by phone, and the city texts them an invitation: without limits that is
an SMS pump (texts to premium ranges at the city's cost) and a phishing channel from the number that
also carries emergency status texts. So: phones only in sms.allowed_countries (others refused with a
bad_request naming the field); cases per filer and per address; invitation texts per filer, per
address and per destination (past those the party is kept, not texted: the filer passes the code on).
Join and sign codes are counted per account, address, /24 or /64, code string and phone before they
are evaluated (infra/ratelimit.take), so parallel sockets and fresh accounts gain nothing.
The numbers are in infra/ratelimit.py.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import phonenumbers

from infra import ratelimit as rl
from infra.errors import BadRequest, RateLimited
from infra.keys import Keys


def region_of(e164: str) -> str | None:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164))
    except phonenumbers.NumberParseException:
        return None


def check_destinations(phones: list[str | None], allowed: frozenset[str], field: str = "other_parties[{i}].phone"
                       ) -> None:
    """BadRequest naming the field of the first phone outside the allowed regions."""
    for i, phone in enumerate(phones):
        if phone is not None and region_of(phone) not in allowed:
            raise BadRequest(f"{field.format(i=i)}: only numbers in {', '.join(sorted(allowed))}"
                             " can be invited by text; leave the phone out and give them the join code")


log = logging.getLogger(__name__)
REDIS_WAIT_S = 1.0     # a hung Redis lets the attempt through, as a Redis that is down does (infra/ratelimit.py)


class Guard:
    def __init__(self, redis: Any, keys: Keys) -> None:
        self.redis, self.keys = redis, keys

    async def _take(self, counters: list[tuple[str, rl.Limit]]) -> bool:
        try:
            async with asyncio.timeout(REDIS_WAIT_S):
                return await rl.take(self.redis, counters)
        except TimeoutError:
            log.warning("rate limit counters %s: Redis did not answer; let through", rl.scope_of(counters[0][0]))
            return True

    async def _refund(self, counters: list[tuple[str, rl.Limit]]) -> None:
        try:
            async with asyncio.timeout(REDIS_WAIT_S):
                await rl.refund(self.redis, counters)
        except TimeoutError:
            log.warning("rate limit refund %s: Redis did not answer", rl.scope_of(counters[0][0]))

    async def opening(self, account_id: str, remote: str, phones: list[str | None]) -> set[int]:
        """Count a new case (RateLimited past the limits) and its invitations: the slots that may be texted."""
        ok = await self._take([(self.keys.rate("case.open", account_id), rl.CASES_PER_ACCOUNT),
                               (self.keys.rate("case.open-addr", remote), rl.CASES_PER_ADDRESS)])
        if not ok:
            raise RateLimited("too many cases opened; try again later")
        return {i + 1 for i, phone in enumerate(phones) if phone and await self.may_invite(account_id, remote, phone)}

    async def staff_opening(self, account_id: str, phones: list[str | None]) -> set[int]:
        """Count a case opened for visitors by a staff member (RateLimited past the limit) and its
        invitations: the slots (1-based) that may be texted. Per account, not per address (a counter's
        visitors share it); the per-destination limit is everyone's."""
        if not await self._take([(self.keys.rate("case.open-staff", account_id), rl.STAFF_CASES_PER_ACCOUNT)]):
            raise RateLimited("too many cases opened for visitors; try again later")
        return {i + 1 for i, phone in enumerate(phones) if phone and await self._take([
            (self.keys.rate("invite-staff", account_id), rl.STAFF_INVITES_PER_ACCOUNT),
            (self.keys.rate("invite-to", phone), rl.INVITES_PER_PHONE)])}

    async def may_invite(self, account_id: str, remote: str, phone: str) -> bool:
        """Whether an invitation text may go to this phone (counted when it may)."""
        return await self._take([(self.keys.rate("invite", account_id), rl.INVITES_PER_ACCOUNT),
                                          (self.keys.rate("invite-addr", remote), rl.INVITES_PER_ADDRESS),
                                          (self.keys.rate("invite-to", phone), rl.INVITES_PER_PHONE)])

    def _join_counters(self, account_id: str, remote: str | None, code: str) -> list[tuple[str, rl.Limit]]:
        counters = [(self.keys.rate("case.join", account_id), rl.JOIN_FAILURES_PER_ACCOUNT),
                    (self.keys.rate("join-code", code), rl.JOIN_GUESSES_PER_CODE)]
        if remote is not None:
            counters += [(self.keys.rate("join-addr", remote), rl.JOIN_GUESSES_PER_ADDRESS),
                         (self.keys.rate("join-net", rl.address_prefix(remote)), rl.JOIN_GUESSES_PER_PREFIX)]
        return counters

    async def refund(self, counters: list[tuple[str, rl.Limit]]) -> None:
        await self._refund(counters)

    async def join_attempt(self, account_id: str, remote: str | None, code: str) -> list[tuple[str, rl.Limit]]:
        """Count a join attempt before the code is looked up; RateLimited past any limit.
        Returns the counters to refund if the code exists (then it was no guess)."""
        counters = self._join_counters(account_id, remote, code)
        if not await self._take(counters):
            raise RateLimited("too many wrong join codes; try again later")
        return counters

    async def sms_guess(self, scope: str, phone: str) -> bool:
        """Count a code texted in by a phone (join or sign) before it is looked up; False past the limit."""
        limit = rl.JOIN_GUESSES_PER_PHONE if scope == "join" else rl.SIGN_GUESSES_PER_PHONE
        return await self._take([(self.keys.rate(f"sms-{scope}", phone), limit)])

    async def sms_refund(self, scope: str, phone: str) -> None:
        limit = rl.JOIN_GUESSES_PER_PHONE if scope == "join" else rl.SIGN_GUESSES_PER_PHONE
        await self._refund([(self.keys.rate(f"sms-{scope}", phone), limit)])
