"""helpline running for a test or a benchmark: in-process (create_app on a real loopback port, in
the caller's event loop) or as `helpline serve` processes configured by `HELPLINE_*` variables."""
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
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from infra import config as config_mod
from server.app import create_app
from testkit.accounts import SECRET, Front
from testkit.runtime import REPO, log, raise_nofile
from testkit.stack import BenchStack, Stack, free_port

# Tests want offers, deadlines and orphans on a scale of seconds.
TEST_TIMERS = {"dispatch_offer_timeout_s": "2", "dispatch_tick_s": "0.2", "dispatch_orphan_after_s": "1",
               # every test resident comes from 127.0.0.1: the flood limits per address would hold most of their
               # reports; tests of those limits (tests/integration/test_abuse_dispatch.py) set the shipped ones
               "dispatch_flood_per_address": "100000", "dispatch_flood_per_prefix": "100000",
               "dispatch_unverified_offers_per_min": "100000"}
_prefixes = itertools.count(1)


def node_env(database_url: str, redis_url: str, prefix: str, **settings: Any) -> dict[str, str]:
    """This process's environment without its HELPLINE_* variables, then the kit's: the given
    database, Redis and key prefix, the kit's JWT secret, console SMS, and `settings`
    (section_key=value, as HELPLINE_SECTION_KEY)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPLINE_")}
    env.update({
        "HELPLINE_DATABASE_URL": database_url,
        "HELPLINE_REDIS_URL": redis_url,
        "HELPLINE_REDIS_KEY_PREFIX": prefix,
        "HELPLINE_AUTH_JWT_SECRET": SECRET,
        "HELPLINE_SMS_PROVIDER": "console",
    })
    for k, v in settings.items():
        env["HELPLINE_" + k.upper()] = str(v)
    return env


def env_for_tests(stack: Stack, prefix: str, **overrides: Any) -> dict[str, str]:
    return node_env(stack.database_url, stack.redis_url, prefix, **{**TEST_TIMERS, **overrides})


class InProcess(Front):
    """create_app() on a real loopback port, in the test's own event loop."""

    def __init__(self, stack: Stack, **overrides: Any) -> None:
        super().__init__()
        self.prefix = f"{stack.prefix}{next(_prefixes)}:"
        self.env = env_for_tests(stack, self.prefix, **overrides)
        self.cfg = config_mod.load(self.env)
        self.database_url = stack.database_url
        self.redis_url = stack.redis_url
        self.server: TestServer | None = None

    async def start(self) -> InProcess:
        app = create_app(self.cfg, self.database_url, self.redis_url)
        self.app = app
        self.server = TestServer(app, host="127.0.0.1", port=free_port())
        # requests still running at stop get 5 s, not aiohttp's 60 (the clients are closed first; a test's
        # teardown must not sit out a minute for a handler that lost its peer)
        await self.server.start_server(shutdown_timeout=5.0)
        self.base = f"http://127.0.0.1:{self.server.port}"
        self.ws_url = f"ws://127.0.0.1:{self.server.port}/ws"
        return self

    async def stop(self) -> None:
        await self.close_clients()
        if self.server is not None:
            await self.server.close()


class NodeProcess(Front):
    """One `helpline serve` process (in a session of its own, with whatever it starts), its log
    in `workdir`; ready when /readyz answers 200; stopped by SIGTERM, killed after `grace_s`."""

    tail_lines = 40
    grace_s = 10.0
    announce = False          # log "ready" (benchmarks narrate on stderr)
    raise_nofile = False      # lift its open-file limit (benchmarks hold thousands of sockets)

    def __init__(self, env: dict[str, str], database_url: str, workdir: str, name: str = "node") -> None:
        super().__init__()
        self.port = free_port()
        self.name = name
        self.env = dict(env, HELPLINE_SERVER_PORT=str(self.port), HELPLINE_SERVER_HOST="127.0.0.1",
                        HELPLINE_SERVER_PUBLIC_URL=f"http://127.0.0.1:{self.port}")
        self.database_url = database_url
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        self.log_path = os.path.join(workdir, f"{name}-{self.port}.log")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, timeout: float = 60) -> NodeProcess:
        log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], env=self.env, cwd=REPO,
                                     stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=raise_nofile if self.raise_nofile else None)
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as s:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited {self.proc.returncode}:\n{self.tail()}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with s.get(self.base + "/readyz") as r:
                        if r.status == 200:
                            if self.announce:
                                log(f"{self.name} ready on :{self.port} (pid {self.pid})")
                            return self
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready in {timeout}s:\n{self.tail()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    async def stop(self) -> None:
        await self.close_clients()
        if self.proc is None or self.proc.poll() is not None:
            return
        self.kill(signal.SIGTERM)
        for _ in range(int(self.grace_s * 10)):
            if self.proc.poll() is not None:
                return
            await asyncio.sleep(0.1)
        self.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)

    def tail(self, n: int | None = None) -> str:
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-(n or self.tail_lines):])

    def log_problems(self) -> list[str]:
        """ERROR/Traceback lines (and warnings about slow consumers etc.) of the node log."""
        with open(self.log_path, errors="replace") as f:
            return [ln.rstrip() for ln in f if " ERROR " in ln or "Traceback" in ln or " WARNING " in ln]


class Cluster:
    """Nodes sharing this test's database and key prefix."""

    def __init__(self, stack: Stack, **overrides: Any) -> None:
        self.prefix = f"{stack.prefix}{next(_prefixes)}:"
        self.env = env_for_tests(stack, self.prefix, **overrides)
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


class Node(NodeProcess):
    """A benchmark's `helpline serve` on its stack, at the shipped defaults but for `overrides`."""

    tail_lines = 30
    grace_s = 15.0
    announce = True
    raise_nofile = True

    def __init__(self, stack: BenchStack, name: str = "node", **overrides: Any) -> None:
        defaults = {"log_level": "WARNING", "data_dir": os.path.join(stack.workdir, "var"),
                    # a benchmark's residents all come from 127.0.0.1 but stand for many people on many
                    # addresses: the flood hold (docs/security.md) would hold their reports, and the
                    # benchmarks measure matching and delivery, not the hold
                    **{k: v for k, v in TEST_TIMERS.items() if "flood" in k or "unverified" in k}}
        env = node_env(stack.database_url, stack.redis_url, stack.prefix, **{**defaults, **overrides})
        super().__init__(env, stack.database_url, stack.workdir, name)
