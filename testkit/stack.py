"""A database and a Redis key prefix of one's own: created (and migrated), emptied, dropped.

Tests use the machine's PostgreSQL and Redis when they answer, else the embedded
default in a temporary directory (`start`/`stop`, synchronous, for a session
fixture). Benchmarks use the machine's services only (`BenchStack`, an async
context manager that also keeps a directory for node logs). Either way, nothing
this run did not create is ever dropped or deleted: one database, the keys under
one prefix.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from testkit.runtime import log

SYS_PG = os.environ.get("HELPLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
SYS_REDIS = os.environ.get("HELPLINE_TEST_REDIS", "redis://127.0.0.1:6379")
BENCH_PG = os.environ.get("HELPLINE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
BENCH_REDIS = os.environ.get("HELPLINE_BENCH_REDIS", "redis://127.0.0.1:6379")


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Stack:
    admin_url: str        # a database to CREATE/DROP from
    base_url: str         # server URL without database name, for derived databases
    database: str
    redis_url: str
    prefix: str
    embedded: object | None = None

    @property
    def database_url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        if "?" in self.base_url:  # unix-socket form: postgresql://postgres:@/db?host=/dir
            head, query = self.base_url.split("?", 1)
            return f"{head.rstrip('/')}/{database}?{query}"
        return f"{self.base_url.rstrip('/')}/{database}"

    async def create(self) -> None:
        """CREATE DATABASE, then every migration."""
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await conn.close()
        from infra import db

        c = await db.connect(self.database_url)
        try:
            await db.migrate(c)
        finally:
            await c.close()

    async def drop_database(self) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            await conn.close()

    async def delete_keys(self) -> int:
        """Delete the keys under this stack's prefix (SCAN, never FLUSHDB); how many there were."""
        from infra import redisclient

        r = redisclient.connect(self.redis_url)      # any redis.url form, the Sentinel one included
        try:
            n = 0
            batch: list[bytes] = []
            async for key in r.scan_iter(match=self.prefix + "*", count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    n += await r.delete(*batch)
                    batch = []
            if batch:
                n += await r.delete(*batch)
            return n
        finally:
            await r.aclose()


def on_machine(run: str, pg: str = SYS_PG, redis_url: str = SYS_REDIS) -> Stack:
    return Stack(admin_url=pg + "/postgres", base_url=pg, database=run, redis_url=redis_url, prefix=run + ":")


def start() -> Stack:
    """The test run's stack, created: on the machine's services when both answer, else embedded."""
    run = "hl_test_" + uuid.uuid4().hex[:10]
    on_machine_ok = port_open("127.0.0.1", 5432) and port_open("127.0.0.1", 6379)
    if os.environ.get("HELPLINE_TEST_EMBEDDED") != "1" and on_machine_ok:
        stack = on_machine(run)
    else:
        from server.embedded import Embedded

        emb = Embedded(Path(tempfile.mkdtemp(prefix="hl-test-var-")))
        url = emb.postgres_url()          # postgresql://postgres:@/helpline?host=...
        head, query = url.split("?", 1)
        base = head.rsplit("/", 1)[0] + "/?" + query
        stack = Stack(admin_url=url, base_url=base, database=run, redis_url=emb.redis_url(), prefix=run + ":",
                      embedded=emb)
    asyncio.run(stack.create())
    return stack


def stop(stack: Stack) -> None:
    async def clean() -> None:
        await stack.drop_database()
        await stack.delete_keys()
    try:
        asyncio.run(clean())
    finally:
        if stack.embedded is not None:
            stack.embedded.stop()  # type: ignore[attr-defined]


async def truncate_all(database_url: str) -> None:
    """Empty every table but the migration record, between tests."""
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                                  " AND tablename <> 'schema_migrations'")
        if tables:
            await conn.execute("TRUNCATE " + ", ".join(f'"{t["tablename"]}"' for t in tables) + " CASCADE")
    finally:
        await conn.close()


class BenchStack:
    """A benchmark's own database `hl_bench_<name>_<hex>` and prefix, and a directory for node logs."""

    def __init__(self, name: str) -> None:
        self.run = f"hl_bench_{name}_{uuid.uuid4().hex[:8]}"
        self.stack = on_machine(self.run, BENCH_PG, BENCH_REDIS)
        self.database = self.stack.database
        self.prefix = self.stack.prefix
        self.database_url = self.stack.database_url
        self.redis_url = self.stack.redis_url
        self.workdir = tempfile.mkdtemp(prefix=f"{self.run}-")
        self.created = False

    async def __aenter__(self) -> BenchStack:
        await self.stack.create()
        self.created = True
        log(f"database {self.database}, key prefix {self.prefix}, logs in {self.workdir}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.drop()

    async def drop(self) -> None:
        if self.created:
            with contextlib.suppress(Exception):
                await self.stack.drop_database()
                self.created = False
        n = await self.stack.delete_keys()
        log(f"dropped database {self.database} and {n} keys under {self.prefix}")

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.database_url)


class HasDatabase(Protocol):
    database_url: str


async def query(app: HasDatabase, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Rows of one statement on an app's (or node's) database, on a connection of its own."""
    conn = await asyncpg.connect(app.database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()
