"""idle: what 10,000 idle WebSockets cost one node.

One `helpline serve` node; residents connect (hello → welcome, as the resident page
does) from client worker processes and then stay idle; the server's heartbeat
(aiohttp ping every 25 s) and the presence refresher (every 15 s) keep running.

Reported:
* memory per connection: (node RSS with all connected − node RSS with the first
  100 connected) / (connections − 100), after a settle pause;
* CPU at rest: node process CPU (user+system) over a window (default 30 s, which
  spans one full 25 s heartbeat period) while nothing else happens;
* connection rate while connecting.
Target (issue 6): ≤ 24 KiB per connection.

By default the clients offer permessage-deflate as browsers do (aiohttp then keeps
a zlib compressor per connection); --no-compression shows the difference.

    .venv/bin/python -m bench.idle [--connections 10000] [--rest-seconds 30] [--client-procs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from testkit.accounts import create_accounts, tokens_for
from testkit.crowd import Workers
from testkit.nodes import Node
from testkit.pyspy import PySpy
from testkit.runtime import log, raise_nofile
from testkit.stack import BenchStack
from testkit.stats import conditions, proc_stats


async def run(args: argparse.Namespace) -> int:
    compression = None if args.no_compression else "deflate"
    nofile = raise_nofile()
    print(
        f"bench.idle - {conditions()}; open-file limit {nofile}; client compression: {compression or 'off'}"
    )
    async with BenchStack("idle") as stack:
        conn = await stack.connect()
        try:
            ids = await create_accounts(conn, "resident", args.connections, "idle")
        finally:
            await conn.close()
        tokens = tokens_for(ids, "resident")
        node = await Node(stack, "node").start()
        warm_n = min(100, args.connections // 10)
        warm = rest = None
        try:
            rss_start = proc_stats(node.pid)[0]
            warm = Workers(1, [node.ws_url], tokens[:warm_n], compression)
            await warm.connected()
            await asyncio.sleep(args.settle)
            rss0 = proc_stats(node.pid)[0]
            log(f"{warm_n} warm-up connections; connecting {args.connections - warm_n} more")
            t = time.perf_counter()
            cpu_c0 = proc_stats(node.pid)[1]
            spy = PySpy(node.pid, args.profile) if args.profile else None
            if spy:
                spy.start()
            rest = Workers(
                args.client_procs,
                [node.ws_url],
                tokens[warm_n:],
                compression,
                concurrency=args.connect_concurrency,
            )
            ok_n, failed, secs = await rest.connected(timeout=1200)
            connect_s = time.perf_counter() - t
            cpu_c1 = proc_stats(node.pid)[1]
            profile = spy.stop() if spy else None
            log(f"{ok_n} connected, {failed} failed in {secs:.1f} s; settling {args.settle:g} s")
            await asyncio.sleep(args.settle)
            rss1, cpu0 = proc_stats(node.pid)
            log(f"measuring CPU at rest for {args.rest_seconds:g} s")
            spy_rest = PySpy(node.pid, args.profile_rest) if args.profile_rest else None
            if spy_rest:
                spy_rest.start()
            t0 = time.perf_counter()
            await asyncio.sleep(args.rest_seconds)
            rss2, cpu1 = proc_stats(node.pid)
            profile_rest = spy_rest.stop() if spy_rest else None
            span = time.perf_counter() - t0
            open_a, closed_a, _ = await warm.status()
            open_b, closed_b, _ = await rest.status()
            n = ok_n + open_a - warm_n
            per = (rss1 - rss0) / max(1, ok_n)
            print(
                f"idle: {open_a + open_b} connections open on one node ({failed} failed to connect, "
                f"{closed_a + closed_b} dropped while idle), {args.client_procs} client processes"
            )
            print(
                f"  connect: {ok_n} in {secs:.1f} s = {ok_n / secs:.0f} connections/s (wall {connect_s:.1f} "
                "s); node CPU "
                f"{1000 * (cpu_c1 - cpu_c0) / max(1, ok_n):.2f} ms per connect (handshake, hello, welcome)"
            )
            print(
                f"  node RSS: {rss_start / 2**20:.1f} MiB at start, {rss0 / 2**20:.1f} MiB with {warm_n}, "
                f"{rss1 / 2**20:.1f} MiB with {warm_n + ok_n}, {rss2 / 2**20:.1f} MiB after the rest window"
            )
            print(
                f"  memory per connection: {per / 1024:.1f} KiB "
                f"(target <= 24 KiB: {'met' if per <= 24 * 1024 else 'NOT met'})"
            )
            print(
                f"  CPU at rest: {100 * (cpu1 - cpu0) / span:.2f}% of one core over {span:.0f} s "
                f"({1e6 * (cpu1 - cpu0) / span / max(1, n + warm_n):.1f} us/s per connection)"
            )
            if profile:
                print(f"profile of the node while connecting ({args.profile}):\n{profile}")
            if profile_rest:
                print(f"profile of the node at rest ({args.profile_rest}):\n{profile_rest}")
            problems = node.log_problems()
            if problems:
                print(f"  node log: {len(problems)} warning/error lines, e.g. {problems[:3]}")
            return 0
        finally:
            for w in (rest, warm):
                if w is not None:
                    await w.stop()
            await node.stop()


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.idle", description="memory and CPU of idle WebSockets")
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--rest-seconds", type=float, default=30, help="CPU-at-rest window (default 30)")
    ap.add_argument("--settle", type=float, default=5, help="pause before each memory reading (default 5)")
    ap.add_argument("--client-procs", type=int, default=2)
    ap.add_argument("--connect-concurrency", type=int, default=100)
    ap.add_argument("--no-compression", action="store_true", help="clients do not offer permessage-deflate")
    ap.add_argument("--profile", metavar="FILE", help="py-spy the node while the clients connect")
    ap.add_argument("--profile-rest", metavar="FILE", help="py-spy the node during the rest window")
    args = ap.parse_args()
    raise SystemExit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
