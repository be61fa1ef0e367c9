"""cpu_per_request: node + PostgreSQL CPU per help request, from the report to its first offer (issue 18).

One `helpline serve` node (or --nodes N), --responders on duty spread over the city who never answer (so every
report finds one available: each request ends in its first offer, nothing after it), one dispatcher watching
the queue, and --requests help requests at --rate/s, each from a different verified resident (trusted: the
flood gate holds none of them). The window runs from just before the first send to the last offer's arrival;
the node processes' CPU and the PostgreSQL backends' CPU over it, divided by the requests, against the floor's
CPU per message (server + PostgreSQL, at its maximum throughput) measured first in the same run.

Unlike `bench.surge` (most of whose requests escalate, or are held as a possible flood, and whose responders
accept and resolve), every request here does the same thing: report, claim, offer, and the pushes that go
with it (the offer to the responder, the queue update to the dispatcher, the resident's `ok`). The clients
run in this process, whose CPU is printed too but not counted.

    .venv/bin/python -m bench.cpu_per_request [--requests 1500] [--rate 100] [--responders 1600] [--rounds 1]
"""
from __future__ import annotations

import argparse
import asyncio
import random
import time
from typing import Any

from bench import floor as floor_mod
from testkit.accounts import create_accounts, tokens_for
from testkit.client import WSClient, close_all, connect_many
from testkit.crew import start_duty
from testkit.geo import spread
from testkit.nodes import Node
from testkit.runtime import log, raise_nofile
from testkit.stack import BenchStack
from testkit.stats import conditions, pg_cpu, proc_stats

CATEGORIES = ["medical", "fire", "police", "dispute", "other"]


async def one_round(args: argparse.Namespace, rng: random.Random, nodes: list[Node], stack: BenchStack,
                    residents: list[WSClient], offers: dict[str, float], first: int) -> tuple[float, float, int]:
    """(node CPU s, PostgreSQL CPU s, offers received) for args.requests requests from residents[first:]."""
    n = args.requests
    places = spread(rng, n, 3.0)
    want = len(offers) + n
    cpu0 = sum(proc_stats(x.pid)[1] for x in nodes)
    pg0 = await pg_cpu(stack.database_url, stack.database)
    t0 = time.perf_counter()
    futs: list[asyncio.Future[Any]] = []
    for i in range(n):
        delay = t0 + i / args.rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        c = residents[first + i]
        _, fut = await c.send("help.request", request_id=f"cpr-{first + i}", category=rng.choice(CATEGORIES),
                              lat=places[i][0], lon=places[i][1], accuracy_m=20)
        futs.append(fut)
    answers = await asyncio.gather(*(asyncio.wait_for(f, 60) for f in futs), return_exceptions=True)
    deadline = time.perf_counter() + 30
    while len(offers) < want and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    cpu1 = sum(proc_stats(x.pid)[1] for x in nodes)
    pg1 = await pg_cpu(stack.database_url, stack.database)
    bad = [a for a in answers if isinstance(a, BaseException) or a[1].get("type") != "ok"]
    if bad:
        print(f"  {len(bad)} requests not acknowledged, e.g. {bad[:2]}")
    return cpu1 - cpu0, pg1 - pg0, len(offers) - (want - n)


async def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    compression = None if args.no_compression else "deflate"
    raise_nofile()
    print(f"bench.cpu_per_request - {conditions()}")
    async with BenchStack("cpureq") as stack:
        fl = await floor_mod.measure_first(stack, args, compression)
        total = args.requests * args.rounds
        conn = await stack.connect()
        try:
            res_ids = await create_accounts(conn, "resident", total, "cpr", verified=True)
            rsp_ids = await create_accounts(conn, "responder", args.responders, "cpr",
                                            skills=["medical", "fire", "police", "general"])
            dsp_ids = await create_accounts(conn, "dispatcher", 1, "cpr")
        finally:
            await conn.close()
        nodes = [Node(stack, f"node{i}") for i in range(args.nodes)]
        await asyncio.gather(*(x.start() for x in nodes))
        urls = [x.ws_url for x in nodes]
        offers: dict[str, float] = {}

        def on_offer(client: WSClient, msg: dict[str, Any], t: float) -> None:
            if msg.get("type") == "offer":
                offers[msg["offer_id"]] = t

        clients: list[WSClient | None] = []
        try:
            responders, f1 = await connect_many(urls, tokens_for(rsp_ids, "responder"), on_offer,
                                                compression=compression)
            dispatchers, f2 = await connect_many(urls, tokens_for(dsp_ids, "dispatcher"), compression=compression)
            residents, f3 = await connect_many(urls, tokens_for(res_ids, "resident"), compression=compression)
            clients = [*responders, *dispatchers, *residents]
            if f1 or f2 or f3:
                raise RuntimeError(f"{f1 + f2 + f3} clients failed to connect")
            await start_duty([c for c in responders if c], spread(rng, len(responders), 3.0))
            for d in dispatchers:
                assert d is not None
                await d.ok("queue.watch")
            await asyncio.sleep(1)
            me = proc_stats(__import__("os").getpid())[1]
            per: list[float] = []
            for r in range(args.rounds):
                if len(rsp_ids) - len(offers) < args.requests:
                    print(f"  round {r + 1}: not enough responders left available; stopping")
                    break
                log(f"round {r + 1}: {args.requests} help requests at {args.rate:g}/s")
                node_s, pg_s, got = await one_round(args, rng, nodes, stack, [c for c in residents if c],
                                                    offers, r * args.requests)
                ms_node, ms_pg = 1000 * node_s / args.requests, 1000 * pg_s / args.requests
                per.append(ms_node + ms_pg)
                line = (f"round {r + 1}: {args.requests} help requests at {args.rate:g}/s over {args.nodes} node(s), "
                        f"{got} first offers: {ms_node:.2f} ms node CPU + {ms_pg:.2f} ms PostgreSQL CPU = "
                        f"{ms_node + ms_pg:.2f} ms per request")
                if fl is not None:
                    floor_ms = fl.cpu_ms_per_msg + fl.pg_ms_per_msg
                    line += f" = {(ms_node + ms_pg) / floor_ms:.2f}x the floor's {floor_ms:.2f} ms per message"
                print(line, flush=True)
                await asyncio.sleep(1)
            print(f"  this client process: {proc_stats(__import__('os').getpid())[1] - me:.1f} s CPU "
                  "(not counted)")
            if per and fl is not None:
                floor_ms = fl.cpu_ms_per_msg + fl.pg_ms_per_msg
                best = min(per)
                print(f"  target <= 2x the floor: {'met' if best <= 2 * floor_ms else 'NOT met'} "
                      f"(best round {best:.2f} ms = {best / floor_ms:.2f}x)")
            return 0
        finally:
            await close_all(clients)
            await asyncio.gather(*(x.stop() for x in nodes))


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.cpu_per_request", description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=500, help="help requests per round (default 500)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=float, default=100, help="help requests per second (default 100)")
    ap.add_argument("--responders", type=int, default=1600, help="on duty, never answering (>= requests x rounds)")
    ap.add_argument("--nodes", type=int, default=1)
    ap.add_argument("--floor-seconds", type=float, default=3, help="floor fixed-rate phase (0: skip the floor)")
    ap.add_argument("--floor-tp-seconds", type=float, default=5)
    ap.add_argument("--no-compression", action="store_true", help="clients do not offer permessage-deflate")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    raise SystemExit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
