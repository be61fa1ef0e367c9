"""reconnect: 5,000 clients reconnecting at once after a node restart, with jitter.

One `helpline serve` node; N residents (default 5,000) connect (hello → welcome) from
client worker processes and stay connected; one in 50 has an open incident. Then the
node is restarted: SIGTERM (it closes every WebSocket with 1001 "going away" and
exits), and a new process on the same port. Every client then does what the pages
do: reconnect with exponential backoff and full jitter (first retry within 0.5 s,
doubling to at most 8 s) until a `welcome` arrives again, and checks that the
welcome shows its open incident (or none).

Reported: the node's down time (SIGTERM → ready again), then for the clients the
time from the restart to being welcomed again: p50/p95/p99/max, the time by which
all were back, and reconnect attempts per client. Target (issue 6): all back within
10 s.

    .venv/bin/python -m bench.reconnect [--clients 5000] [--client-procs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from typing import TYPE_CHECKING, Any

import websockets

from testkit.accounts import create_accounts, tokens_for
from testkit.nodes import Node
from testkit.pyspy import PySpy
from testkit.runtime import log, raise_nofile, tune_gc, use_uvloop
from testkit.stack import BenchStack
from testkit.stats import CpuWindow, conditions, cpu_seconds, headline, percentiles, warmup_line

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.context import SpawnProcess


def storm_worker(pipe: Any, url: str, tokens: list[str], has_incident: list[bool], seed: int) -> None:
    raise_nofile()
    use_uvloop()
    tune_gc()
    asyncio.run(_storm(pipe, url, tokens, has_incident, seed))


async def _storm(pipe: Any, url: str, tokens: list[str], has_incident: list[bool], seed: int) -> None:
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    n = len(tokens)
    first_up = asyncio.Event()
    stop = asyncio.Event()
    gate = asyncio.Semaphore(200)           # the first connect: not all 2,500 SYNs at once
    stats: dict[str, Any] = {"up": 0, "back": [], "wrong_state": 0, "attempts": 0, "failures": 0}

    async def session(token: str, has_inc: bool) -> None:
        """Connected until the node goes away, then back with backoff, as often as the node restarts."""
        first, delay = True, 0.5
        while not stop.is_set():
            try:
                if first:
                    await gate.acquire()
                stats["attempts"] += 0 if first else 1
                try:
                    ws = await websockets.connect(url, open_timeout=30, close_timeout=1, compression=None)
                finally:
                    if first:
                        gate.release()
                async with ws:
                    await ws.send(json.dumps({"type": "hello", "token": token}))
                    welcome = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    if welcome.get("type") != "welcome":
                        raise websockets.InvalidMessage(str(welcome)[:80])
                    if first:
                        first = False
                        stats["up"] += 1
                        if stats["up"] == n:
                            first_up.set()
                    else:
                        stats["back"].append(time.time())
                        if bool(welcome.get("open_incidents")) != has_inc:
                            stats["wrong_state"] += 1
                    delay = 0.5
                    # stay connected, as a real client would, until the node goes away or the run ends
                    closed = asyncio.ensure_future(ws.wait_closed())
                    ending = asyncio.ensure_future(stop.wait())
                    await asyncio.wait({closed, ending}, return_when=asyncio.FIRST_COMPLETED)
                    closed.cancel()
                    ending.cancel()
                    if stop.is_set():
                        return
            except (TimeoutError, OSError, websockets.WebSocketException):
                stats["failures"] += 0 if first else 1
            if first:
                await asyncio.sleep(0.05)
            else:  # exponential backoff with full jitter
                await asyncio.sleep(rng.uniform(0.0, delay))
                delay = min(delay * 2, 8.0)

    tasks = [asyncio.create_task(session(t, h)) for t, h in zip(tokens, has_incident)]
    t = time.perf_counter()
    await first_up.wait()
    pipe.send(("connected", n, time.perf_counter() - t))
    while True:
        cmd = await loop.run_in_executor(None, pipe.recv)  # ("collect", timeout_s, since_wall) or ("stop",)
        if cmd[0] != "collect":
            break
        deadline, since = time.monotonic() + cmd[1], cmd[2]
        while sum(x >= since for x in stats["back"]) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        # the welcomes since the restart; the counters so far (the parent takes differences)
        pipe.send(("collected", [x for x in stats["back"] if x >= since], stats["wrong_state"], stats["attempts"],
                   stats["failures"]))
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    pipe.send(("stopped",))


async def run(args: argparse.Namespace) -> int:
    import multiprocessing as mp

    raise_nofile()
    print(f"bench.reconnect - {conditions()}")
    async with BenchStack("reconnect") as stack:
        conn = await stack.connect()
        try:
            ids = await create_accounts(conn, "resident", args.clients, "storm")
            with_incident = set(ids[:: 50])
            for i, acc in enumerate(sorted(with_incident)):
                await conn.execute(
                    "INSERT INTO incidents (ref_no, reporter_id, request_id, status, category, skill, priority,"
                    " lat, lon, channel) VALUES ('H-' || nextval('incident_ref_seq'), $1, $2, 'escalated',"
                    " 'other', 'general', 3, 31.23, 121.47, 'ws')", acc, f"storm-{i}")
        finally:
            await conn.close()
        tokens = tokens_for(ids, "resident")
        node = await Node(stack, "node").start()
        ctx = mp.get_context("spawn")
        pipes: list[Connection[Any, Any]] = []
        procs: list[SpawnProcess] = []
        loop = asyncio.get_running_loop()

        def recv(p: Any, timeout: float) -> Any:
            if not p.poll(timeout):
                raise TimeoutError("client worker did not answer")
            return p.recv()

        async def all_recv(timeout: float) -> list[Any]:
            return list(await asyncio.gather(*(loop.run_in_executor(None, recv, p, timeout) for p in pipes)))

        try:
            for w in range(args.client_procs):
                part = list(range(w, len(ids), args.client_procs))
                parent, child = ctx.Pipe()
                p = ctx.Process(target=storm_worker, daemon=True, args=(
                    child, node.ws_url, [tokens[g] for g in part], [ids[g] in with_incident for g in part], w))
                p.start()
                pipes.append(parent)
                procs.append(p)
            up = await all_recv(600)
            log(f"{sum(a[1] for a in up)} clients connected in {max(a[2] for a in up):.1f} s; restarting the node")
            client_pids = {f"client{w}": p.pid for w, p in enumerate(procs) if p.pid}
            counters = [0, 0, 0]  # wrong state, attempts, failures so far
            n = len(ids)
            for w in range(args.warmup_restarts):  # the same restart, numbers discarded
                await asyncio.sleep(args.settle)
                t_down = time.time()
                await node.stop()
                await node.start()
                for pipe in pipes:
                    pipe.send(("collect", args.timeout, t_down))
                got = await all_recv(args.timeout + 60)
                counters = [sum(a[i] for a in got) for i in (2, 3, 4)]
                back_n = sum(len(a[1]) for a in got)
                last_w = max((t for a in got for t in a[1]), default=t_down) - t_down
                print(warmup_line(f"restart {w + 1} of {args.warmup_restarts}: {back_n} of {n} back, the last "
                                  f"{last_w:.2f} s after SIGTERM"))
            await asyncio.sleep(args.settle)
            spy = None
            t_down = time.time()
            await node.stop()
            t_stopped = time.time()
            await node.start()
            t_up = time.time()
            if args.profile:
                spy = PySpy(node.pid, args.profile)
                spy.start()
            cpu0 = cpu_seconds(node.pid)
            cw = CpuWindow(client_pids).start()
            for pipe in pipes:
                pipe.send(("collect", args.timeout, t_down))
            got = await all_recv(args.timeout + 60)
            clients = cw.stop()
            cpu1 = cpu_seconds(node.pid)
            profile = spy.stop() if spy else None
            back = sorted(t for a in got for t in a[1])
            wrong = sum(a[2] for a in got) - counters[0]
            attempts = sum(a[3] for a in got) - counters[1]
            failures = sum(a[4] for a in got) - counters[2]
            print(f"reconnect: {n} clients on one node, {args.client_procs} client processes; node restart: "
                  f"stopped in {t_stopped - t_down:.2f} s, ready again {t_up - t_down:.2f} s after SIGTERM")
            if back:
                since_down = percentiles([t - t_down for t in back])
                since_up = percentiles([max(0.0, t - t_up) for t in back])
                print(f"  back (from SIGTERM):      p50 {since_down['p50']:.2f} s  p95 {since_down['p95']:.2f} s  "
                      f"p99 {since_down['p99']:.2f} s  last {back[-1] - t_down:.2f} s")
                print(f"  back (from node ready):   p50 {since_up['p50']:.2f} s  p95 {since_up['p95']:.2f} s  "
                      f"p99 {since_up['p99']:.2f} s  last {back[-1] - t_up:.2f} s")
                print(f"  rate after ready: {len(back) / max(1e-3, back[-1] - t_up):.0f} welcomes/s; node CPU "
                      f"{1000 * (cpu1 - cpu0) / max(1, len(back)):.2f} ms per reconnect; "
                      f"{attempts / n:.2f} attempts and {failures / n:.2f} failures per client")
            all_back = len(back) == n and wrong == 0
            last = (back[-1] - t_down) if back else float("inf")
            print(f"  {len(back)} of {n} back with their state ({wrong} with a wrong state); all back within "
                  f"10 s of the restart: {'met' if all_back and last <= 10 else 'NOT met'}")
            print(clients.line("client processes from the restart until all were back"))
            print(headline("reconnect.all_back_s", last))
            print(headline("reconnect.client_limited", int(bool(clients.limited()))))
            if profile:
                print(f"profile of the node after the restart ({args.profile}):\n{profile}")
            problems = node.log_problems()
            if problems:
                print(f"  node log: {len(problems)} warning/error lines, e.g. {problems[:3]}")
            return 0 if all_back and last <= 10 else 1
        finally:
            for pipe in pipes:
                try:
                    pipe.send(("stop",))
                except Exception:
                    pass
            for proc in procs:
                proc.join(30)
                if proc.is_alive():
                    proc.kill()
            await node.stop()


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.reconnect",
                                 description="clients reconnecting after a node restart")
    ap.add_argument("--clients", type=int, default=5000)
    ap.add_argument("--client-procs", type=int, default=2)
    ap.add_argument("--settle", type=float, default=3, help="pause before the restart (default 3)")
    ap.add_argument("--timeout", type=float, default=120, help="give up waiting for clients after (default 120)")
    ap.add_argument("--profile", metavar="FILE", help="py-spy the restarted node while clients come back")
    ap.add_argument("--warmup-restarts", type=int, default=1,
                    help="restarts before the measured one, numbers discarded (default 1)")
    args = ap.parse_args()
    raise SystemExit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
