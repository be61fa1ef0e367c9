"""What the benchmarks share: a private database and Redis key prefix, helpline nodes as
subprocesses, accounts in bulk, a light WebSocket client, percentiles and reports.

Everything runs on loopback against the machine's PostgreSQL (127.0.0.1:5432, user
postgres, trust) and Redis (127.0.0.1:6379). A run creates one database
`hl_bench_<hex>` and uses the key prefix `hl_bench_<hex>:`; at the end it drops that
database and deletes the keys under that prefix, and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec
import redis.asyncio as aioredis
import websockets

REPO = Path(__file__).resolve().parents[1]
PG = os.environ.get("HELPLINE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("HELPLINE_BENCH_REDIS", "redis://127.0.0.1:6379")
SECRET = "bench-secret-" + "b" * 40
ISSUER = AUDIENCE = "helpline"
CENTER = (31.2304, 121.4737)
ALL_SKILLS = ["fire", "general", "medical", "police"]
CATEGORIES = ["medical", "fire", "police", "dispute", "other"]

_decode = msgspec.json.decode


def log(*a: Any) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *a, file=sys.stderr, flush=True)


def raise_nofile() -> int:
    """Raise the soft open-file limit to the hard one; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def use_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def tune_gc() -> None:
    """Load-generating processes hold thousands of sockets too: the same garbage-collector settings as
    the nodes (server.gc_thresholds' default, server/gcwatch.py), so that the instrument's own pauses
    do not show up as helpline's latency. The floor server gets them as well, to compare like with like."""
    import gc

    gc.set_threshold(50000, 50, 100)


# ------------------------------------------------------------------ statistics
def percentiles(values: Iterable[float]) -> dict[str, float]:
    """n, mean, p50, p95, p99, max (nearest rank) of the values (seconds in, seconds out)."""
    xs = sorted(values)
    n = len(xs)
    if not n:
        return {"n": 0, "mean": math.nan, "p50": math.nan, "p95": math.nan, "p99": math.nan, "max": math.nan}

    def rank(p: float) -> float:
        return xs[min(n - 1, max(0, math.ceil(p / 100 * n) - 1))]

    return {"n": n, "mean": sum(xs) / n, "p50": rank(50), "p95": rank(95), "p99": rank(99), "max": xs[-1]}


def ms(x: float) -> str:
    return "   n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * 1000:6.2f}"


def latency_line(label: str, st: dict[str, float], floor: dict[str, float] | None = None) -> str:
    line = (
        f"  {label:<30} n={st['n']:<6} p50 {ms(st['p50'])} ms  p95 {ms(st['p95'])} ms  "
        f"p99 {ms(st['p99'])} ms  max {ms(st['max'])} ms"
    )
    if floor:
        line += (
            f"   (x floor: p50 {ratio(st['p50'], floor['p50'])}, p95 {ratio(st['p95'], floor['p95'])}, "
            f"p99 {ratio(st['p99'], floor['p99'])})"
        )
    return line


def ratio(a: float, b: float) -> str:
    if not b or math.isnan(a) or math.isnan(b):
        return "n/a"
    return f"{a / b:.2f}x"


def conditions() -> str:
    load = os.getloadavg()
    return (
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {os.cpu_count()} cores, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start"
    )


# ------------------------------------------------------------------ the stack: own database and key prefix
class BenchStack:
    def __init__(self, name: str) -> None:
        self.run = f"hl_bench_{name}_{uuid.uuid4().hex[:8]}"
        self.database = self.run
        self.prefix = self.run + ":"
        self.database_url = f"{PG}/{self.database}"
        self.redis_url = REDIS
        self.workdir = tempfile.mkdtemp(prefix=f"{self.run}-")
        self.created = False

    async def __aenter__(self) -> "BenchStack":
        admin = await asyncpg.connect(f"{PG}/postgres")
        try:
            await admin.execute(f'CREATE DATABASE "{self.database}"')
            self.created = True
        finally:
            await admin.close()
        from infra import db

        conn = await db.connect(self.database_url)
        try:
            await db.migrate(conn)
        finally:
            await conn.close()
        log(f"database {self.database}, key prefix {self.prefix}, logs in {self.workdir}")
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.drop()

    async def drop(self) -> None:
        if self.created:
            with contextlib.suppress(Exception):
                admin = await asyncpg.connect(f"{PG}/postgres")
                try:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
                    self.created = False
                finally:
                    await admin.close()
        r = aioredis.Redis.from_url(self.redis_url)
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
        finally:
            await r.aclose()
        log(f"dropped database {self.database} and {n} keys under {self.prefix}")

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.database_url)


