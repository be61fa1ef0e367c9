"""surge: a whole district presses the button at once; its capacity found by steps.

10,000 residents connected to two `helpline serve` nodes (half on each), 20
responders working their offers (accept at once or decline 10%, then resolve), one
dispatcher watching the queue. Help requests go out open loop (on schedule whether or
not earlier ones were answered), each from a different resident, at rates in steps
(default 150, 300, 450, 600, 800, 1000, 1200, 1500 requests/s), after a warm-up whose
numbers are discarded. Each step runs --step-warmup seconds at its rate (not counted
in its latency) then --step-seconds measured. Most incidents escalate (20 responders
cannot take 300/s): that is the realistic surge case and the point is that every
request is taken, not matched.

A step passes when every request of it was acknowledged, its incident is in PostgreSQL
once (checked per step: no loss, no duplicate), and ack p99 < 100 ms (from the
*scheduled* send time, so a lagging client counts against the result). The run stops at
the first step that fails; the surge capacity is the highest passing rate, printed as a
ratio to the floor's maximum throughput measured in the same run (issue 18 target:
>= 30%).

The residents run in client worker processes (--client-procs, default 2) on the same
2 cores as the nodes, PostgreSQL and Redis: each step prints their CPU and the
machine's idle share, and flags a step limited by the clients or the machine.

    .venv/bin/python -m bench.surge [--residents 10000] [--steps 150,300,450,600] [--step-seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from collections import Counter
from typing import Any

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
from testkit.stats import (
    CpuReport,
    CpuWindow,
    PgWaits,
    Step,
    capacity,
    conditions,
    cpu_seconds,
    headline,
    latency_line,
    percentiles,
    pg_cpu,
    proc_stats,
    target_line,
    warmup_line,
)

ACK_P99 = 0.100  # a step passes with ack p99 below this
TARGET = 0.30  # surge capacity / the floor's maximum throughput (issue 18)
HELP_LIMIT = 10  # help requests per account per 10 minutes (infra/ratelimit.py ACCOUNT_LIMITS)


class Schedules:
    """Help requests in schedules: each from the next resident in a shuffled order (round robin over
    the whole run, so a resident's requests are as far apart as the residents allow)."""

    def __init__(self, rng: random.Random, residents: int) -> None:
        self.rng = rng
        self.order = list(range(residents))
        rng.shuffle(self.order)
        self.next = 0

    def make(self, tag: str, rate: float, seconds: float) -> list[tuple[int, float, int, dict[str, Any]]]:
        n = int(rate * seconds)
        places = spread(self.rng, n)
        out = []
        for i in range(n):
            g = self.order[self.next % len(self.order)]
            self.next += 1
            fields = {
                "request_id": f"surge-{tag}-{i}",
                "category": self.rng.choice(CATEGORIES),
                "lat": places[i][0],
                "lon": places[i][1],
                "accuracy_m": 20,
            }
            out.append((i, i / rate, g, fields))
        return out


async def check_in_pg(stack: BenchStack, tag: str, results: list[dict[str, Any]], n_req: int) -> dict[str, Any]:
    """The step's requests against PostgreSQL: every acknowledged one there once, none twice."""
    acked = [r for r in results if "incident" in r]
    conn = await stack.connect()
    try:
        rows = await conn.fetch(
            "SELECT id::text, request_id FROM incidents WHERE request_id LIKE $1", f"surge-{tag}-%"
        )
    finally:
        await conn.close()
    db_by_req = Counter(r["request_id"] for r in rows)
    db_ids = {r["id"]: r["request_id"] for r in rows}
    missing = [r for r in acked if db_ids.get(r["incident"]) != r["request_id"]]
    dup = sum(1 for v in db_by_req.values() if v > 1)
    dup_acks = len(acked) - len({r["incident"] for r in acked})
    return {
        "rows": len(rows),
        "distinct": len(db_by_req),
        "dup": dup,
        "missing": len(missing),
        "never_acked": max(0, len(rows) - len({r["request_id"] for r in acked})),
        "dup_acks": dup_acks,
        "all_ok": len(acked) == n_req and not missing and not dup and len(rows) == n_req and dup_acks == 0,
    }


async def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    compression = None if args.no_compression else "deflate"
    nofile = raise_nofile()
    steps = [float(x) for x in args.steps.split(",") if x.strip()]
    if args.rate:
        steps = [args.rate]
    if not steps or any(r <= 0 for r in steps):
        raise SystemExit("--steps: give rates above 0, comma-separated (e.g. 150,300,450)")
    step_total = args.step_warmup + args.step_seconds
    planned = args.warmup_seconds * steps[0] + step_total * sum(steps)  # if every step runs
    per_resident = planned / args.residents
    if per_resident > HELP_LIMIT - 1:
        raise SystemExit(
            f"--residents: {args.residents} residents would send up to {per_resident:.1f} help requests each "
            f"in this run, past the account limit of {HELP_LIMIT} per 10 minutes; raise --residents or lower "
            "--steps/--step-seconds"
        )
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
        plans = Schedules(rng, args.residents)

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
            workers = Workers(args.client_procs, urls, res_tokens, compression, None, args.connect_concurrency)
            ok_n, failed, secs = await workers.connected()
            rss1 = [proc_stats(n.pid)[0] for n in nodes]
            log(f"{ok_n} connected, {failed} failed, in {secs:.1f} s")
            print(
                f"connect: {ok_n} residents connected ({failed} failed) in {secs:.1f} s "
                f"= {ok_n / secs:.0f} connections/s over {args.nodes} nodes; node RSS "
                + ", ".join(f"{a / 2**20:.0f}->{b / 2**20:.0f} MiB" for a, b in zip(rss0, rss1))
            )
            await asyncio.sleep(2)
            client_pids = {"bench": os.getpid(), **workers.pids}

            print(
                f"surge: {args.residents} residents connected over {args.nodes} nodes, {args.responders} "
                f"responders, {args.client_procs} client processes; steps {', '.join(f'{r:g}' for r in steps)} "
                f"help requests/s, each {args.step_warmup:g} s warm-up + {args.step_seconds:g} s measured"
            )
            if args.warmup_seconds > 0:
                log(f"warm-up: {args.warmup_seconds:g} s at {steps[0]:g}/s")
                warm = plans.make("w", steps[0], args.warmup_seconds)
                wres = await workers.run(time.time() + 1.0, args.warmup_seconds + 120, warm)
                wacks = percentiles(r["ack"] for r in wres if "incident" in r)
                print(
                    warmup_line(
                        f"{len(warm)} requests at {steps[0]:g}/s ({sum('incident' in r for r in wres)} "
                        f"acknowledged, ack p99 {wacks['p99'] * 1000:.1f} ms)"
                    )
                )
                await crew.drain(10)
                await asyncio.sleep(1)

            judged: list[Step] = []
            reports: list[CpuReport] = []
            spy = PySpy(nodes[0].pid, args.profile) if args.profile else None
            waits = PgWaits(stack.database_url, stack.database) if args.pg_waits else None
            if spy:
                spy.start()
            if waits:
                waits.start()
            cpu_per_req: list[float] = []
            for k, rate in enumerate(steps):
                tag = f"s{k}"
                sched = plans.make(tag, rate, step_total)
                n_req = len(sched)
                log(f"step {k + 1}/{len(steps)}: {n_req} help requests at {rate:g}/s")
                cpu0 = [cpu_seconds(n.pid) for n in nodes]
                pg0 = await pg_cpu(stack.database_url, stack.database)
                cw = CpuWindow(client_pids).start()
                t_start = time.time() + 1.0
                tp0 = time.perf_counter() + 1.0
                results = await workers.run(t_start, timeout=step_total + 120, schedule=sched)
                span = time.perf_counter() - tp0
                clients = cw.stop()
                cpu1 = [cpu_seconds(n.pid) for n in nodes]
                pg1 = await pg_cpu(stack.database_url, stack.database)
                reports.append(clients)
                open_n, closed_n, _ = await workers.status()

                acked = [r for r in results if "incident" in r]
                measured = [r for r in acked if r["i"] / rate >= args.step_warmup]
                errors = Counter(r["error"] for r in results if "error" in r)
                acks = percentiles(r["ack"] for r in measured)
                acks_sent = percentiles(r["ack_sent"] for r in measured)
                lag = percentiles(r["lag"] for r in results if "lag" in r and r["i"] / rate >= args.step_warmup)
                pg = await check_in_pg(stack, tag, results, n_req)
                p99_ok = acks["n"] > 0 and acks["p99"] < ACK_P99
                passed = pg["all_ok"] and p99_ok
                why = []
                if not pg["all_ok"]:
                    why.append(
                        f"{n_req - len(acked)} not acknowledged, {pg['missing']} missing, {pg['dup']} duplicated"
                    )
                if not p99_ok:
                    why.append(f"ack p99 {acks['p99'] * 1000:.1f} ms >= {ACK_P99 * 1000:.0f} ms")
                judged.append(Step(rate, passed, rate, "; ".join(why)))
                node_cpu = sum(b - a for a, b in zip(cpu0, cpu1))
                per_req = 1000 * (node_cpu + pg1 - pg0) / max(1, len(acked))
                cpu_per_req.append(per_req)
                print(
                    f" step {rate:g}/s: {n_req} requests ({int(args.step_warmup * rate)} of them warm-up, not in "
                    f"the latencies); acknowledged {len(acked)}/{n_req} ({len(acked) / span:.0f}/s); errors "
                    f"{dict(errors) or 0}; connections dropped {closed_n} (open {open_n})"
                    f"  -> {'PASSED' if passed else 'FAILED: ' + '; '.join(why)}"
                )
                print(latency_line("ack (from scheduled send)", acks, fl.ok if fl else None))
                print(latency_line("ack (from actual send)", acks_sent, fl.ok if fl else None))
                print(
                    f"  client lag (actual send - scheduled): p50 {lag['p50'] * 1000:.2f} ms, p99 "
                    f"{lag['p99'] * 1000:.2f} ms, max {lag['max'] * 1000:.2f} ms"
                )
                print(
                    "  node CPU "
                    + ", ".join(f"{100 * (b - a) / span:.0f}%" for a, b in zip(cpu0, cpu1))
                    + f" of one core each; {1000 * node_cpu / max(1, len(acked)):.2f} ms node CPU + "
                    f"{1000 * (pg1 - pg0) / max(1, len(acked)):.2f} ms PostgreSQL CPU per request"
                    + (f" = {per_req / fl.total_cpu_ms_per_msg:.2f}x the floor's CPU per message" if fl else "")
                )
                print(
                    f"  PostgreSQL: {pg['rows']} incidents for {pg['distinct']} distinct request ids; duplicated "
                    f"{pg['dup']}; acknowledged but missing/mismatched {pg['missing']}; rows never acknowledged "
                    f"{pg['never_acked']}; two acks for one incident {pg['dup_acks']}"
                )
                print(clients.line("clients (this process holds responders and dispatcher)"))
                if not passed and not args.all_steps:
                    break
                await crew.drain(10)
                await asyncio.sleep(args.pause)
            waits_report = await waits.stop() if waits else None
            profile = spy.stop() if spy else None
            await crew.drain(10)

            cap, first_fail = capacity(judged)
            limited = any(r.limited() for r in reports)
            s = crew.stats
            print(
                f"  responders: {s.offers_total} offers, {s.accepted} accepted, {s.declined} declined, "
                f"{s.resolved} resolved, {s.errors} errors"
            )
            if first_fail is not None:
                print(f"  first failed step: {first_fail.rate:g}/s ({first_fail.why})")
            else:
                print("  no step failed: the capacity is at least the last step; add higher --steps")
            print(
                f"  surge capacity (every request acknowledged, none lost or duplicated, ack p99 < "
                f"{ACK_P99 * 1000:.0f} ms): {cap:g} help requests/s"
            )
            line, met = target_line(
                "surge capacity / floor max throughput", cap, fl.throughput if fl else None, TARGET, True, "/s"
            )
            print(line)
            if limited:
                print("  ** some step was limited by the clients or the machine (see the steps): the capacity may "
                      "be understated **")
            print(headline("surge.capacity_per_s", cap))
            if fl:
                print(headline("surge.capacity_ratio", cap / fl.throughput if fl.throughput else float("nan")))
                print(headline("surge.floor_max_msgs_per_s", fl.throughput))
            if cpu_per_req:  # at the capacity's step (the last that passed), else at the first step
                before_fail = next((i for i, st in enumerate(judged) if not st.passed), len(judged))
                at = max(0, before_fail - 1)
                print(headline("surge.cpu_ms_per_request", cpu_per_req[at]))
            print(headline("surge.first_failed_step", first_fail.rate if first_fail else 0.0))
            print(headline("surge.client_limited", int(limited)))
            if waits_report:
                print(waits_report)
            if profile:
                print(f"profile of node0 during the steps ({args.profile}):\n{profile}")
            for n in nodes:
                problems = n.log_problems()
                if problems:
                    print(f"  {n.name} log: {len(problems)} warning/error lines, e.g. {problems[:3]}")
            ok = met if met is not None else cap > 0
            return 0 if ok else 1
        finally:
            if workers is not None:
                await workers.stop()
            await close_all(list(responders) + list(dispatchers))
            await asyncio.gather(*(n.stop() for n in nodes))


def main() -> None:
    ap = argparse.ArgumentParser(
        prog="python -m bench.surge",
        description="surge capacity by steps: help requests/s with every one acknowledged and ack p99 < 100 ms",
    )
    ap.add_argument("--residents", type=int, default=10000)
    ap.add_argument(
        "--steps", default="150,300,450,600,800,1000,1200,1500", help="help requests/s per step, comma-separated"
    )
    ap.add_argument("--step-seconds", type=float, default=10, help="measured seconds per step (default 10)")
    ap.add_argument(
        "--step-warmup", type=float, default=2,
        help="seconds at each step's rate before it is measured (checked for loss, not in the latencies; default 2)",
    )
    ap.add_argument(
        "--warmup-seconds", type=float, default=5,
        help="warm-up at the first step's rate before the steps, numbers discarded (default 5)",
    )
    ap.add_argument("--pause", type=float, default=2, help="seconds between steps (default 2)")
    ap.add_argument("--all-steps", action="store_true", help="go on after the first failed step")
    ap.add_argument("--rate", type=float, default=0, help="one step at this rate instead of --steps")
    ap.add_argument("--seconds", type=float, default=0, help="the same as --step-seconds (kept for old commands)")
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
        "--profile", metavar="FILE", help="py-spy node0 during the steps into FILE and summarise"
    )
    ap.add_argument("--pg-waits", action="store_true", help="sample pg_stat_activity during the steps")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.seconds:
        args.step_seconds = args.seconds
    for name in ("step_seconds", "residents", "client_procs", "nodes"):
        if getattr(args, name) <= 0:
            ap.error(f"--{name.replace('_', '-')} must be above 0")
    raise SystemExit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
