"""idle: what 10,000 idle WebSockets cost one node, against a bare aiohttp WebSocket server in the same run.

Two servers, one after the other, each connected by the same client worker processes with the same
number of connections: first the **bare** server (`--bare-serve`: aiohttp and uvloop with the settings
of `helpline serve`: heartbeat 25 s, autoping, no permessage-deflate, 64 KiB frames, listen backlog 1024,
the same garbage-collector thresholds and a gc.freeze() after startup; it answers hello with a welcome
and then only reads), then one `helpline serve` node, where residents connect (hello → welcome, as the
resident page does) and then stay idle; the server's heartbeat (aiohttp ping every 25 s) and the presence
refresher (every 15 s) keep running.

Reported, for each:
* memory per connection: (server RSS with all connected − server RSS with the first 100 connected) /
  (connections − 100), after a settle pause and again after the rest window; the ratio helpline / bare
  (issue 18: at most 1.2) is of the second when the window spans a heartbeat period (the default 30 s:
  every socket has then sent a ping and had its pong, the steady state of an idle connection; the
  first pings allocate a little, ~0.8 KiB a socket on both servers), else of the first;
* CPU at rest: server process CPU (user+system) over a window (default 30 s, which spans one full
  25 s heartbeat period) while nothing else happens;
* connection rate while connecting.

`--tracemalloc` runs both servers inside this process instead (uvloop, the same settings; helpline as
`serve` builds it), with tracemalloc on, and prints the Python bytes per connection of each and where
helpline's come from (top allocation sites, per connection). tracemalloc costs memory and time of its
own: RSS is not measured in that mode.

The clients offer permessage-deflate as browsers do (both servers decline it); --no-compression makes
them not offer it. HEADLINE lines (bench/round.py): idle.kib_per_conn, idle.bare_kib_per_conn, idle.ratio,
idle.rest_cpu_pct, idle.connect_cpu_ms. The exit status is 1 when the ratio is over 1.2 or a connection
failed or dropped.

    .venv/bin/python -m bench.idle [--connections 10000] [--rest-seconds 30] [--client-procs 2]
                                  [--no-bare] [--tracemalloc]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from testkit.accounts import create_accounts, tokens_for
from testkit.crowd import Workers
from testkit.nodes import Node
from testkit.pyspy import PySpy
from testkit.runtime import REPO, log, raise_nofile, tune_gc, use_uvloop
from testkit.stack import BenchStack, free_port
from testkit.stats import CpuReport, CpuWindow, conditions, headline, proc_stats

TARGET_RATIO = 1.2      # issue 18: helpline's memory per idle connection at most 1.2x the bare server's
MAX_FRAME = 64 * 1024   # as handlers/ws.py
HEARTBEAT_S = 25        # as handlers/ws.py


# ------------------------------------------------------------------ the bare server
def bare_app() -> Any:
    """An aiohttp app with one /ws route set up as helpline's: hello answered by a welcome, then reads."""
    from aiohttp import WSMsgType, web

    welcome = '{"type":"welcome","account":{"id":"bare","role":"resident"}}'

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME, heartbeat=HEARTBEAT_S, autoping=True, compress=False)
        await ws.prepare(request)
        try:
            msg = await ws.receive(timeout=10)
        except TimeoutError:
            await ws.close()
            return ws
        if msg.type != WSMsgType.TEXT:
            await ws.close()
            return ws
        await ws.send_str(welcome)
        async for _ in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    return app


async def start_bare(port: int, keepalive_timeout: float = 15) -> Any:
    """The bare app listening on `port` as `helpline serve` listens (access log off, backlog 1024)."""
    from aiohttp import web

    runner = web.AppRunner(bare_app(), handle_signals=False, access_log=None, shutdown_timeout=5,
                           keepalive_timeout=keepalive_timeout)
    await runner.setup()
    assert runner.server is not None
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(runner.server, "127.0.0.1", port, backlog=1024, reuse_address=True)
    return runner, listener


async def bare_serve(port: int) -> None:
    runner, listener = await start_bare(port)
    gc.collect()        # as server/gcwatch.py freeze_startup
    gc.freeze()
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    listener.close()
    await runner.cleanup()


class BareProcess:
    """`python -m bench.idle --bare-serve PORT` in a process of its own."""

    def __init__(self) -> None:
        self.port = free_port()
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> BareProcess:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.idle", "--bare-serve", str(self.port)],
                                     cwd=REPO, stdout=subprocess.PIPE, preexec_fn=raise_nofile)
        assert self.proc.stdout is not None
        line = await asyncio.get_running_loop().run_in_executor(None, self.proc.stdout.readline)
        if b"ready" not in line:
            raise RuntimeError(f"bare server did not start: {line!r}")
        log(f"bare server ready on :{self.port} (pid {self.pid})")
        return self

    async def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.proc.wait, 15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ------------------------------------------------------------------ one measurement
