"""SQL for responders and the offers made to them.

Like dispatch/store.py: functions take an open connection, statuses come from
the enums (roster.ResponderStatus, offers.OfferState), never from literals.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from dispatch.offers import Offer, OfferState, Reason, Tier
from dispatch.roster import ResponderStatus
from dispatch.tiers import Member
from infra.db import Conn
from infra.formats import iso

OFF_DUTY, AVAILABLE, OFFERED = ResponderStatus.OFF_DUTY, ResponderStatus.AVAILABLE, ResponderStatus.OFFERED
PENDING = OfferState.PENDING

RESPONDER_SELECT = """
SELECT r.*, a.name, a.phone FROM responders r JOIN accounts a ON a.id = r.account_id
"""


def responder_view(r: asyncpg.Record, prefix: str = "") -> dict[str, Any]:
    """A responder row in wire shape; `prefix` picks columns aliased in a wider row (REPORT_SQL's r_*)."""
    def col(name: str) -> Any:
        return r[prefix + name]
    return {"id": str(col("account_id")), "name": col("name"), "skills": list(col("skills")),
            "status": col("status"), "lat": col("lat"), "lon": col("lon"), "updated_at": iso(col("updated_at"))}


def offer_of(r: asyncpg.Record) -> Offer:
    return Offer(str(r["id"]), str(r["incident_id"]), str(r["responder_id"]), OfferState(r["state"]),
                 r["expires_at"])


# ------------------------------------------------------------------ responders

async def get_responder(conn: Conn, responder_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(RESPONDER_SELECT + " WHERE r.account_id = $1", responder_id)


async def lock_responder(conn: Conn, responder_id: str, create: bool = False) -> asyncpg.Record | None:
    """The responder row, locked (created off duty first if asked)."""
    if create:
        await conn.execute("INSERT INTO responders (account_id) VALUES ($1) ON CONFLICT DO NOTHING", responder_id)
    return await conn.fetchrow("SELECT * FROM responders WHERE account_id = $1 FOR UPDATE", responder_id)


async def save_duty(conn: Conn, responder_id: str, status: ResponderStatus, lat: float | None, lon: float | None,
                    skills: list[str]) -> asyncpg.Record:
    await conn.execute("UPDATE responders SET status = $2, lat = $3, lon = $4, skills = $5, updated_at = now()"
                       " WHERE account_id = $1", responder_id, str(status), lat, lon, skills)
    row = await get_responder(conn, responder_id)
    assert row is not None
    return row


async def move(conn: Conn, responder_id: str, lat: float, lon: float) -> asyncpg.Record | None:
    """A new position for a responder on duty; None if off duty."""
    return await conn.fetchrow(
        "WITH u AS (UPDATE responders SET lat = $2, lon = $3, updated_at = now()"
        f" WHERE account_id = $1 AND status <> '{OFF_DUTY}' RETURNING *)"
        " SELECT u.*, a.name FROM u JOIN accounts a ON a.id = u.account_id", responder_id, lat, lon)


async def set_responder_status(conn: Conn, responder_id: str, status: ResponderStatus,
                               only_if: tuple[ResponderStatus, ...] = ()) -> asyncpg.Record | None:
    """Set the status (optionally only from the given ones); the responder row after, or None if unchanged."""
    if only_if:
        done = await conn.fetchval(
            "UPDATE responders SET status = $2, updated_at = now() WHERE account_id = $1"
            " AND status = ANY($3::text[]) RETURNING 1", responder_id, str(status), [str(s) for s in only_if])
    else:
        done = await conn.fetchval("UPDATE responders SET status = $2, updated_at = now() WHERE account_id = $1"
                                   " RETURNING 1", responder_id, str(status))
    return await get_responder(conn, responder_id) if done else None


async def on_duty(conn: Conn) -> list[dict[str, Any]]:
    rows = await conn.fetch(RESPONDER_SELECT + f" WHERE r.status <> '{OFF_DUTY}' ORDER BY a.name")
    return [responder_view(r) for r in rows]


async def placed_on_duty(conn: Conn) -> list[asyncpg.Record]:
    """Every responder the live GEO index should hold (`phone`: whether they are pageable)."""
    return await conn.fetch("SELECT r.account_id, r.skills, r.lat, r.lon, a.phone IS NOT NULL AS phone"
                            " FROM responders r JOIN accounts a ON a.id = r.account_id"
                            f" WHERE r.status <> '{OFF_DUTY}' AND r.lat IS NOT NULL")


async def candidate_states(conn: Conn, incident_id: str, ids: list[str]) -> tuple[dict[str, str], set[str]]:
    """(status of each candidate, the candidates already offered this incident), in one round trip."""
    rows = await conn.fetch(
        "SELECT r.account_id, r.status, EXISTS (SELECT 1 FROM offers o WHERE o.incident_id = $1"
        " AND o.responder_id = r.account_id) AS offered FROM responders r WHERE r.account_id = ANY($2::uuid[])",
        incident_id, ids)
    return ({str(r["account_id"]): r["status"] for r in rows},
            {str(r["account_id"]) for r in rows if r["offered"]})


# The on-duty responders with the skill who belong to the grid $1 or to its community: the community in its
# path (the grid itself, when it is one), and every grid under it. `codes`: the grids of theirs among those.
GRID_MEMBERS_SQL = f"""
WITH me AS (SELECT path FROM grids WHERE code = $1),
c AS (SELECT g.code FROM grids g, me WHERE g.code = ANY(me.path) AND g.level = 'community'),
area AS (SELECT $1::text AS code UNION SELECT g.code FROM grids g WHERE g.path && ARRAY(SELECT code FROM c))
SELECT r.account_id, r.status, r.lat, r.lon, a.phone IS NOT NULL AS has_phone, array_agg(ag.code) AS codes
FROM area
JOIN account_grids ag ON ag.code = area.code
JOIN responders r ON r.account_id = ag.account_id
JOIN accounts a ON a.id = ag.account_id
WHERE r.status <> '{OFF_DUTY}' AND $2 = ANY(r.skills) AND NOT a.disabled
GROUP BY r.account_id, r.status, r.lat, r.lon, a.phone
"""


async def grid_members(conn: Conn, grid_code: str, skill: str) -> list[Member]:
    """The incident's grid's and community's on-duty workers with the skill (dispatch/tiers.py)."""
    rows = await conn.fetch(GRID_MEMBERS_SQL, grid_code, skill)
    return [Member(str(r["account_id"]), frozenset(r["codes"]), r["status"], r["lat"], r["lon"], r["has_phone"])
            for r in rows]


async def in_a_grid(conn: Conn, responder_id: str) -> bool:
    """Whether the account belongs to some grid (a grid worker may go on duty by SMS without a position)."""
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM account_grids WHERE account_id = $1)",
                                    responder_id))


