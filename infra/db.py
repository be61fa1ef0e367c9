"""PostgreSQL: the connection pool and the schema migrations.

Migrations are the numbered files in infra/migrations, applied in order,
each in its own transaction, under an advisory lock so that several nodes
starting at once apply each exactly once.
"""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Collection
from enum import StrEnum
from pathlib import Path
from typing import TypeAlias, TypeVar

import asyncpg
import asyncpg.pool

log = logging.getLogger(__name__)
# what every store function takes: a plain connection or one borrowed from the pool
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"
MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_ID = 0x68656C70  # "help"


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool release without the reset query: helpline keeps no session state (only SET LOCAL)."""


async def create_pool(url: str, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, init=_init_connection,
                                     reset=_keep_session, command_timeout=30)


async def connect(url: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(url)
    await _init_connection(conn)
    return conn


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations; returns the names applied."""
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                           " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for path in sorted(MIGRATIONS.glob("*.sql")):
            if path.name in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", path.name)
            log.info("applied migration %s", path.name)
            applied.append(path.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    return applied


_WORD = re.compile(r"^[a-z_]+$")
E = TypeVar("E", bound=StrEnum)


def sql_list(enum: type[E], members: Collection[E]) -> str:
    """Some members of an enum as the body of an SQL list, in the enum's order: `'resolved','cancelled'`.

    Status lists in SQL are built from the enums this way, so each is written once; the enum's order
    keeps the text equal to the partial indexes' predicates, which the planner matches at a glance."""
    items = [str(v) for v in enum if v in members]
    if not items or not all(_WORD.match(w) for w in items):
        raise ValueError(f"not a list of status words: {items}")
    return ",".join(f"'{w}'" for w in items)