@dataclass
class Result:
    name: str
    warm_n: int
    ok_n: int = 0
    failed: int = 0
    dropped: int = 0
    open_n: int = 0
    connect_s: float = 0.0
    connect_cpu: float = 0.0
    rss_start: int = 0
    rss0: int = 0
    rss1: int = 0
    rss2: int = 0
    rest_cpu: float = 0.0
    rest_span: float = 0.0
    clients: CpuReport | None = None     # the client processes' CPU while connecting
    notes: list[str] = field(default_factory=list)

    @property
    def per_settled(self) -> float:
        """Bytes per connection a settle pause after the last connected."""
        return (self.rss1 - self.rss0) / max(1, self.ok_n)

    @property
    def per_rested(self) -> float:
        """Bytes per connection after the rest window (every connection has been through a heartbeat when the
        window is at least one heartbeat period: the steady state of an idle socket)."""
        return (self.rss2 - self.rss0) / max(1, self.ok_n)

    @property
    def per(self) -> float:
        """The figure judged: after the rest window when it spans a heartbeat period, else after the settle."""
        return self.per_rested if self.rest_span >= HEARTBEAT_S else self.per_settled

    def lines(self) -> list[str]:
        n = self.ok_n + self.warm_n
        return [
            f"{self.name}: {self.open_n} connections open ({self.failed} failed to connect, "
            f"{self.dropped} dropped while idle)",
            f"  connect: {self.ok_n} in {self.connect_s:.1f} s = {self.ok_n / max(self.connect_s, 1e-9):.0f}"
            f" connections/s; server CPU {1000 * self.connect_cpu / max(1, self.ok_n):.2f} ms per connect",
            f"  RSS: {self.rss_start / 2**20:.1f} MiB at start, {self.rss0 / 2**20:.1f} MiB with {self.warm_n}, "
            f"{self.rss1 / 2**20:.1f} MiB with {n}, {self.rss2 / 2**20:.1f} MiB after the rest window",
            f"  memory per connection: {self.per_settled / 1024:.1f} KiB after the settle, "
            f"{self.per_rested / 1024:.1f} KiB after the rest window",
            f"  CPU at rest: {100 * self.rest_cpu / max(self.rest_span, 1e-9):.2f}% of one core over "
            f"{self.rest_span:.0f} s ({1e6 * self.rest_cpu / max(self.rest_span, 1e-9) / max(1, n):.1f} us/s per"
            " connection)",
            *([self.clients.line("client processes while connecting")] if self.clients is not None else []),
            *self.notes,
        ]


