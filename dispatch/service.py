"""The dispatch service: carries out the lifecycle's decisions.

Every change runs in one PostgreSQL transaction that first locks the incident
row, so accepts, expiries, declines, cancels and a dispatcher's assign on the
same incident are serialised: exactly one responder ends up assigned. The
events are published on Redis only after the transaction commits.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import asyncpg
import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from dispatch import lifecycle as lc
from dispatch import store
from infra import audit, ratelimit
from infra.config import Config
from infra.errors import BadRequest, Conflict, Forbidden, NotFound, RateLimited
from infra.events import Outbox
from infra.identity import Account
from infra.keys import Keys

log = logging.getLogger(__name__)

GEO_COUNT = 25
_encode = msgspec.json.Encoder().encode

# One round trip before a report: count it against the reporter's limit (INCR, with the window's
# expiry set by the first), and unless that is exceeded, the nearby responders with the skill and
# whether each is online. Returns {count, id1, dist1, online1, ...}. The online keys are named inside
# the script (not in KEYS): fine on one Redis, which is what helpline runs on.
NEARBY_LUA = """
local out = {0}
if ARGV[7] ~= '' then
    local n = redis.call('INCR', KEYS[2])
    if n == 1 then redis.call('EXPIRE', KEYS[2], ARGV[6]) end
    out[1] = n
    if n > tonumber(ARGV[7]) then return out end
end
if ARGV[1] == '' then return out end
local hits = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[1], ARGV[2], 'BYRADIUS', ARGV[3], 'km',
                        'ASC', 'COUNT', ARGV[4], 'WITHDIST')
