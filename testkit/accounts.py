"""Accounts: one at a time as the service makes them (argon2, the HTTP sign-in), or thousands
at once in SQL; tokens signed with the nodes' secret; and what a running node offers a test
(`Front`: new users signed in and connected, their clients closed at the end)."""
from __future__ import annotations

import uuid

import asyncpg

from infra import accounts, db
from testkit.client import Client, http

SECRET = "test-secret-" + "s" * 40      # every node the kit starts signs its tokens with it
ISSUER = AUDIENCE = "helpline"
PASSWORD = "Pw-123456!"
ALL_SKILLS = ["fire", "general", "medical", "police"]
CATEGORIES = ["medical", "fire", "police", "dispute", "other"]


async def add_user(database_url: str, username: str | None = None, role: str = "resident",
                   password: str = PASSWORD, *, name: str | None = None, skills: list[str] | None = None,
                   phone: str | None = None) -> str:
    username = username or f"{role}-{uuid.uuid4().hex[:8]}"
    conn = await db.connect(database_url)
    try:
        return await accounts.create(conn, username=username, role=role, password=password, name=name,
                                     skills=skills, phone=phone)
    finally:
        await conn.close()


async def login(base: str, username: str, password: str = PASSWORD) -> str:
    st, body = await http("POST", base + "/api/auth/login", json={"username": username, "password": password})
    assert st == 200, (st, body)
    token: str = body["token"]
    return token


async def device_token(base: str, device_id: str | None = None) -> str:
    device_id = device_id or "dev-" + uuid.uuid4().hex
    st, body = await http("POST", base + "/api/auth/device", json={"device_id": device_id})
    assert st == 200, (st, body)
    token: str = body["token"]
    return token


async def create_accounts(conn: asyncpg.Connection, role: str, n: int, tag: str,
                          skills: list[str] | None = None, verified: bool = False,
                          with_phone: bool = False) -> list[str]:
    """n accounts of that role straight in SQL (the CLI and argon2 are far too slow for thousands).

    Residents get a device id (like /api/auth/device), staff a username; `with_phone` gives
    each a unique +86 phone number. Responders also get their `responders` row (off duty)."""
    if n <= 0:
        return []
    start = await conn.fetchval("SELECT count(*) FROM accounts")
    rows = await conn.fetch(
        """INSERT INTO accounts (role, username, name, device_id, phone, verified)
           SELECT $1,
                  CASE WHEN $1 = 'resident' THEN NULL ELSE $2 || '-' || g END,
                  initcap($1) || ' ' || g,
                  CASE WHEN $1 = 'resident' THEN $2 || '-dev-' || g END,
                  CASE WHEN $4 THEN '+86139' || lpad(($5 + g)::text, 8, '0') END,
                  $3
           FROM generate_series(1, $6) AS g ORDER BY g RETURNING id""",
        role, f"{tag}-{role}", verified, with_phone, int(start), n,
    )
    ids = [str(r["id"]) for r in rows]
    if role == "responder":
        await conn.execute("INSERT INTO responders (account_id, skills)"
                           " SELECT unnest($1::uuid[]), $2::text[]", ids, sorted(skills or ALL_SKILLS))
    return ids


def tokens_for(ids: list[str], role: str, secret: str = SECRET) -> list[str]:
    from infra.auth import TokenService

    ts = TokenService(secret, ISSUER, AUDIENCE, 86400)
    return [ts.issue(i, role) for i in ids]


class Front:
    """What a running node (in-process or a subprocess) offers a test: accounts, tokens, clients."""

    base: str
    ws_url: str
    database_url: str

    def __init__(self) -> None:
        self.clients: list[Client] = []

    async def add_user(self, username: str | None = None, role: str = "resident", password: str = PASSWORD,
                       *, name: str | None = None, skills: list[str] | None = None,
                       phone: str | None = None) -> str:
        return await add_user(self.database_url, username, role, password, name=name, skills=skills,
                              phone=phone)

    async def login(self, username: str, password: str = PASSWORD) -> str:
        return await login(self.base, username, password)

    async def device_token(self, device_id: str | None = None) -> str:
        return await device_token(self.base, device_id)

    async def connect(self, token: str) -> Client:
        c = await Client.connect(self.ws_url, token)
        self.clients.append(c)
        return c

    async def user(self, role: str, *, name: str | None = None, skills: list[str] | None = None,
                   phone: str | None = None) -> Client:
        """A new account of that role, logged in and connected."""
        username = f"{role}-{uuid.uuid4().hex[:8]}"
        await self.add_user(username, role, name=name or username, skills=skills, phone=phone)
        return await self.connect(await self.login(username))

    async def resident(self) -> Client:
        return await self.connect(await self.device_token())

    async def close_clients(self) -> None:
        for c in self.clients:
            await c.close()
        self.clients.clear()
