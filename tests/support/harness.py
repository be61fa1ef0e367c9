"""Running helpline for tests: in-process (one app on a real port) or as `helpline serve` processes."""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from infra import accounts, db
from infra import config as config_mod
from server.app import create_app
from tests.support.client import Client, http
from tests.support.stack import Stack, free_port

REPO = Path(__file__).resolve().parents[2]
SECRET = "test-secret-" + "s" * 40
PASSWORD = "Pw-123456!"
_prefixes = itertools.count(1)


def test_env(stack: Stack, prefix: str, **overrides: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPLINE_")}
    env.update({
        "HELPLINE_DATABASE_URL": stack.database_url,
        "HELPLINE_REDIS_URL": stack.redis_url,
        "HELPLINE_REDIS_KEY_PREFIX": prefix,
        "HELPLINE_AUTH_JWT_SECRET": SECRET,
        "HELPLINE_DISPATCH_OFFER_TIMEOUT_S": "2",
        "HELPLINE_DISPATCH_TICK_S": "0.2",
        "HELPLINE_DISPATCH_ORPHAN_AFTER_S": "1",
        "HELPLINE_SMS_PROVIDER": "console",
    })
    for k, v in overrides.items():
        env["HELPLINE_" + k.upper()] = str(v)
    return env


class Base:
    """What in-process apps and subprocess nodes share: accounts, tokens, clients."""

    base: str
    ws_url: str
    database_url: str

    def __init__(self) -> None:
        self.clients: list[Client] = []

    async def add_user(self, username: str | None = None, role: str = "resident", password: str = PASSWORD, *,
                       name: str | None = None, skills: list[str] | None = None, phone: str | None = None) -> str:
        username = username or f"{role}-{uuid.uuid4().hex[:8]}"
        conn = await db.connect(self.database_url)
        try:
            return await accounts.create(conn, username=username, role=role, password=password, name=name,
                                         skills=skills, phone=phone)
        finally:
            await conn.close()

    async def login(self, username: str, password: str = PASSWORD) -> str:
        st, body = await http("POST", self.base + "/api/auth/login", json={"username": username, "password": password})
        assert st == 200, (st, body)
        return body["token"]

    async def device_token(self, device_id: str | None = None) -> str:
        st, body = await http("POST", self.base + "/api/auth/device",
                              json={"device_id": device_id or "dev-" + uuid.uuid4().hex})
        assert st == 200, (st, body)
        return body["token"]

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


class InProcess(Base):
    """create_app() on a real loopback port, in the test's own event loop."""

    def __init__(self, stack: Stack, **overrides: Any) -> None:
        super().__init__()
        self.prefix = f"{stack.prefix}{next(_prefixes)}:"
        self.env = test_env(stack, self.prefix, **overrides)
        self.cfg = config_mod.load(self.env)
        self.database_url = stack.database_url
        self.redis_url = stack.redis_url
        self.server: TestServer | None = None

    async def start(self) -> "InProcess":
        app = create_app(self.cfg, self.database_url, self.redis_url)
        self.app = app
        self.server = TestServer(app, host="127.0.0.1", port=free_port())
        await self.server.start_server()
        self.base = f"http://127.0.0.1:{self.server.port}"
        self.ws_url = f"ws://127.0.0.1:{self.server.port}/ws"
        return self

    async def stop(self) -> None:
        await self.close_clients()
        if self.server is not None:
            await self.server.close()


class NodeProcess(Base):
    """One `helpline serve` subprocess."""

    def __init__(self, env: dict[str, str], database_url: str, workdir: str) -> None:
        super().__init__()
        self.port = free_port()
        self.env = dict(env, HELPLINE_SERVER_PORT=str(self.port), HELPLINE_SERVER_HOST="127.0.0.1",
                        HELPLINE_SERVER_PUBLIC_URL=f"http://127.0.0.1:{self.port}")
        self.database_url = database_url
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        self.log_path = os.path.join(workdir, f"node-{self.port}.log")
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, timeout: float = 60) -> "NodeProcess":
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], env=self.env, cwd=REPO,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as s:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"node exited {self.proc.returncode}:\n{self.tail()}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with s.get(self.base + "/readyz") as r:
                        if r.status == 200:
                            return self
                await asyncio.sleep(0.2)
        raise RuntimeError(f"node not ready in {timeout}s:\n{self.tail()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    async def stop(self) -> None:
        await self.close_clients()
        if self.proc is not None and self.proc.poll() is None:
            self.kill(signal.SIGTERM)
            for _ in range(100):
                if self.proc.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            else:
                self.kill()

    def tail(self, n: int = 40) -> str:
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-n:])


class Cluster:
    """Nodes sharing this test's database and key prefix."""

    def __init__(self, stack: Stack, **overrides: Any) -> None:
        self.prefix = f"{stack.prefix}{next(_prefixes)}:"
        self.env = test_env(stack, self.prefix, **overrides)
        self.database_url = stack.database_url
        self.workdir = tempfile.mkdtemp(prefix="hl-nodes-")
        self.nodes: list[NodeProcess] = []

    async def start_node(self) -> NodeProcess:
        node = NodeProcess(self.env, self.database_url, self.workdir)
        self.nodes.append(node)
        return await node.start()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "server.cli", *args], env=self.env, cwd=REPO,
                              capture_output=True, text=True, timeout=120)

    async def stop(self) -> None:
        for n in self.nodes:
            await n.stop()
