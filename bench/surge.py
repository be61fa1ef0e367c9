"""surge: a whole district presses the button at once.

10,000 residents connected to two `helpline serve` nodes (half on each), 20
responders working their offers (accept at once or decline 10%, then resolve), one
dispatcher watching the queue; 300 help requests/s for 30 s, each from a different
resident (open loop: requests go out on schedule whether or not earlier ones were
answered). Most incidents escalate (20 responders cannot take 300/s): that is the
realistic surge case and the point is that every request is taken, not matched.

Checked afterwards in PostgreSQL: every request acknowledged, its incident there
once (no loss, no duplicate). Reported: ack latency p50/p95/p99 (from the
*scheduled* send time, so a lagging client counts against the result; the client's
own lag is shown), throughput, node CPU. Target: ack p99 < 100 ms.

The residents run in client worker processes (--client-procs, default 2) on the same
2 cores as the nodes, PostgreSQL and Redis: the client's CPU is part of the picture.

    .venv/bin/python -m bench.surge [--residents 10000] [--rate 300] [--seconds 30] [--client-procs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections import Counter

from bench import floor as floor_mod
from testkit.accounts import CATEGORIES, create_accounts, tokens_for
from testkit.client import WSClient, close_all, connect_many
from testkit.crew import ResponderCrew, start_duty
from testkit.crowd import Workers
from testkit.geo import spread
from testkit.nodes import Node
from testkit.pyspy import PySpy
from testkit.runtime import log, raise_nofile
from testkit.stack import BenchStack
from testkit.stats import PgWaits, conditions, latency_line, percentiles, pg_cpu, proc_stats


async def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    compression = None if args.no_compression else "deflate"
    nofile = raise_nofile()
    print(f"bench.surge - {conditions()}; open-file limit {nofile}")
    async with BenchStack("surge") as stack:
        fl = await floor_mod.measure_first(stack, args, compression)
        conn = await stack.connect()
        try:
            t = time.perf_counter()
            res_ids = await create_accounts(conn, "resident", args.residents, "surge")
            rsp_ids = await create_accounts(conn, "responder", args.responders, "surge")
            dsp_ids = await create_accounts(conn, "dispatcher", args.dispatchers, "surge")
            log(
                f"{len(res_ids)} residents, {len(rsp_ids)} responders created in "
                f"{time.perf_counter() - t:.1f} s"
            )
        finally:
            await conn.close()
        t = time.perf_counter()
        res_tokens = tokens_for(res_ids, "resident")
        log(f"tokens signed in {time.perf_counter() - t:.1f} s")
        nodes = [Node(stack, f"node{i}") for i in range(args.nodes)]
        await asyncio.gather(*(n.start() for n in nodes))
        urls = [n.ws_url for n in nodes]

        n_req = int(args.rate * args.seconds)
        order = list(range(args.residents))
        rng.shuffle(order)
        places = spread(rng, n_req)
        schedule = [
            (
                i,
                i / args.rate,
                order[i % len(order)],
                {
                    "request_id": f"surge-{i}",
                    "category": rng.choice(CATEGORIES),
                    "lat": places[i][0],
                    "lon": places[i][1],
                    "accuracy_m": 20,
                },
            )
            for i in range(n_req)
        ]
        crew = ResponderCrew(rng, decline_p=0.1, hold_s=0.2)
        responders: list[WSClient | None] = []
        dispatchers: list[WSClient | None] = []
        workers = None
        try:
            responders, f = await connect_many(
                urls, tokens_for(rsp_ids, "responder"), crew.on_push, compression=compression
            )
            dispatchers, f2 = await connect_many(
                urls[::-1], tokens_for(dsp_ids, "dispatcher"), compression=compression
            )
            if f or f2:
                raise RuntimeError("responders or dispatchers failed to connect")
            await start_duty([c for c in responders if c], spread(rng, len(responders)))
            for d in dispatchers:
                assert d is not None  # none failed: checked just above
                await d.ok("queue.watch")

            log(f"connecting {args.residents} residents from {args.client_procs} client process(es)")
            rss0 = [proc_stats(n.pid)[0] for n in nodes]
            workers = Workers(
                args.client_procs, urls, res_tokens, compression, schedule, args.connect_concurrency
            )
            ok_n, failed, secs = await workers.connected()
            rss1 = [proc_stats(n.pid)[0] for n in nodes]
            log(f"{ok_n} connected, {failed} failed, in {secs:.1f} s")
            print(
                f"connect: {ok_n} residents connected ({failed} failed) in {secs:.1f} s "
                f"= {ok_n / secs:.0f} connections/s over {args.nodes} nodes; node RSS "
                + ", ".join(f"{a / 2**20:.0f}->{b / 2**20:.0f} MiB" for a, b in zip(rss0, rss1))
            )
            await asyncio.sleep(2)

            log(f"{n_req} help requests at {args.rate:g}/s")
            cpu0 = [proc_stats(n.pid)[1] for n in nodes]
            pg0 = await pg_cpu(stack.database_url, stack.database)
            waits = PgWaits(stack.database_url, stack.database) if args.pg_waits else None
            if waits:
                waits.start()
            spy = PySpy(nodes[0].pid, args.profile) if args.profile else None
            if spy:
                spy.start()
            t_start = time.time() + 1.0
            tp0 = time.perf_counter() + 1.0
            results = await workers.run(t_start, timeout=args.seconds + 120)
            span = time.perf_counter() - tp0
            cpu1 = [proc_stats(n.pid)[1] for n in nodes]
            pg1 = await pg_cpu(stack.database_url, stack.database)
            waits_report = await waits.stop() if waits else None
            profile = spy.stop() if spy else None
            open_n, closed_n, _ = await workers.status()
            await crew.drain(10)

            acked = [r for r in results if "incident" in r]
            errors = Counter(r["error"] for r in results if "error" in r)
            acks = percentiles(r["ack"] for r in acked)
            acks_sent = percentiles(r["ack_sent"] for r in acked)
            lag = percentiles(r["lag"] for r in results if "lag" in r)
            last_ack = max((r["ack"] + r["i"] / args.rate for r in acked), default=0.0)

            conn = await stack.connect()
            try:
                rows = await conn.fetch(
                    "SELECT id::text, request_id, reporter_id::text FROM incidents"
                    " WHERE request_id LIKE 'surge-%'"
                )
                statuses: dict[str, int] = {
                    r["status"]: r["count"]
                    for r in await conn.fetch("SELECT status, count(*) FROM incidents GROUP BY status")
                }
                created_span = await conn.fetchval(
                    "SELECT extract(epoch FROM max(created_at) - min(created_at)) FROM incidents"
                    " WHERE request_id LIKE 'surge-%'"
                )
            finally:
                await conn.close()
            db_by_req = Counter(r["request_id"] for r in rows)
            dup = sum(1 for v in db_by_req.values() if v > 1)
            db_ids = {r["id"]: r["request_id"] for r in rows}
            missing = [r for r in acked if db_ids.get(r["incident"]) != r["request_id"]]
            extra = len(rows) - len({r["request_id"] for r in acked})
            dup_acks = len(acked) - len({r["incident"] for r in acked})

            print(
                f"surge: {n_req} help requests at {args.rate:g}/s for {args.seconds:g} s over {args.nodes} "
                "nodes, "
                f"{args.residents} residents connected, {args.responders} responders, client procs "
                f"{args.client_procs}"
            )
            print(latency_line("ack (from scheduled send)", acks, fl.ok if fl else None))
            print(latency_line("ack (from actual send)", acks_sent, fl.ok if fl else None))
            print(
                f"  client lag (actual send - scheduled): p50 {lag['p50'] * 1000:.2f} ms, p99 "
                f"{lag['p99'] * 1000:.2f} ms,"
                f" max {lag['max'] * 1000:.2f} ms"
            )
            print(
                f"  throughput: {len(acked) / span:.0f} acknowledged requests/s "
                f"(all {len(acked)} acknowledged within {last_ack:.1f} s of the first send); node CPU "
                + ", ".join(f"{100 * (b - a) / span:.0f}%" for a, b in zip(cpu0, cpu1))
                + " of one core each = "
                f"{1000 * sum(b - a for a, b in zip(cpu0, cpu1)) / max(1, len(acked)):.2f} ms node CPU + "
                f"{1000 * (pg1 - pg0) / max(1, len(acked)):.2f} ms PostgreSQL CPU per request"
            )
            node_cpu = sum(b - a for a, b in zip(cpu0, cpu1))
            print(
                f"  PostgreSQL took {len(rows)} incidents in {float(created_span or 0):.1f} s = "
                f"{len(rows) / max(0.001, float(created_span or 0)):.0f} incidents/s; per incident created: "
                f"{1000 * node_cpu / max(1, len(rows)):.2f} ms node CPU + "
                f"{1000 * (pg1 - pg0) / max(1, len(rows)):.2f} ms "
                f"PostgreSQL CPU"
            )
            print(
                f"  acknowledged {len(acked)}/{n_req}; errors {dict(errors) or 0}; "
                f"connections dropped during the run: {closed_n} (open {open_n})"
            )
            print(
                f"  PostgreSQL: {len(rows)} incidents for {len(db_by_req)} distinct request ids; "
                f"duplicated: {dup}; "
                f"acknowledged but missing/mismatched: {len(missing)}; rows never acknowledged: "
                f"{max(0, extra)}; "
                f"two acks for one incident: {dup_acks}"
            )
            print(f"  incidents by status: {statuses}")
            s = crew.stats
            print(
                f"  responders: {s.offers_total} offers, {s.accepted} accepted, {s.declined} declined, "
                f"{s.resolved} resolved, {s.errors} errors"
            )
            all_ok = len(acked) == n_req and not missing and not dup and len(rows) == n_req and dup_acks == 0
            p99_ok = acks["p99"] < 0.100
            print(f"  every request acknowledged, none lost or duplicated: {'YES' if all_ok else 'NO'}")
            print(
                f"  target ack p99 < 100 ms: {'met' if p99_ok else 'NOT met'} ({acks['p99'] * 1000:.1f} ms)"
            )
            if waits_report:
                print(waits_report)
            if profile:
                print(f"profile of node0 during the requests ({args.profile}):\n{profile}")
            for n in nodes:
                problems = n.log_problems()
                if problems:
                    print(f"  {n.name} log: {len(problems)} warning/error lines, e.g. {problems[:3]}")
            return 0 if all_ok and p99_ok else 1
        finally:
            if workers is not None:
                await workers.stop()
            await close_all(list(responders) + list(dispatchers))
            await asyncio.gather(*(n.stop() for n in nodes))


def main() -> None:
    ap = argparse.ArgumentParser(
        prog="python -m bench.surge", description="10,000 residents, 300 help requests/s"
    )
    ap.add_argument("--residents", type=int, default=10000)
    ap.add_argument("--rate", type=float, default=300, help="help requests per second (default 300)")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--responders", type=int, default=20)
    ap.add_argument("--dispatchers", type=int, default=1)
    ap.add_argument("--client-procs", type=int, default=2, help="client worker processes (default 2)")
    ap.add_argument(
        "--connect-concurrency", type=int, default=100, help="connects in flight per client process"
    )
    ap.add_argument(
        "--floor-seconds", type=float, default=10, help="floor fixed-rate phase (0: skip the floor)"
    )
    ap.add_argument("--floor-tp-seconds", type=float, default=5)
    ap.add_argument("--no-compression", action="store_true", help="clients do not offer permessage-deflate")
    ap.add_argument(
        "--profile", metavar="FILE", help="py-spy node0 during the requests into FILE and summarise"
    )
    ap.add_argument("--pg-waits", action="store_true", help="sample pg_stat_activity during the run")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    raise SystemExit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