for _, h in ipairs(hits) do
    out[#out + 1] = h[1]
    out[#out + 1] = h[2]
    out[#out + 1] = redis.call('EXISTS', ARGV[5] .. h[1])
end
return out
"""


class DispatchService:
    def __init__(self, cfg: Config, pool: asyncpg.Pool, redis: aioredis.Redis, keys: Keys,
                 publish: Callable[[list[tuple[str, str]]], Awaitable[None]], metrics: Any = None) -> None:
        self.cfg, self.pool, self.redis, self.keys = cfg, pool, redis, keys
        self.publish, self.metrics = publish, metrics
        self.dcfg = cfg.dispatch
        # called as hook(conn, incident_view) inside the transaction of every incident change
        # (e.g. the SMS channel queues a status text in the same commit)
        self.change_hooks: list[Callable[[Any, dict[str, Any]], Awaitable[None]]] = []
        # channels whose reports must run the change hooks in their transaction (the SMS feature adds
        # "sms"); reports from other channels take the one-statement path (store.REPORT_SQL)
        self.hooked_channels: set[str] = set()
        self._nearby = redis.register_script(NEARBY_LUA)

    # ---------------------------------------------------------------- events
    async def _incident_changed(self, conn: Any, out: Outbox, row: Any, hooks: bool = True) -> dict[str, Any]:
        """Queue incident.updated for everyone concerned; run the change hooks inside the transaction."""
        inc = store.incident_view(row)
        for hook in self.change_hooks if hooks else ():
            await hook(conn, inc)
        channels = [self.keys.account_channel(inc["reporter"]["id"]), self.keys.dispatch_channel]
        if inc["responder"]:
            channels.append(self.keys.account_channel(inc["responder"]["id"]))
        out.add_to(channels, {"type": "incident.updated", "incident": inc})
        if self.metrics:
            self.metrics.incident_status(inc["status"])
        return inc

    def _responder_changed(self, out: Outbox, row: Any) -> dict[str, Any]:
        resp = store.responder_view(row)
        out.add(self.keys.dispatch_channel, {"type": "responder.updated", "responder": resp})
        return resp

    def _withdrawn(self, out: Outbox, offer: Any, reason: str) -> None:
        out.add(self.keys.account_channel(str(offer["responder_id"])),
                {"type": "offer.withdrawn", "offer_id": str(offer["id"]), "reason": reason})
        if self.metrics:
            self.metrics.offer_outcome(reason)

    async def _commit(self, out: Outbox) -> None:
        await self.publish(out.items)

    # ---------------------------------------------------------------- matching
    async def _candidates(self, skill: str, lat: float | None, lon: float | None) -> list[lc.Candidate] | None:
        """Nearby on-duty responders with the skill, from the live index; None if Redis is down."""
        if lat is None or lon is None:
            return []
        try:
            return await self._nearby_counted(skill, lat, lon, None)
        except RedisError as e:
            log.warning("GEO search failed, incident stays queued for the sweeper: %s", e)
            return None

    async def _nearby_counted(self, skill: str, lat: float | None, lon: float | None,
                              reporter_id: str | None) -> list[lc.Candidate]:
        """Count a report against its reporter's limit (if given) and search nearby, in one round trip.

        Raises RateLimited past the limit, RedisError if Redis is down."""
        limit, window = ratelimit.ACCOUNT_LIMITS["help.request"]
        geo = self.keys.geo(skill)
        placed = lat is not None and lon is not None     # no position: count only, no search
        flat = await self._nearby(
            keys=[geo, self.keys.rate("help.request", reporter_id) if reporter_id else geo],
            args=[lon if placed else "", lat if placed else "", self.dcfg.radius_km, GEO_COUNT,
                  self.keys.online(""), window, limit if reporter_id else ""])
        if reporter_id and int(flat[0]) > limit:
            raise RateLimited("too many help.request from this account; wait a few minutes")
        out = []
        for k in range(1, len(flat), 3):
            rid = flat[k].decode() if isinstance(flat[k], bytes) else flat[k]
            out.append(lc.Candidate(rid, float(flat[k + 1]), "unknown", online=bool(flat[k + 2])))
        return out

    async def _advance(self, conn: Any, row: Any, candidates: list[lc.Candidate], out: Outbox,
                       actor_id: str | None) -> Any:
        """Offer the incident to the next candidate or escalate it; the incident row after."""
        inc = store.rules_view(row)
        statuses, before = await store.candidate_states(conn, inc.id, [c.responder_id for c in candidates])
        pool = [lc.Candidate(c.responder_id, c.distance_km, statuses.get(c.responder_id, "off_duty"), c.online)
                for c in candidates]
        while True:
            decision = lc.next_step(inc, pool, before, radius_km=self.dcfg.radius_km,
                                    max_offers=self.dcfg.max_offers, now=datetime.now(timezone.utc),
                                    offer_timeout_s=self.dcfg.offer_timeout_s)
            if isinstance(decision, lc.Escalate):
                row = await store.update_incident(conn, inc.id, status="escalated",
                                                  event=("escalated", actor_id, {"reason": decision.reason}))
                await self._incident_changed(conn, out, row)
                if self.metrics:
                    self.metrics.offer_outcome("escalated")
                return row
            offer = await store.claim_and_offer(conn, inc.id, decision.responder_id, decision.attempt,
                                                decision.expires_at)
            if offer is not None:
                break
            before.add(decision.responder_id)  # taken by a concurrent dispatch: try the next one
        row = await store.update_incident(
            conn, inc.id, status="offered", offer_attempts=decision.attempt,
            event=("offered", actor_id, {"responder_id": decision.responder_id, "offer_id": str(offer["id"]),
                                         "attempt": decision.attempt}))
        inc_view = await self._incident_changed(conn, out, row)
        out.add(self.keys.account_channel(decision.responder_id),
                {"type": "offer", "offer_id": str(offer["id"]), "incident": inc_view,
                 "expires_at": store.iso(offer["expires_at"])})
        resp = await store.get_responder(conn, decision.responder_id)
        if resp is not None:
            self._responder_changed(out, resp)
        if self.metrics and decision.attempt == 1:
            self.metrics.press_to_offer.observe(max(0.0, (offer["created_at"] - row["created_at"]).total_seconds()))
        return row

    # ---------------------------------------------------------------- residents
    async def request_help(self, who: Account, *, request_id: str, category: str, lat: float | None,
                           lon: float | None, accuracy_m: float | None, note: str, channel: str
                           ) -> tuple[dict[str, Any], bool]:
        """(incident, created). Acknowledged only after commit; the same request_id returns the same incident."""
        t0 = time.perf_counter()
        cat = self.dcfg.categories.get(category)
        if cat is None:
            raise BadRequest(f"category must be one of {', '.join(self.dcfg.categories)}")
        try:   # the reporter's limit (every channel) and the nearby responders: one Redis round trip
            candidates: list[lc.Candidate] | None = await self._nearby_counted(cat.skill, lat, lon, who.id)
        except RedisError as e:   # the limiter lets help through; the sweeper matches it once Redis is back
            log.warning("Redis unavailable at a report, incident stays queued for the sweeper: %s", e)
            candidates = None if lat is not None and lon is not None else []
        if channel in self.hooked_channels:
            return await self._request_help_hooked(who, request_id, category, cat, lat, lon, accuracy_m, note,
                                                   channel, candidates)
        now = datetime.now(timezone.utc)
        plan: lc.OfferFirstAvailable | lc.Escalate | None = None
        if candidates is not None:
            new = lc.Incident(id="", status=lc.Status.QUEUED, reporter_id=who.id, responder_id=None,
                              offer_attempts=0, has_position=lat is not None and lon is not None,
                              accuracy_m=accuracy_m)
            plan = lc.plan_first_offer(new, candidates, radius_km=self.dcfg.radius_km,
                                       max_offers=self.dcfg.max_offers, now=now,
                                       offer_timeout_s=self.dcfg.offer_timeout_s)
        offering = isinstance(plan, lc.OfferFirstAvailable)
        try:
            async with self.pool.acquire() as conn:
                row = await store.report(
                    conn, reporter_id=who.id, request_id=request_id, category=category, skill=cat.skill,
                    priority=cat.priority, lat=lat, lon=lon, accuracy_m=accuracy_m, note=note, channel=channel,
                    offer_to=list(plan.responder_ids) if offering else [],  # type: ignore[union-attr]
                    otherwise="queued" if plan is None else "escalated",
                    reason=plan.reason if isinstance(plan, lc.Escalate) else "no_candidate",
                    attempt=plan.attempt if offering else 1,  # type: ignore[union-attr]
                    offer_id=str(uuid.uuid4()),
                    expires_at=plan.expires_at if offering else now)  # type: ignore[union-attr]
        except asyncpg.UniqueViolationError:   # this request_id was seen before (a retry, or a concurrent one)
            async with self.pool.acquire() as conn:
                existing = await store.incident_by_request(conn, who.id, request_id)
            if existing is None:
                raise
            return store.incident_view(existing), False
        out, offer = Outbox(), Outbox()
        inc = await self._incident_changed(None, out, row, hooks=False)
        if row["offer_id"] is not None:   # the offer rings first: it is what the seconds are counted by
            offer.add(self.keys.account_channel(str(row["r_account_id"])),
                      {"type": "offer", "offer_id": str(row["offer_id"]), "incident": inc,
                       "expires_at": store.iso(row["offer_expires_at"])})
            out.add(self.keys.dispatch_channel,
                    {"type": "responder.updated", "responder": store.responder_view(row, prefix="r_")})
            out.items[:0] = offer.items
        elif row["status"] == "escalated" and self.metrics:
            self.metrics.offer_outcome("escalated")
        await self._commit(out)
        if self.metrics and row["offer_id"] is not None:   # from the request reaching us to its offer's doorbell
            self.metrics.press_to_offer.observe(time.perf_counter() - t0)
        if self.metrics:
            self.metrics.incidents_created.labels(channel=channel).inc()
        return inc, True

    async def _request_help_hooked(self, who: Account, request_id: str, category: str, cat: Any,
                                   lat: float | None, lon: float | None, accuracy_m: float | None, note: str,
                                   channel: str, candidates: list[lc.Candidate] | None
                                   ) -> tuple[dict[str, Any], bool]:
        """A report whose channel has change hooks: insert, hooks and first offer in one transaction."""
        out = Outbox()
        async with self.pool.acquire() as conn, conn.transaction():
            row = await store.insert_incident(
                conn, reporter_id=who.id, request_id=request_id, category=category, skill=cat.skill,
                priority=cat.priority, lat=lat, lon=lon, accuracy_m=accuracy_m, note=note, channel=channel)
            if row is None:  # this request_id was seen before (a retry, or a concurrent duplicate)
                existing = await store.incident_by_request(conn, who.id, request_id)
                assert existing is not None
                return store.incident_view(existing), False
            # the new row is ours alone until commit: no lock needed
            if candidates is not None:
                row = await self._advance(conn, row, candidates, out, None)
            else:
                await self._incident_changed(conn, out, row)
        await self._commit(out)
        if self.metrics:
            self.metrics.incidents_created.labels(channel=channel).inc()
        return store.incident_view(row), True

    async def cancel(self, who: Account, incident_id: str) -> dict[str, Any]:
        out = Outbox()
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._lock(conn, incident_id)
            lc.check_cancel(store.rules_view(row), who.id)
            row = await self._finish(conn, row, lc.Status.CANCELLED, who.id, out, "cancelled")
        await self._commit(out)
        return store.incident_view(row)

    async def _finish(self, conn: Any, row: Any, status: lc.Status, actor_id: str, out: Outbox, kind: str,
                      **data: Any) -> Any:
        """End an incident: withdraw a pending offer, free its responder, set the final status."""
        offer = await store.pending_offer_for_incident(conn, str(row["id"]))
        if offer is not None:
            await store.end_offer(conn, str(offer["id"]), "withdrawn", "cancelled")
            self._withdrawn(out, offer, "cancelled")
            resp = await store.set_responder_status(conn, str(offer["responder_id"]), "available", ("offered",))
            if resp is not None:
                self._responder_changed(out, resp)
        if row["responder_id"] is not None:
            resp = await store.set_responder_status(conn, str(row["responder_id"]), "available", ("busy",))
            if resp is not None:
                self._responder_changed(out, resp)
        row = await store.update_incident(conn, str(row["id"]), status=str(status),
                                          disposition=data.get("disposition"), event=(kind, actor_id, data))
        await self._incident_changed(conn, out, row)
        return row

    async def _lock(self, conn: Any, incident_id: str) -> Any:
        row = await store.lock_incident(conn, incident_id)
        if row is None:
            raise NotFound("no such incident")
        return row

    # ---------------------------------------------------------------- responders
    async def duty_start(self, who: Account, lat: float, lon: float, skills: list[str] | None) -> dict[str, Any]:
        out = Outbox()
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("INSERT INTO responders (account_id) VALUES ($1) ON CONFLICT DO NOTHING", who.id)
            old = await conn.fetchrow("SELECT * FROM responders WHERE account_id = $1 FOR UPDATE", who.id)
            new_skills = sorted(set(skills)) if skills is not None else list(old["skills"])
            status = "available" if old["status"] == "off_duty" else old["status"]
            await conn.execute("UPDATE responders SET status = $2, lat = $3, lon = $4, skills = $5, updated_at = now()"
                               " WHERE account_id = $1", who.id, status, lat, lon, new_skills)
            row = await store.get_responder(conn, who.id)
            resp = self._responder_changed(out, row)
        await self._index(who.id, lat, lon, new_skills, old_skills=list(old["skills"]))
        await self._commit(out)
        return resp

    async def _index(self, responder_id: str, lat: float | None, lon: float | None, skills: list[str],
                     old_skills: list[str] = ()) -> None:  # type: ignore[assignment]
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for s in set(old_skills) - set(skills):
                    pipe.zrem(self.keys.geo(s), responder_id)
                if lat is not None and lon is not None:
                    for s in skills:
                        pipe.geoadd(self.keys.geo(s), (lon, lat, responder_id))
                else:
                    for s in skills:
                        pipe.zrem(self.keys.geo(s), responder_id)
                await pipe.execute()
        except RedisError as e:
            log.warning("GEO index update for %s failed (rebuilt on reconnect): %s", responder_id, e)

    async def rebuild_index(self) -> int:
        """Refill the GEO index from PostgreSQL (after a Redis restart); returns responders indexed.

        Raises RedisError if Redis is not (yet) taking writes, so the caller can try again.
        """
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT account_id, skills, lat, lon FROM responders"
                                    " WHERE status <> 'off_duty' AND lat IS NOT NULL")
        async with self.redis.pipeline(transaction=False) as pipe:
            for r in rows:
                for skill in r["skills"]:
                    pipe.geoadd(self.keys.geo(skill), (r["lon"], r["lat"], str(r["account_id"])))
            if rows:
                await pipe.execute()
        return len(rows)

    async def duty_end(self, who: Account) -> dict[str, Any]:
        offer = None
        async with self.pool.acquire() as conn:
            row = await store.get_responder(conn, who.id)
            if row is None or row["status"] == "off_duty":
                raise Conflict("you are not on duty")
            if row["status"] == "busy":
                raise Conflict("finish your current incident (or ask a dispatcher) before going off duty")
            offer = await store.pending_offer_for_responder(conn, who.id)
        if offer is not None:
            await self.end_offer(str(offer["id"]), "declined", "off_duty", who.id)
        out = Outbox()
        async with self.pool.acquire() as conn, conn.transaction():
            row = await store.set_responder_status(conn, who.id, "off_duty", ("available", "offered"))
            if row is None:
                raise Conflict("your status changed meanwhile; try again")
            resp = self._responder_changed(out, row)
        await self._index(who.id, None, None, list(row["skills"]), old_skills=list(row["skills"]))
        await self._commit(out)
        return resp

    async def location_update(self, who: Account, lat: float, lon: float) -> None:
        out = Outbox()
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow("UPDATE responders SET lat = $2, lon = $3, updated_at = now()"
                                      " WHERE account_id = $1 AND status <> 'off_duty' RETURNING skills",
                                      who.id, lat, lon)
            if row is None:
                raise Conflict("start duty before sending your location")
            resp = await store.get_responder(conn, who.id)
        self._responder_changed(out, resp)
        await self._index(who.id, lat, lon, list(row["skills"]))
        await self._commit(out)

    async def accept(self, who: Account, offer_id: str) -> dict[str, Any]:
        out = Outbox()
        async with self.pool.acquire() as conn:
            offer = await conn.fetchrow("SELECT * FROM offers WHERE id = $1", offer_id)
            if offer is None:
                raise NotFound("no such offer")
            if str(offer["responder_id"]) != who.id:
                raise Forbidden("this offer is not yours")
            async with conn.transaction():
                row = await self._lock(conn, str(offer["incident_id"]))
                offer = await conn.fetchrow("SELECT *, expires_at <= now() AS expired FROM offers WHERE id = $1",
                                            offer_id)
                lc.check_accept(store.rules_view(row), offer["state"], str(offer["responder_id"]), who.id,
                                offer["expired"])
                await store.end_offer(conn, offer_id, "accepted", "accepted")
                resp = await store.set_responder_status(conn, who.id, "busy")
                row = await store.update_incident(conn, str(row["id"]), status="assigned", responder_id=who.id,
                                                  event=("assigned", who.id, {"offer_id": offer_id, "by": "accept"}))
                inc = await self._incident_changed(conn, out, row)
                if resp is not None:
                    self._responder_changed(out, resp)
        if self.metrics:
            self.metrics.offer_outcome("accepted")
        await self._commit(out)
        return inc

    async def decline(self, who: Account, offer_id: str) -> None:
        async with self.pool.acquire() as conn:
            offer = await conn.fetchrow("SELECT * FROM offers WHERE id = $1", offer_id)
        if offer is None:
            raise NotFound("no such offer")
        if str(offer["responder_id"]) != who.id:
            raise Forbidden("this offer is not yours")
        if not await self.end_offer(offer_id, "declined", "declined", who.id):
            raise Conflict("the offer is no longer open")

    async def end_offer(self, offer_id: str, state: str, reason: str, actor_id: str | None,
                        only_if_due: bool = False) -> bool:
        """Close a pending offer (declined, expired, withdrawn) and move the incident on.

        False if the offer was no longer pending (someone else handled it), or, with
        only_if_due, if another node holds the incident right now.
        """
        async with self.pool.acquire() as conn:
            pre = await conn.fetchrow("SELECT o.incident_id, i.skill, i.lat, i.lon FROM offers o"
                                      " JOIN incidents i ON i.id = o.incident_id WHERE o.id = $1", offer_id)
        if pre is None:
            return False
        candidates = await self._candidates(pre["skill"], pre["lat"], pre["lon"])
        out = Outbox()
        async with self.pool.acquire() as conn, conn.transaction():
            row = await store.lock_incident(conn, str(pre["incident_id"]), skip_locked=only_if_due)
            if row is None:
                return False
            offer = await conn.fetchrow("SELECT *, expires_at <= now() AS due FROM offers WHERE id = $1", offer_id)
            if offer["state"] != "pending" or (only_if_due and not offer["due"]):
                return False
            await store.end_offer(conn, offer_id, state, reason)
            await store.log_event(conn, str(row["id"]), actor_id, f"offer_{state}",
                                  responder_id=str(offer["responder_id"]), offer_id=offer_id, reason=reason)
            if reason != "declined":
                self._withdrawn(out, offer, reason)
            elif self.metrics:
                self.metrics.offer_outcome("declined")
            resp = await store.set_responder_status(conn, str(offer["responder_id"]), "available", ("offered",))
            if resp is not None:
                self._responder_changed(out, resp)
            if candidates is None:
                row = await store.update_incident(conn, str(row["id"]), status="queued")
                await self._incident_changed(conn, out, row)
            else:
                await self._advance(conn, row, candidates, out, None)
        await self._commit(out)
        return True

    async def progress(self, who: Account, incident_id: str, status: str, note: str | None) -> dict[str, Any]:
        out = Outbox()
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._lock(conn, incident_id)
            to = lc.check_progress(store.rules_view(row), who.id, status)
            row = await store.update_incident(conn, incident_id, status=str(to),
                                              event=(str(to), who.id, {"note": note} if note else {}))
            if to == lc.Status.RESOLVED:
                resp = await store.set_responder_status(conn, who.id, "available", ("busy",))
                if resp is not None:
                    self._responder_changed(out, resp)
            inc = await self._incident_changed(conn, out, row)
        await self._commit(out)
        return inc

    # ---------------------------------------------------------------- dispatchers
    async def assign(self, who: Account, incident_id: str, responder_id: str) -> dict[str, Any]:
        out = Outbox()
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._lock(conn, incident_id)
            resp = await conn.fetchrow("SELECT status FROM responders WHERE account_id = $1 FOR UPDATE", responder_id)
            status = resp["status"] if resp else None
            pending = await store.pending_offer_for_incident(conn, incident_id)
            if status == "offered" and not (pending and str(pending["responder_id"]) == responder_id):
                raise Conflict("that responder is answering another offer; try again in a moment")
            lc.check_assign(store.rules_view(row), "available" if status == "offered" else status)
            if pending is not None:
                await store.end_offer(conn, str(pending["id"]), "withdrawn", "taken")
                self._withdrawn(out, pending, "taken")
                if str(pending["responder_id"]) != responder_id:
                    freed = await store.set_responder_status(conn, str(pending["responder_id"]), "available",
                                                             ("offered",))
                    if freed is not None:
                        self._responder_changed(out, freed)
            busy = await store.set_responder_status(conn, responder_id, "busy")
            row = await store.update_incident(
                conn, incident_id, status="assigned", responder_id=responder_id,
                event=("assigned", who.id, {"responder_id": responder_id, "by": "dispatcher"}))
            inc = await self._incident_changed(conn, out, row)
            if busy is not None:
                self._responder_changed(out, busy)
        await self._commit(out)
        return inc

    async def close(self, who: Account, incident_id: str, disposition: str) -> dict[str, Any]:
        out = Outbox()
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._lock(conn, incident_id)
            status = lc.check_close(store.rules_view(row), disposition)
            row = await self._finish(conn, row, status, who.id, out, "closed", disposition=disposition)
        await self._commit(out)
        return store.incident_view(row)

    async def locate(self, who: Account, incident_id: str, lat: float, lon: float) -> dict[str, Any]:
        """A dispatcher sets the position of an incident that has none (or a wrong one); matching runs again."""
        pre = await self._peek(incident_id)
        candidates = await self._candidates(pre["skill"], lat, lon)
        out = Outbox()
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._lock(conn, incident_id)
            if row["status"] not in (lc.Status.QUEUED, lc.Status.ESCALATED):
                raise Conflict(f"incident is {row['status']}; only queued or escalated incidents can be relocated")
            # the dispatcher's position is exact: a rough accuracy the resident's device reported no longer applies
            row = await store.update_incident(conn, incident_id, lat=lat, lon=lon, accuracy_m=None,
                                              status="queued", offer_attempts=0,
                                              event=("located", who.id, {"lat": lat, "lon": lon}))
            if candidates is None:
                await self._incident_changed(conn, out, row)
            else:
                row = await self._advance(conn, row, candidates, out, who.id)
        await self._commit(out)
        return store.incident_view(row)

    async def add_note(self, actor_id: str | None, incident_id: str, text: str, via: str) -> dict[str, Any]:
        """Append a follow-up (e.g. an SMS from the reporter) to an open incident's note."""
        text = text.strip()
        if not text:
            raise BadRequest("empty note")
        out = Outbox()
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._lock(conn, incident_id)
            if row["status"] in lc.FINAL:
                raise Conflict(f"incident is already {row['status']}")
            note = (row["note"] + "\n" + text) if row["note"] else text
            row = await store.update_incident(conn, incident_id, note=note[-4000:],
                                              event=("note_added", actor_id, {"text": text, "via": via}))
            await self._incident_changed(conn, out, row)
        await self._commit(out)
        return store.incident_view(row)

    async def _peek(self, incident_id: str) -> Any:
        async with self.pool.acquire() as conn:
            row = await store.get_incident(conn, incident_id)
        if row is None:
            raise NotFound("no such incident")
        return row

    async def snapshot(self, who: Account | None = None) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            if who is not None:
                await audit.record(conn, who.id, who.role, "watch", "queue", None)
            return {"incidents": await store.open_incidents(conn), "responders": await store.on_duty(conn)}

    async def incident_with_events(self, who: Account, incident_id: str) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            row = await store.get_incident(conn, incident_id)
            if row is None:
                raise NotFound("no such incident")
            is_reporter = str(row["reporter_id"]) == who.id
            allowed = (who.role in ("dispatcher", "admin") or is_reporter
                       or (row["responder_id"] is not None and str(row["responder_id"]) == who.id))
            if not allowed:
                raise Forbidden("not your incident")
            if not is_reporter:
                await audit.record(conn, who.id, who.role, "read", "incident", incident_id)
            return {"incident": store.incident_view(row), "events": await store.events(conn, incident_id)}

    async def welcome_state(self, who: Account) -> dict[str, Any]:
        """What a (re)connecting client needs to pick up where it was."""
        async with self.pool.acquire() as conn:
            if who.role == "resident":
                rows = await conn.fetch(store.INCIDENT_SELECT + " WHERE i.reporter_id = $1 AND i.status NOT IN"
                                        " ('resolved','cancelled') ORDER BY i.created_at", who.id)
            elif who.role == "responder":
                rows = await conn.fetch(store.INCIDENT_SELECT + " WHERE i.responder_id = $1 AND i.status IN"
                                        " ('assigned','en_route','on_scene') ORDER BY i.created_at", who.id)
            else:
                rows = []
            offer = None
            if who.role == "responder":
                o = await store.pending_offer_for_responder(conn, who.id)
                if o is not None:
                    inc = await store.get_incident(conn, str(o["incident_id"]))
                    offer = {"offer_id": str(o["id"]), "incident": store.incident_view(inc),
                             "expires_at": store.iso(o["expires_at"])}
            responder = await store.get_responder(conn, who.id) if who.role == "responder" else None
        state: dict[str, Any] = {"open_incidents": [store.incident_view(r) for r in rows], "offer": offer}
        if responder is not None:
            state["responder"] = store.responder_view(responder)
        return state

    # ---------------------------------------------------------------- background work (any node)
    async def expire_due(self, limit: int = 100) -> int:
        """Expire offers past their deadline; several nodes may run this at once."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT id FROM offers WHERE state = 'pending' AND expires_at <= now()"
                                    " ORDER BY expires_at LIMIT $1", limit)
        n = 0
        for r in rows:
            if await self.end_offer(str(r["id"]), "expired", "expired", None, only_if_due=True):
                n += 1
        return n

    async def sweep_orphans(self, limit: int = 100) -> int:
        """Dispatch queued incidents that no node carried on (its node died, or Redis was down)."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT id, skill, lat, lon FROM incidents WHERE status = 'queued'"
                " AND updated_at <= now() - make_interval(secs => $1) ORDER BY priority, created_at LIMIT $2",
                float(self.dcfg.orphan_after_s), limit)
        n = 0
        for r in rows:
            candidates = await self._candidates(r["skill"], r["lat"], r["lon"])
            if candidates is None:
                break
            out = Outbox()
            async with self.pool.acquire() as conn, conn.transaction():
                row = await store.lock_incident(conn, str(r["id"]), skip_locked=True)
                if row is None or row["status"] != "queued":
                    continue
                await self._advance(conn, row, candidates, out, None)
            await self._commit(out)
            n += 1
        return n

    async def responder_gone(self, responder_id: str) -> None:
        """The responder's last connection closed: an offer waiting on them moves on."""
        async with self.pool.acquire() as conn:
            offer = await store.pending_offer_for_responder(conn, responder_id)
        if offer is not None:
            await self.end_offer(str(offer["id"]), "withdrawn", "disconnected", responder_id)