# ------------------------------------------------------------------ helpline nodes
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One `helpline serve` subprocess on the bench's database and key prefix."""

    def __init__(self, stack: BenchStack, name: str = "node", **overrides: Any) -> None:
        self.port = free_port()
        self.name = name
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELPLINE_")}
        env.update(
            {
                "HELPLINE_DATABASE_URL": stack.database_url,
                "HELPLINE_REDIS_URL": stack.redis_url,
                "HELPLINE_REDIS_KEY_PREFIX": stack.prefix,
                "HELPLINE_AUTH_JWT_SECRET": SECRET,
                "HELPLINE_SERVER_HOST": "127.0.0.1",
                "HELPLINE_SERVER_PORT": str(self.port),
                "HELPLINE_SERVER_PUBLIC_URL": f"http://127.0.0.1:{self.port}",
                "HELPLINE_SMS_PROVIDER": "console",
                "HELPLINE_LOG_LEVEL": "WARNING",
                "HELPLINE_DATA_DIR": os.path.join(stack.workdir, "var"),
            }
        )
        for k, v in overrides.items():
            env["HELPLINE_" + k.upper()] = str(v)
        self.env = env
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        self.log_path = os.path.join(stack.workdir, f"{name}-{self.port}.log")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, timeout: float = 60) -> "Node":
        logf = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve"],
            env=self.env,
            cwd=REPO,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=raise_nofile,
        )
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as s:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited {self.proc.returncode}:\n{self.tail()}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with s.get(self.base + "/readyz") as r:
                        if r.status == 200:
                            log(f"{self.name} ready on :{self.port} (pid {self.pid})")
                            return self
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready in {timeout}s:\n{self.tail()}")

    async def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        for _ in range(150):
            if self.proc.poll() is not None:
                return
            await asyncio.sleep(0.1)
        self.proc.kill()
        self.proc.wait()

    def tail(self, n: int = 30) -> str:
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-n:])

    def log_problems(self) -> list[str]:
        """ERROR/Traceback lines (and warnings about slow consumers etc.) of the node log."""
        with open(self.log_path, errors="replace") as f:
            return [ln.rstrip() for ln in f if " ERROR " in ln or "Traceback" in ln or " WARNING " in ln]


def proc_stats(pid: int) -> tuple[int, float]:
    """(RSS bytes, CPU seconds user+system) of one process."""
    import psutil

    p = psutil.Process(pid)
    t = p.cpu_times()
    return p.memory_info().rss, t.user + t.system


# ------------------------------------------------------------------ accounts in bulk
async def create_accounts(
    conn: asyncpg.Connection,
    role: str,
    n: int,
    tag: str,
    skills: list[str] | None = None,
    verified: bool = False,
    with_phone: bool = False,
) -> list[str]:
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
        role,
        f"{tag}-{role}",
        verified,
        with_phone,
        int(start),
        n,
    )
    ids = [str(r["id"]) for r in rows]
    if role == "responder":
        await conn.execute(
            "INSERT INTO responders (account_id, skills) SELECT unnest($1::uuid[]), $2::text[]",
            ids,
            sorted(skills or ALL_SKILLS),
        )
    return ids


def tokens_for(ids: list[str], role: str) -> list[str]:
    from infra.auth import TokenService

    ts = TokenService(SECRET, ISSUER, AUDIENCE, 86400)
    return [ts.issue(i, role) for i in ids]


def spread(rng: random.Random, n: int, radius_km: float = 4.0) -> list[tuple[float, float]]:
    """n points uniformly within radius_km of CENTER."""
    out = []
    for _ in range(n):
        r = radius_km * math.sqrt(rng.random())
        a = rng.random() * 2 * math.pi
        dlat = r * math.cos(a) / 111.0
        dlon = r * math.sin(a) / (111.0 * math.cos(math.radians(CENTER[0])))
        out.append((round(CENTER[0] + dlat, 6), round(CENTER[1] + dlon, 6)))
    return out


# ------------------------------------------------------------------ a light WebSocket client of contract §3
PushHandler = Callable[["WSClient", dict[str, Any], float], None]


