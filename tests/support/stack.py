"""The services a test run uses: the machine's PostgreSQL and Redis when they answer
(in a database and key prefix of this run's own), else the embedded default in a
temporary directory. Nothing this run did not create is ever dropped or deleted."""
from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis

SYS_PG = os.environ.get("HELPLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
SYS_REDIS = os.environ.get("HELPLINE_TEST_REDIS", "redis://127.0.0.1:6379")


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def start() -> Stack:
    run = "hl_test_" + uuid.uuid4().hex[:10]
    if os.environ.get("HELPLINE_TEST_EMBEDDED") != "1" and port_open("127.0.0.1", 5432) and port_open("127.0.0.1", 6379):
        stack = Stack(admin_url=SYS_PG + "/postgres", base_url=SYS_PG, database=run, redis_url=SYS_REDIS,
                      prefix=run + ":")
    else:
        from server.embedded import Embedded

        emb = Embedded(Path(tempfile.mkdtemp(prefix="hl-test-var-")))
        url = emb.postgres_url()          # postgresql://postgres:@/helpline?host=...
        head, query = url.split("?", 1)
        base = head.rsplit("/", 1)[0] + "/?" + query
        stack = Stack(admin_url=url, base_url=base, database=run, redis_url=emb.redis_url(), prefix=run + ":",
                      embedded=emb)
    asyncio.run(_create_db(stack))
    return stack


async def _create_db(stack: Stack) -> None:
    conn = await asyncpg.connect(stack.admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{stack.database}"')
    finally:
        await conn.close()
    from infra import db

    c = await db.connect(stack.database_url)
    try:
        await db.migrate(c)
    finally:
        await c.close()


def stop(stack: Stack) -> None:
    async def clean() -> None:
        conn = await asyncpg.connect(stack.admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{stack.database}" WITH (FORCE)')
        finally:
            await conn.close()
        r = aioredis.Redis.from_url(stack.redis_url)
        try:
            batch = []
            async for key in r.scan_iter(match=stack.prefix + "*", count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    await r.delete(*batch)
                    batch = []
            if batch:
                await r.delete(*batch)
        finally:
            await r.aclose()
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
