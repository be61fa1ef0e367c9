"""SQL of the agency directory (issue 15, contract §10 `agencies.list`).

An agency is an account of role `agency` (not disabled) with its `agency_type`, display name (the account's
name), contact phone and the grids it covers (account_grids). Asked for a case, the agencies covering the
case's grid or one of its ancestors (grids.path holds the codes from the district down to the grid itself)
come first, then the rest; within each, by name.
"""
from __future__ import annotations

from typing import Any

from infra.agency_types import AgencyType
from infra.db import Conn

LIMIT = 200

LIST_SQL = """
WITH case_path AS (
    SELECT g.path FROM cases c JOIN grids g ON g.code = c.grid_code WHERE c.id = $3::uuid
)
SELECT a.id, a.name, COALESCE(a.agency_type, 'other') AS agency_type, a.phone,
       COALESCE(array_agg(ag.code ORDER BY ag.code) FILTER (WHERE ag.code IS NOT NULL), '{}') AS grids,
       COALESCE(bool_or(ag.code = ANY(cp.path)), false) AS covers
FROM accounts a LEFT JOIN account_grids ag ON ag.account_id = a.id LEFT JOIN case_path cp ON true
WHERE a.role = 'agency' AND NOT a.disabled
  AND ($1::text IS NULL OR COALESCE(a.agency_type, 'other') = $1)
  AND ($2::text IS NULL OR strpos(lower(a.name), lower($2)) > 0)
GROUP BY a.id
ORDER BY covers DESC, lower(a.name), a.id
LIMIT $4
"""


async def agencies(conn: Conn, kind: AgencyType | None, q: str | None, case_id: str | None) -> list[dict[str, Any]]:
    """The directory's agencies of this type, whose name holds `q` (any case), covering `case_id`'s grid first."""
    rows = await conn.fetch(LIST_SQL, str(kind) if kind else None, q, case_id, LIMIT)
    return [{"id": str(r["id"]), "name": r["name"], "agency_type": r["agency_type"], "phone": r["phone"],
             "grids": list(r["grids"]), "covers_case": bool(r["covers"])} for r in rows]


async def case_exists(conn: Conn, case_id: str) -> bool:
    return await conn.fetchval("SELECT 1 FROM cases WHERE id = $1", case_id) is not None


async def agency(conn: Conn, account_id: str) -> tuple[str, str] | None:
    """(name, agency type) of an agency account that is not disabled; None for any other account."""
    r = await conn.fetchrow("SELECT name, COALESCE(agency_type, 'other') AS t FROM accounts"
                            " WHERE id = $1 AND role = 'agency' AND NOT disabled", account_id)
    return (r["name"], r["t"]) if r else None
