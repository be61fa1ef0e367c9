"""Live sessions: each staff account's open WebSocket connections across the cluster (the admin console).

One Redis hash per account (Keys.sessions): a field per connection, `node:serial`, its value a JSON
object {id, node, since, address, user_agent, token_id, token_expires, seen}. The node that holds the
connection writes it when the connection opens, deletes it when it closes, and rewrites `seen` every
REFRESH_S (the presence worker); the hash expires TTL_S after the last write. A node that died leaves
its fields behind: a reader skips (and drops) any not seen for STALE_S.

Residents are not tracked: there are many of them, each on one device, and their connections are
ended the same way (suspension, logout). What is listed is what is live now, not every token issued.
"""
from __future__ import annotations

import json
import time
from typing import Any

import redis.asyncio as aioredis

from infra.keys import Keys

REFRESH_S = 15
STALE_S = 3 * REFRESH_S + 5
TTL_S = 2 * STALE_S
UNTRACKED_ROLES = frozenset({"resident"})


# what a staff command's session check reads (handlers/connection.py session_valid): only the four things
# `session_problem` looks at, not the whole account row and its grids (the hello's SESSION_SQL)
CHECK_SQL = ("SELECT a.role, a.disabled, a.session_epoch,"
             " EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $2) AS revoked FROM accounts a WHERE a.id = $1")


def tracked(role: str) -> bool:
    return role not in UNTRACKED_ROLES


class LiveSessions:
    """This node's side of the registry, and the reader any node uses."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, node: str) -> None:
        self.redis, self.keys, self.node = redis, keys, node
        self._serial = 0

    def new_id(self) -> str:
        self._serial += 1
        return f"{self.node}:{self._serial}"

    async def opened(self, account_id: str, session_id: str, info: dict[str, Any]) -> None:
        key = self.keys.sessions(account_id)
        value = json.dumps({**info, "id": session_id, "node": self.node, "seen": time.time()})
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, session_id, value)
            pipe.expire(key, TTL_S)
            await pipe.execute()

    async def closed(self, account_id: str, session_id: str) -> None:
        await self.redis.hdel(self.keys.sessions(account_id), session_id)

    async def refresh(self, live: list[tuple[str, str, dict[str, Any]]]) -> None:
        """(account id, session id, info) of every tracked connection open on this node: seen now."""
        if not live:
            return
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            for account_id, session_id, info in live:
                key = self.keys.sessions(account_id)
                pipe.hset(key, session_id, json.dumps({**info, "id": session_id, "node": self.node, "seen": now}))
                pipe.expire(key, TTL_S)
            await pipe.execute()

    async def of(self, account_id: str) -> list[dict[str, Any]]:
        """The account's open sessions, oldest first; fields a dead node left are dropped on the way."""
        key = self.keys.sessions(account_id)
        raw = await self.redis.hgetall(key)
        now, out, stale = time.time(), [], []
        for field, value in raw.items():
            entry = json.loads(value)
            if now - float(entry.get("seen", 0)) > STALE_S:
                stale.append(field)
            else:
                out.append(entry)
        if stale:
            await self.redis.hdel(key, *stale)
        return sorted(out, key=lambda e: (e.get("since", ""), e["id"]))