# ------------------------------------------------------------------ offers

async def offer(conn: Conn, offer_id: str) -> tuple[Offer, datetime] | None:
    """The offer and the database's clock (the one deadlines are judged by)."""
    r = await conn.fetchrow("SELECT *, now() AS db_now FROM offers WHERE id = $1", offer_id)
    return (offer_of(r), r["db_now"]) if r is not None else None


async def pending_for_incident(conn: Conn, incident_id: str) -> Offer | None:
    r = await conn.fetchrow(f"SELECT * FROM offers WHERE incident_id = $1 AND state = '{PENDING}'", incident_id)
    return offer_of(r) if r is not None else None


async def pending_for_responder(conn: Conn, responder_id: str) -> Offer | None:
    r = await conn.fetchrow(f"SELECT * FROM offers WHERE responder_id = $1 AND state = '{PENDING}'", responder_id)
    return offer_of(r) if r is not None else None


async def latest_offer_for(conn: Conn, responder_id: str) -> Offer | None:
    """The responder's most recent offer, whatever its state."""
    r = await conn.fetchrow("SELECT * FROM offers WHERE responder_id = $1 ORDER BY created_at DESC LIMIT 1",
                            responder_id)
    return offer_of(r) if r is not None else None


async def held_offers(conn: Conn, ids: list[str]) -> dict[str, tuple[Offer, int]]:
    """The pending offer each of these responders holds, with its incident's priority."""
    rows = await conn.fetch(f"SELECT o.*, i.priority FROM offers o JOIN incidents i ON i.id = o.incident_id"
                            f" WHERE o.responder_id = ANY($1::uuid[]) AND o.state = '{PENDING}'", ids)
    return {str(r["responder_id"]): (offer_of(r), r["priority"]) for r in rows}


async def due_offers(conn: Conn, limit: int) -> list[str]:
    """Pending offers past their deadline, oldest first."""
    rows = await conn.fetch(f"SELECT id FROM offers WHERE state = '{PENDING}' AND expires_at <= now()"
                            " ORDER BY expires_at LIMIT $1", limit)
    return [str(r["id"]) for r in rows]


async def claim_and_offer(conn: Conn, incident_id: str, responder_id: str, attempt: int,
                          expires_at: datetime, tier: str = Tier.RADIUS) -> asyncpg.Record | None:
    """available → offered and the offer row (with the tier it came from), atomically; None if someone else
    claimed the responder first."""
    return await conn.fetchrow(
        f"""WITH c AS (UPDATE responders SET status = '{OFFERED}', updated_at = now()
                       WHERE account_id = $2 AND status = '{AVAILABLE}' RETURNING account_id)
            INSERT INTO offers (incident_id, responder_id, attempt, expires_at, tier)
            SELECT $1, c.account_id, $3, $4, $5 FROM c RETURNING *""",
        incident_id, responder_id, attempt, expires_at, str(tier))


async def end_offer(conn: Conn, offer_id: str, state: OfferState, reason: Reason) -> None:
    await conn.execute("UPDATE offers SET state = $2, reason = $3, answered_at = now() WHERE id = $1",
                       offer_id, str(state), str(reason))