async def measure(name: str, pid: int, url: str, tokens: list[str], args: argparse.Namespace,
                  compression: str | None, rest_seconds: float, profile: str | None = None,
                  profile_rest: str | None = None) -> Result:
    """Connect `tokens` to `url` (the first hundredth as a warm-up), settle, read the server's RSS and CPU."""
    warm_n = min(100, len(tokens) // 10)
    r = Result(name, warm_n)
    warm = rest = None
    try:
        r.rss_start = proc_stats(pid)[0]
        warm = Workers(1, [url], tokens[:warm_n], compression)
        await warm.connected()
        await asyncio.sleep(args.settle)
        r.rss0 = proc_stats(pid)[0]
        log(f"{name}: {warm_n} warm-up connections; connecting {len(tokens) - warm_n} more")
        cpu_c0 = proc_stats(pid)[1]
        spy = PySpy(pid, profile) if profile else None
        if spy:
            spy.start()
        rest = Workers(args.client_procs, [url], tokens[warm_n:], compression,
                       concurrency=args.connect_concurrency)
        cw = CpuWindow(rest.pids).start()
        r.ok_n, r.failed, r.connect_s = await rest.connected(timeout=1200)
        r.connect_cpu = proc_stats(pid)[1] - cpu_c0
        r.clients = cw.stop()
        if spy:
            r.notes.append(f"profile of {name} while connecting ({profile}):\n{spy.stop()}")
        log(f"{name}: {r.ok_n} connected, {r.failed} failed in {r.connect_s:.1f} s; settling {args.settle:g} s")
        await asyncio.sleep(args.settle)
        r.rss1, cpu0 = proc_stats(pid)
        log(f"{name}: measuring CPU at rest for {rest_seconds:g} s")
        spy_rest = PySpy(pid, profile_rest) if profile_rest else None
        if spy_rest:
            spy_rest.start()
        t0 = time.perf_counter()
        await asyncio.sleep(rest_seconds)
        r.rss2, cpu1 = proc_stats(pid)
        r.rest_cpu, r.rest_span = cpu1 - cpu0, time.perf_counter() - t0
        if spy_rest:
            r.notes.append(f"profile of {name} at rest ({profile_rest}):\n{spy_rest.stop()}")
        open_a, closed_a, _ = await warm.status()
        open_b, closed_b, _ = await rest.status()
        r.open_n, r.dropped = open_a + open_b, closed_a + closed_b
        return r
    finally:
        for w in (rest, warm):
            if w is not None:
                await w.stop()


async def run(args: argparse.Namespace) -> int:
    compression = None if args.no_compression else "deflate"
    nofile = raise_nofile()
    print(
        f"bench.idle - {conditions()}; open-file limit {nofile}; {args.connections} connections, "
        f"{args.client_procs} client processes; client compression: {compression or 'off'}"
    )
    async with BenchStack("idle") as stack:
        conn = await stack.connect()
        try:
            ids = await create_accounts(conn, "resident", args.connections, "idle")
        finally:
            await conn.close()
        tokens = tokens_for(ids, "resident")
        bare: Result | None = None
        if not args.no_bare:
            server = await BareProcess().start()
            try:
                bare = await measure("bare aiohttp", server.pid, server.ws_url, tokens, args, compression,
                                     args.bare_rest_seconds)
            finally:
                await server.stop()
            print("\n".join(bare.lines()))
        node = await Node(stack, "node").start()
        try:
            hl = await measure("helpline", node.pid, node.ws_url, tokens, args, compression, args.rest_seconds,
                               args.profile, args.profile_rest)
            problems = node.log_problems()
        finally:
            await node.stop()
        print("\n".join(hl.lines()))
        if problems:
            print(f"  node log: {len(problems)} warning/error lines, e.g. {problems[:3]}")
        ok = hl.failed == 0 and hl.dropped == 0
        print(headline("idle.kib_per_conn", hl.per / 1024))
        print(headline("idle.rest_cpu_pct", 100 * hl.rest_cpu / max(hl.rest_span, 1e-9)))
        print(headline("idle.connect_cpu_ms", 1000 * hl.connect_cpu / max(1, hl.ok_n)))
        if bare is not None:
            ratio = hl.per / max(bare.per, 1.0)
            ok = ok and ratio <= TARGET_RATIO and bare.failed == 0 and bare.dropped == 0
            print(headline("idle.bare_kib_per_conn", bare.per / 1024))
            print(headline("idle.ratio", ratio))
            when = ("after a rest window of a heartbeat period or more" if min(hl.rest_span, bare.rest_span)
                    >= HEARTBEAT_S else "after the settle (rest windows shorter than a heartbeat period)")
            print(f"memory per connection {when}: helpline {hl.per / 1024:.1f} KiB, bare aiohttp "
                  f"{bare.per / 1024:.1f} KiB, ratio {ratio:.2f} (target <= {TARGET_RATIO}: "
                  f"{'met' if ratio <= TARGET_RATIO else 'NOT met'}); after the settle "
                  f"{hl.per_settled / max(bare.per_settled, 1.0):.2f}")
        else:
            print(f"memory per connection: helpline {hl.per / 1024:.1f} KiB (no bare server: --no-bare)")
        return 0 if ok else 1


# ------------------------------------------------------------------ tracemalloc, both servers in this process
async def traced(args: argparse.Namespace) -> int:
    import tracemalloc

    from aiohttp import web

    from handlers.context import HUB
    from handlers.transport import ConnectionCaps
    from infra import config as config_mod
    from server.app import create_app
    from testkit.nodes import node_env

    compression = None if args.no_compression else "deflate"
    raise_nofile()
    tune_gc()
    print(f"bench.idle --tracemalloc - {conditions()}; {args.connections} connections; Python bytes per connection")
    async with BenchStack("idle") as stack:
        conn = await stack.connect()
        try:
            ids = await create_accounts(conn, "resident", args.connections, "idle")
        finally:
            await conn.close()
        tokens = tokens_for(ids, "resident")
        warm_n = min(100, len(tokens) // 10)
        loop = asyncio.get_running_loop()

        async def one(name: str, url: str) -> tuple[float, tracemalloc.Snapshot, tracemalloc.Snapshot, int]:
            warm = Workers(1, [url], tokens[:warm_n], compression)
            rest = None
            try:
                await warm.connected()
                await asyncio.sleep(args.settle)
                gc.collect()
                snap0 = tracemalloc.take_snapshot()
                rest = Workers(args.client_procs, [url], tokens[warm_n:], compression,
                               concurrency=args.connect_concurrency)
                ok_n, failed, secs = await rest.connected(timeout=1200)
                await asyncio.sleep(args.settle)
                gc.collect()
                snap1 = tracemalloc.take_snapshot()
                total = sum(s.size_diff for s in snap1.compare_to(snap0, "filename"))
                print(f"{name}: {ok_n} connected ({failed} failed) in {secs:.1f} s; "
                      f"{total / max(1, ok_n):.0f} Python bytes per connection (tracemalloc)")
                return total / max(1, ok_n), snap0, snap1, ok_n
            finally:
                for w in (rest, warm):
                    if w is not None:
                        await w.stop()

        tracemalloc.start(args.frames)
        port = free_port()
        runner, listener = await start_bare(port)
        try:
            bare_per, b0, b1, b_n = await one("bare aiohttp", f"ws://127.0.0.1:{port}/ws")
        finally:
            listener.close()
            await runner.cleanup()

        env = node_env(stack.database_url, stack.redis_url, stack.prefix, log_level="WARNING",
                       data_dir=os.path.join(stack.workdir, "var"))
        cfg = config_mod.load(env)
        app = create_app(cfg, stack.database_url, stack.redis_url)
        hrunner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=5,
                                keepalive_timeout=cfg.server.keepalive_timeout_s)
        await hrunner.setup()
        assert hrunner.server is not None
        caps = ConnectionCaps(cfg.server.max_connections_per_address, 0, config_mod.exempt_networks(cfg))
        app[HUB].max_sockets = cfg.server.max_connections_per_node
        hport = free_port()
        hlistener = await loop.create_server(caps.wrap(hrunner.server), "127.0.0.1", hport, backlog=1024,
                                             reuse_address=True)
        try:
            hl_per, h0, h1, h_n = await one("helpline", f"ws://127.0.0.1:{hport}/ws")
        finally:
            hlistener.close()
            await hrunner.cleanup()
        tracemalloc.stop()
        print(f"Python bytes per connection: helpline {hl_per:.0f}, bare {bare_per:.0f}, "
              f"difference {hl_per - bare_per:.0f}")
        for label, s0, s1, n in (("bare aiohttp", b0, b1, b_n), ("helpline", h0, h1, h_n)):
            print(f"{label}: top allocation sites, bytes (and objects) per connection")
            for st in s1.compare_to(s0, "traceback" if args.frames > 1 else "lineno")[: args.top]:
                if st.size_diff <= 0:
                    continue
                where = " <- ".join(f"{_short(f.filename)}:{f.lineno}" for f in st.traceback)
                print(f"  {st.size_diff / max(1, n):8.0f} B  {st.count_diff / max(1, n):5.2f}  {where}")
        return 0


def _short(filename: str) -> str:
    if filename.startswith(str(REPO)):
        return os.path.relpath(filename, REPO)
    return filename.split("site-packages/")[-1]


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.idle", description="memory and CPU of idle WebSockets")
    ap.add_argument("--bare-serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--rest-seconds", type=float, default=30, help="CPU-at-rest window (default 30)")
    ap.add_argument("--bare-rest-seconds", type=float, default=30,
                    help="CPU-at-rest window of the bare server (default 30)")
    ap.add_argument("--settle", type=float, default=5, help="pause before each memory reading (default 5)")
    ap.add_argument("--client-procs", type=int, default=2)
    ap.add_argument("--connect-concurrency", type=int, default=100)
    ap.add_argument("--no-compression", action="store_true", help="clients do not offer permessage-deflate")
    ap.add_argument("--no-bare", action="store_true", help="measure helpline only")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="both servers in this process under tracemalloc: Python bytes per connection and where")
    ap.add_argument("--frames", type=int, default=1, help="--tracemalloc: frames per allocation site (default 1)")
    ap.add_argument("--top", type=int, default=25, help="--tracemalloc: allocation sites shown (default 25)")
    ap.add_argument("--profile", metavar="FILE", help="py-spy the node while the clients connect")
    ap.add_argument("--profile-rest", metavar="FILE", help="py-spy the node during the rest window")
    args = ap.parse_args()
    if args.bare_serve:
        use_uvloop()
        tune_gc()
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(bare_serve(args.bare_serve))
        return
    if args.tracemalloc:
        use_uvloop()
        raise SystemExit(asyncio.run(traced(args)))
    raise SystemExit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
