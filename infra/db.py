"""PostgreSQL: the connection pool and the schema migrations.

Migrations are the numbered files in infra/migrations, applied in order,
each in its own transaction, under an advisory lock so that several nodes
starting at once apply each exactly once.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Collection
from enum import StrEnum
from pathlib import Path
from typing import TypeAlias, TypeVar

import asyncpg
import asyncpg.pool
import msgspec
from asyncpg.connect_utils import SessionAttribute

from infra import dburl

log = logging.getLogger(__name__)
# what every store function takes: a plain connection or one borrowed from the pool
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"
MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_ID = 0x68656C70  # "help"


_encode_json = msgspec.json.Encoder().encode
_decode_json = msgspec.json.Decoder().decode


def _jsonb_text(value: object) -> str:
    return _encode_json(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    # msgspec, not the json module: a report alone sends three jsonb values and reads some back
    await conn.set_type_codec("jsonb", encoder=_jsonb_text, decoder=_decode_json, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool release without the reset query: helpline keeps no session state (only SET LOCAL)."""


# Several hosts (a primary and its standbys, docs/operations.md "PostgreSQL with a standby"): every connection,
# pooled or not, is made to whichever host takes writes now (target_session_attrs, dburl.for_node), so after a
# failover the next connection reaches the promoted standby. asyncpg's pool drops a connection that broke and
# makes the next one with the same arguments: the same rule.
CONNECT_TIMEOUT_S = 10.0      # one attempt over all the hosts (a host that does not answer at all)
START_WAIT_S = 15.0           # how long a node starting waits for a host that takes writes before giving up
# what a connection attempt raises when no host took it (refused, unreachable, all read-only, starting up)
UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError, TimeoutError, asyncpg.TargetServerAttributeNotMatched, asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError)


# what a command meets when its database went away under it (a primary killed, a failover): an outage to
# answer `unavailable`, not a bug. asyncpg's InternalClientError is among them: a pooled connection whose
# backend sent FATAL as its postmaster died ("terminating connection due to unexpected postmaster exit") and
# then closed can be handed out before the close is seen, and refuses the next query with "cannot switch to
# state 12; another operation (2) is in progress" (seen in tests/failover/test_pg_failover.py)
OUTAGE: tuple[type[BaseException], ...] = (*UNREACHABLE, asyncpg.InterfaceError, asyncpg.InternalClientError)


class DatabaseUnavailable(Exception):
    """No host of the database URL takes writes now; the message says which hosts and the last error."""


def hosts_text(url: str) -> str:
    """The hosts a URL chooses among, as an operator names them: `127.0.0.1:5501, 127.0.0.1:5502`."""
    try:
        return dburl.parse(url).hosts_text()
    except dburl.DbUrlError:
        return "the database"


def unavailable(hosts: str, e: BaseException) -> str:
    """In words: why no connection could be made."""
    if isinstance(e, asyncpg.TargetServerAttributeNotMatched):
        why = "the hosts that answered are read-only: standbys"
    elif isinstance(e, asyncpg.CannotConnectNowError):
        why = f"starting up or shutting down: {e}"
    elif isinstance(e, TimeoutError):
        why = "no answer in time"
    else:
        why = f"last error: {e}" if str(e) else type(e).__name__
    return f"no read-write host among {hosts} ({why})"


class _OneLineWhenUnreachable(logging.Filter):
    """asyncpg's pool re-making its minimum of connections logs each failed try with a traceback; while no
    host takes writes (a failover under way) that is one line in words instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, UNREACHABLE):
            record.msg = f"{record.getMessage()}: {unavailable('the database hosts', exc)}"
            record.args, record.exc_info, record.exc_text = None, None, None
        return True


_ONE_LINE = _OneLineWhenUnreachable()


async def create_pool(url: str, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    parsed, attrs = dburl.for_node(url)
    if _ONE_LINE not in logging.getLogger("asyncpg.pool").filters:
        logging.getLogger("asyncpg.pool").addFilter(_ONE_LINE)
    try:
        pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, init=_init_connection,
                                         reset=_keep_session, command_timeout=30, timeout=CONNECT_TIMEOUT_S,
                                         target_session_attrs=SessionAttribute(attrs))
    except UNREACHABLE as e:
        raise DatabaseUnavailable(unavailable(parsed.hosts_text(), e)) from e
    return pool


async def connect(url: str, wait_s: float = 0.0) -> asyncpg.Connection:
    """A connection of its own to the host that takes writes; with `wait_s`, tried again (with a pause) for
    that long while no host does, then DatabaseUnavailable saying so."""
    conn = await connect_plain(url, wait_s)
    try:
        await _init_connection(conn)
    except BaseException:
        conn.terminate()
        raise
    return conn


async def connect_plain(url: str, wait_s: float = 0.0) -> asyncpg.Connection:
    """`connect` without the type codecs (a LISTEN connection)."""
    parsed, attrs = dburl.for_node(url)
    deadline = time.monotonic() + wait_s
    pause = 0.25
    while True:
        try:
            conn: asyncpg.Connection = await asyncpg.connect(url, target_session_attrs=SessionAttribute(attrs),
                                                             timeout=CONNECT_TIMEOUT_S)
        except UNREACHABLE as e:
            if time.monotonic() + pause >= deadline:
                raise DatabaseUnavailable(unavailable(parsed.hosts_text(), e)) from e
            log.warning("%s; trying again", unavailable(parsed.hosts_text(), e))
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)
            continue
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