class WSClient:
    """One connection: commands by ref (futures of (recv_time, answer)), pushes to a callback."""

    _refs = itertools.count(1)

    def __init__(
        self, ws: Any, welcome: dict[str, Any], on_push: PushHandler | None, tag: Any = None
    ) -> None:
        self.ws, self.welcome, self.on_push, self.tag = ws, welcome, on_push, tag
        self.waiting: dict[str, asyncio.Future[tuple[float, dict[str, Any]]]] = {}
        self.closed = False
        self.pushes = 0
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(
        cls,
        url: str,
        token: str,
        on_push: PushHandler | None = None,
        tag: Any = None,
        compression: str | None = "deflate",
        timeout: float = 60,
    ) -> "WSClient":
        ws = await websockets.connect(
            url,
            ping_interval=None,
            max_size=2**20,
            compression=compression,
            open_timeout=timeout,
            close_timeout=2,
            max_queue=64,
        )
        try:
            await ws.send(json.dumps({"type": "hello", "token": token}))
            welcome = _decode(await asyncio.wait_for(ws.recv(), timeout))
        except BaseException:
            await ws.close()
            raise
        if welcome.get("type") != "welcome":
            await ws.close()
            raise RuntimeError(f"hello answered {welcome}")
        return cls(ws, welcome, on_push, tag)

    @property
    def account_id(self) -> str:
        return self.welcome["account"]["id"]

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                t = time.perf_counter()
                msg = _decode(raw)
                if msg.get("type") in ("ok", "error"):
                    fut = self.waiting.pop(msg.get("ref"), None)
                    if fut is not None:
                        if not fut.done():
                            fut.set_result((t, msg))
                        continue
                self.pushes += 1
                if self.on_push is not None:
                    try:
                        self.on_push(self, msg, t)
                    except Exception as e:  # a bench bug should be loud but not kill the reader
                        log(f"push handler failed: {e!r}")
        except Exception:
            pass
        finally:
            self.closed = True
            for fut in self.waiting.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("closed"))
                    fut.exception()  # nobody may be waiting any more: do not log "never retrieved"
            self.waiting.clear()

    async def send(
        self, type_: str, **fields: Any
    ) -> tuple[float, asyncio.Future[tuple[float, dict[str, Any]]]]:
        """Send a command; (time sent, future of (time answered, answer))."""
        ref = f"r{next(self._refs)}"
        fut: asyncio.Future[tuple[float, dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self.waiting[ref] = fut
        t = time.perf_counter()
        await self.ws.send(json.dumps({"type": type_, "ref": ref, **fields}, separators=(",", ":")))
        return t, fut

    async def call(self, type_: str, timeout: float = 30, **fields: Any) -> dict[str, Any]:
        _, fut = await self.send(type_, **fields)
        return (await asyncio.wait_for(fut, timeout))[1]

    async def ok(self, type_: str, timeout: float = 30, **fields: Any) -> dict[str, Any]:
        msg = await self.call(type_, timeout, **fields)
        if msg.get("type") != "ok":
            raise RuntimeError(f"{type_} answered {msg}")
        return msg

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 3)
        self.reader.cancel()
        with contextlib.suppress(BaseException):
            await self.reader


async def connect_many(
    urls: list[str],
    tokens: list[str],
    on_push: PushHandler | None = None,
    concurrency: int = 100,
    compression: str | None = "deflate",
    attempts: int = 3,
) -> tuple[list[WSClient | None], int]:
    """Connect token i to urls[i % len(urls)]; (clients, failures). A failed one is None."""
    sem = asyncio.Semaphore(concurrency)
    out: list[WSClient | None] = [None] * len(tokens)
    failures = 0

    async def one(i: int) -> None:
        nonlocal failures
        async with sem:
            for a in range(attempts):
                try:
                    out[i] = await WSClient.connect(
                        urls[i % len(urls)], tokens[i], on_push, tag=i, compression=compression
                    )
                    return
                except Exception as e:
                    if a == attempts - 1:
                        failures += 1
                        if failures <= 5:
                            log(f"connect {i} failed: {e!r}")
                    else:
                        await asyncio.sleep(0.2 * (a + 1))

    await asyncio.gather(*(one(i) for i in range(len(tokens))))
    return out, failures


async def close_all(clients: Iterable[WSClient | None]) -> None:
    cs = [c for c in clients if c is not None]
    for i in range(0, len(cs), 500):
        await asyncio.gather(*(c.close() for c in cs[i : i + 500]), return_exceptions=True)


# ------------------------------------------------------------------ responders that work their offers
@dataclass
class ResponderStats:
    offers: dict[str, float] = field(
        default_factory=dict
    )  # incident id -> first offer received (perf_counter)
    offers_total: int = 0
    accepted: int = 0
    declined: int = 0
    conflicts: int = 0
    resolved: int = 0
    errors: int = 0


class ResponderCrew:
    """Responders that accept (or decline with probability `decline_p`) each offer at once, then go
    en route, on scene and resolved `hold_s` apart, so they become available again."""

    def __init__(self, rng: random.Random, decline_p: float = 0.1, hold_s: float = 0.2) -> None:
        self.rng, self.decline_p, self.hold_s = rng, decline_p, hold_s
        self.stats = ResponderStats()
        self.tasks: set[asyncio.Task[None]] = set()

    def on_push(self, client: WSClient, msg: dict[str, Any], t: float) -> None:
        if msg.get("type") != "offer":
            return
        iid = msg["incident"]["id"]
        self.stats.offers_total += 1
        self.stats.offers.setdefault(iid, t)
        task = asyncio.get_running_loop().create_task(self._work(client, msg))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _work(self, c: WSClient, offer: dict[str, Any]) -> None:
        try:
            if self.rng.random() < self.decline_p:
                ans = await c.call("offer.decline", offer_id=offer["offer_id"])
                self.stats.declined += ans.get("type") == "ok"
                return
            ans = await c.call("offer.accept", offer_id=offer["offer_id"])
            if ans.get("type") != "ok":
                self.stats.conflicts += 1
                return
            self.stats.accepted += 1
            iid = offer["incident"]["id"]
            for status in ("en_route", "on_scene", "resolved"):
                await asyncio.sleep(self.hold_s)
                ans = await c.call("incident.progress", incident_id=iid, status=status)
                if ans.get("type") != "ok":
                    self.stats.errors += 1
                    return
            self.stats.resolved += 1
        except Exception:
            self.stats.errors += 1

    async def drain(self, timeout: float = 15) -> None:
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)


