"""The audit log: every staff read of residents' data, append-only in PostgreSQL."""
from __future__ import annotations

from typing import Any


async def record(conn: Any, actor_id: str | None, actor_role: str | None, action: str, subject_type: str,
                 subject_id: str | None, **detail: Any) -> None:
    await conn.execute(
        "INSERT INTO audit_log (actor_id, actor_role, action, subject_type, subject_id, detail)"
        " VALUES ($1, $2, $3, $4, $5, $6)", actor_id, actor_role, action, subject_type, subject_id, detail)
