"""The audit log: every staff read of residents' data, append-only in PostgreSQL."""
from __future__ import annotations

from contextvars import ContextVar
from typing import Any

# the address of the client whose request (HTTP) or connection (WebSocket) is being served: set once by the
# edge for its task (handlers/http.py errors_middleware, handlers/ws.py ws_handler) and written into every
# entry recorded in it; None where no client asked (the CLI, the background sweeps)
CLIENT_ADDRESS: ContextVar[str | None] = ContextVar("audit_client_address", default=None)


async def record(conn: Any, actor_id: str | None, actor_role: str | None, action: str, subject_type: str,
                 subject_id: str | None, **detail: Any) -> None:
    await conn.execute(
        "INSERT INTO audit_log (actor_id, actor_role, action, subject_type, subject_id, detail, address)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)", actor_id, actor_role, action, subject_type, subject_id, detail,
        CLIENT_ADDRESS.get())


# what `helpline audit` (and an admin's reading of the log) selects: the actor's username with each entry, and the
# username of an account the entry is about
READ_SQL = """
SELECT l.id, l.at, l.actor_id, a.username AS actor, l.actor_role, l.action, l.subject_type, l.subject_id, l.detail,
       l.address, s.username AS subject_name
FROM audit_log l LEFT JOIN accounts a ON a.id = l.actor_id
     LEFT JOIN accounts s ON l.subject_type = 'account' AND s.id::text = l.subject_id
WHERE l.at >= $1 AND ($2::timestamptz IS NULL OR l.at < $2)
  AND ($3::uuid IS NULL OR l.actor_id = $3)
  AND ($4::text IS NULL OR l.subject_type = $4) AND ($5::text IS NULL OR l.subject_id = $5)
  AND ($6::bigint IS NULL OR l.id > $6)
ORDER BY l.id LIMIT $7
"""


async def read(conn: Any, since: Any, until: Any = None, actor_id: str | None = None,
               subject_type: str | None = None, subject_id: str | None = None, after_id: int | None = None,
               limit: int = 1000) -> list[Any]:
    """Entries of the log, oldest first, from `since` (and before `until`), by actor and/or subject; page on
    with after_id = the last id read. Reading is all there is: the table refuses UPDATE and DELETE."""
    return list(await conn.fetch(READ_SQL, since, until, actor_id, subject_type, subject_id, after_id, limit))