async def start_duty(clients: list[WSClient], points: list[tuple[float, float]]) -> None:
    for c, (lat, lon) in zip(clients, points):
        await c.ok("duty.start", lat=lat, lon=lon)


# ------------------------------------------------------------------ py-spy summary
def summarize_collapsed(path: str, top: int = 20) -> str:
    """Where a py-spy `--format raw` (collapsed stacks) profile spends its samples.

    With uvloop the loop's own C code (including its epoll wait, which py-spy cannot
    always tell from work) shows as self time of asyncio/runners.py:Runner.run; the
    shares below are given of all samples and of the samples outside that frame
    ("busy")."""
    self_n: dict[str, int] = {}
    incl: dict[str, int] = {}
    pkg: dict[str, int] = {}
    total = 0
    with open(path) as f:
        for line in f:
            line = line.rstrip()
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            try:
                n = int(count)
            except ValueError:
                continue
            total += n
            keys = [_frame_key(fr) for fr in stack.split(";")]
            for key in set(keys):
                incl[key] = incl.get(key, 0) + n
            self_n[keys[-1]] = self_n.get(keys[-1], 0) + n
            pkg[_package(keys)] = pkg.get(_package(keys), 0) + n
    if not total:
        return "no samples"
    loop_self = self_n.get("asyncio/runners.py:Runner.run", 0)
    busy = max(1, total - loop_self)
    lines = [
        f"{total} samples; {loop_self} ({100 * loop_self / total:.0f}%) in the event loop's own frame "
        f"(uvloop C code and its wait); shares below: % of busy samples ({busy})"
    ]
    lines.append("busy samples by where the leaf frame is:")
    for k, v in sorted(pkg.items(), key=lambda kv: -kv[1]):
        if k != "event loop (uvloop)":
            lines.append(f"  {100 * v / busy:5.1f}%  {k}")
    lines.append("top functions by self time:")
    for k, v in sorted(self_n.items(), key=lambda kv: -kv[1])[:top]:
        if k != "asyncio/runners.py:Runner.run":
            lines.append(f"  {100 * v / busy:5.1f}%  {k}")
    lines.append("top helpline functions by inclusive time:")
    ours = [
        (k, v)
        for k, v in incl.items()
        if k.split("/")[0] in ("handlers", "dispatch", "server", "mediation")
        and not k.startswith("server/cli.py")
    ]
    for k, v in sorted(ours, key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * v / busy:5.1f}%  {k}")
    return "\n".join(lines)


def _package(keys: list[str]) -> str:
    leaf = keys[-1]
    if leaf == "asyncio/runners.py:Runner.run":
        return "event loop (uvloop)"
    for prefix, name in (
        ("asyncpg/", "asyncpg (PostgreSQL driver)"),
        ("redis/", "redis-py"),
        ("aiohttp/_websocket/", "aiohttp WebSocket frames (incl. deflate)"),
        ("aiohttp/compression", "aiohttp WebSocket frames (incl. deflate)"),
        ("aiohttp/", "aiohttp (HTTP/WS plumbing)"),
        ("json/", "json (stdlib)"),
        ("msgspec", "msgspec"),
        ("jose/", "python-jose (JWT)"),
        ("prometheus_client/", "prometheus_client"),
        ("asyncio/", "asyncio (Python parts)"),
        ("logging/", "logging"),
    ):
        if leaf.startswith(prefix):
            return name
    top = leaf.split("/")[0]
    if top in ("handlers", "dispatch", "server", "mediation"):
        return f"helpline {top}/"
    return "other: " + top


def _frame_key(fr: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"; drop the line number
    fr = fr.strip()
    if fr.endswith(")") and "(" in fr:
        fn, _, loc = fr[:-1].rpartition(" (")
        path = loc.rsplit(":", 1)[0]
        for marker in ("site-packages/", str(REPO) + "/", "lib/python3.11/"):
            if marker in path:
                path = path.split(marker, 1)[1]
                break
        return f"{path}:{fn}"
    return fr


class PySpy:
    """py-spy record of one process into a collapsed-stack file, non-blocking sampling."""

    def __init__(self, pid: int, out: str, rate: int = 100) -> None:
        self.pid, self.out, self.rate = pid, out, rate
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = Path(sys.executable).with_name("py-spy")
        if not exe.exists():
            raise RuntimeError("py-spy not installed in the venv: .venv/bin/pip install py-spy")
        self.proc = subprocess.Popen(
            [
                str(exe),
                "record",
                "--pid",
                str(self.pid),
                "--rate",
                str(self.rate),
                "--format",
                "raw",
                "--nonblocking",
                "-o",
                self.out,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def stop(self) -> str:
        if self.proc is None:
            return ""
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return summarize_collapsed(self.out) if os.path.exists(self.out) else "py-spy wrote nothing"


# ------------------------------------------------------------------ client worker processes (many residents)
def resident_worker(
    pipe: Any,
    urls: list[str],
    tokens: list[str],
    schedule: list[tuple[Any, ...]],
    compression: str | None,
    concurrency: int,
) -> None:
    """A client process: connects its residents, then obeys the parent over `pipe`.

    Commands: ("run", t0_wall) sends `schedule` [(i, offset_s, local_idx, fields)] as
    help.request at t0_wall + offset_s and answers ("done", results); ("status",) answers
    ("status", open, closed); ("stop",) closes everything and exits."""
    raise_nofile()
    use_uvloop()
    tune_gc()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        t = time.perf_counter()
        clients, failures = await connect_many(
            urls, tokens, None, concurrency=concurrency, compression=compression
        )
        pipe.send(("connected", len(tokens) - failures, failures, time.perf_counter() - t))
        while True:
            cmd = await loop.run_in_executor(None, pipe.recv)
            if cmd[0] == "run":
                base = time.perf_counter() + (cmd[1] - time.time())
                pipe.send(("done", await _run_schedule(clients, schedule, base)))
            elif cmd[0] == "status":
                live = [c for c in clients if c is not None]
                pipe.send(
                    (
                        "status",
                        sum(not c.closed for c in live),
                        sum(c.closed for c in live),
                        sum(c.pushes for c in live),
                    )
                )
            elif cmd[0] == "stop":
                await close_all(clients)
                pipe.send(("stopped",))
                return

    asyncio.run(main())


async def _run_schedule(
    clients: list[WSClient | None], schedule: list[tuple[Any, ...]], base: float
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []

    async def one(i: int, due: float, idx: int, fields: dict[str, Any]) -> None:
        rec: dict[str, Any] = {"i": i, "request_id": fields["request_id"]}
        results.append(rec)
        c = clients[idx]
        if c is None or c.closed:
            rec["error"] = "not connected"
            return
        try:
            t, fut = await c.send("help.request", **fields)
            rec["lag"] = t - due
            t_ok, ans = await asyncio.wait_for(fut, 30)
        except asyncio.TimeoutError:
            rec["error"] = "timeout"
            return
        except Exception as e:
            rec["error"] = type(e).__name__
            return
        rec["ack"] = t_ok - due  # from the scheduled time: client lag counts against us
        rec["ack_sent"] = t_ok - t
        if ans.get("type") == "ok":
            rec["incident"] = ans["incident"]["id"]
            rec["status"] = ans["incident"]["status"]
        else:
            rec["error"] = ans.get("code")

    tasks = []
    for i, offset, idx, fields in schedule:
        due = base + offset
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due, idx, fields)))
    if tasks:
        await asyncio.gather(*tasks)
    return results


class Workers:
    """Client worker processes (spawned), each holding a slice of the residents."""

    def __init__(
        self,
        procs: int,
        urls: list[str],
        tokens: list[str],
        compression: str | None,
        schedule: list[tuple[int, float, int, dict[str, Any]]] | None = None,
        concurrency: int = 100,
    ) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.pipes = []
        self.procs = []
        schedule = schedule or []
        for w in range(procs):
            idxs = list(range(w, len(tokens), procs))  # global resident index g = w + k*procs
            w_urls = [urls[g % len(urls)] for g in idxs]
            w_tokens = [tokens[g] for g in idxs]
            # the worker connects local k to w_urls[k % len(w_urls)]: give it one url per token
            w_sched = [(i, off, g // procs, fields) for i, off, g, fields in schedule if g % procs == w]
            parent, child = ctx.Pipe()
            p = ctx.Process(
                target=resident_worker,
                args=(child, w_urls, w_tokens, w_sched, compression, concurrency),
                daemon=True,
            )
            p.start()
            self.pipes.append(parent)
            self.procs.append(p)

    async def _recv_all(self, timeout: float) -> list[Any]:
        loop = asyncio.get_running_loop()

        def recv(p: Any) -> Any:
            if not p.poll(timeout):
                raise TimeoutError("client worker did not answer")
            return p.recv()

        return list(await asyncio.gather(*(loop.run_in_executor(None, recv, p) for p in self.pipes)))

    async def connected(self, timeout: float = 600) -> tuple[int, int, float]:
        answers = await self._recv_all(timeout)
        return sum(a[1] for a in answers), sum(a[2] for a in answers), max(a[3] for a in answers)

    async def run(self, t0_wall: float, timeout: float = 600) -> list[dict[str, Any]]:
        for p in self.pipes:
            p.send(("run", t0_wall))
        return [r for a in await self._recv_all(timeout) for r in a[1]]

    async def status(self) -> tuple[int, int, int]:
        for p in self.pipes:
            p.send(("status",))
        answers = await self._recv_all(60)
        return sum(a[1] for a in answers), sum(a[2] for a in answers), sum(a[3] for a in answers)

    async def stop(self) -> None:
        for p in self.pipes:
            with contextlib.suppress(Exception):
                p.send(("stop",))
        with contextlib.suppress(Exception):
            await self._recv_all(120)
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()


class PgWaits:
    """Samples pg_stat_activity of one database (every `every` s): what its backends are doing."""

    def __init__(self, database_url: str, database: str, every: float = 0.05) -> None:
        self.url, self.database, self.every = database_url, database, every
        self.counts: dict[str, int] = {}
        self.samples = 0
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            while True:
                rows = await conn.fetch(
                    "SELECT state, wait_event_type, wait_event, left(query, 60) AS q FROM pg_stat_activity"
                    " WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
                    self.database,
                )
                self.samples += 1
                for r in rows:
                    if r["state"] == "idle":
                        continue
                    what = f"{r['state']}: {r['wait_event_type'] or 'CPU'}:{r['wait_event'] or '-'}"
                    if r["wait_event_type"] == "Lock":
                        what += f"  [{r['q']}]"
                    self.counts[what] = self.counts.get(what, 0) + 1
                await asyncio.sleep(self.every)
        finally:
            await conn.close()

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> str:
        if self.task:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task
        if not self.samples:
            return "no samples"
        lines = [
            f"PostgreSQL backends of the bench database, mean count per state over {self.samples} samples:"
        ]
        for k, v in sorted(self.counts.items(), key=lambda kv: -kv[1])[:12]:
            lines.append(f"  {v / self.samples:6.2f}  {k}")
        return "\n".join(lines)


async def pg_cpu(database_url: str, database: str) -> float:
    """CPU seconds (user+system) used so far by the PostgreSQL backends connected to this database."""
    import psutil

    conn = await asyncpg.connect(database_url)
    try:
        pids = [
            r["pid"]
            for r in await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", database
            )
        ]
    finally:
        await conn.close()
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total
