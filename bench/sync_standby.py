"""press-to-offer with and without a synchronous standby (issue 17): the cost of "acknowledged means on two
machines".

One PgPair (testkit/pgpair.py: a primary and a streaming standby on this machine, fsync on, data under the
temporary directory) serves bench.press_to_offer, run as it is (imported, its own argument parser and
measurement) with its database URL listing both hosts. The runs alternate: synchronous_standby_names empty
(the standby streams, asynchronously: commits wait for the primary's disk only), then naming the standby
(each commit also waits for the standby to have flushed its WAL), `--rounds` times, so that a change in the
machine's load hits both alike. Printed: each run's help.request -> offer and -> ok p50/p99, the median
of each configuration, and the ratio sync/async. Target: offer p50 with the synchronous standby within
1.5x of the p50 without it.

    .venv/bin/python -m bench.sync_standby [--seconds 30] [--rate 5] [--rounds 2]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from bench import press_to_offer as p2o
from testkit import stack as stack_mod
from testkit.pgpair import STANDBY_NAME, PgPair
from testkit.runtime import log
from testkit.stats import conditions, latency_line

_seen: list[tuple[str, dict[str, float]]] = []
_latency_line = latency_line


def _recording_latency_line(label: str, st: dict[str, float], floor: dict[str, float] | None = None) -> str:
    _seen.append((label.strip(), st))
    return _latency_line(label, st, floor)


def _one_run(pair: PgPair, sync: bool, args: argparse.Namespace) -> dict[str, Any]:
    pair.sql(pair.primary_port, f"ALTER SYSTEM SET synchronous_standby_names TO '{STANDBY_NAME if sync else ''}'")
    pair.sql(pair.primary_port, "SELECT pg_reload_conf()")
    state = None
    for _ in range(100):
        state = pair.replication()
        if state == ("streaming", "sync" if sync else "async"):
            break
        time.sleep(0.1)
    log(f"standby {state}: running bench.press_to_offer")
    _seen.clear()
    argv = ["bench.press_to_offer", "--seconds", str(args.seconds), "--rate", str(args.rate),
            "--floor-seconds", "0", "--offline", "0", "--push", "0", "--cost-requests", "0", "--seed", str(args.seed)]
    old_argv, sys.argv = sys.argv, argv
    try:
        p2o.main()
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    finally:
        sys.argv = old_argv
    got = dict(_seen)
    return {"sync": sync, "state": state, "offer": got.get("help.request -> offer"),
            "ok": got.get("help.request -> ok"), "exit": code}


def _walsender(pair: PgPair) -> int:
    return int(pair.sql(pair.primary_port,
                        f"SELECT pid FROM pg_stat_replication WHERE application_name = '{STANDBY_NAME}'"))


async def _loss(pair: PgPair, n: int) -> tuple[int, int, float]:
    """Commit n rows one by one on the primary while its WAL sender to the standby is stopped (a standby that
    lags: a slow network, a busy standby); then kill -9 the primary and promote the standby.
    (rows acknowledged, of them on the promoted standby, seconds the last commit waited)."""
    import asyncio
    import os
    import signal

    import asyncpg

    conn = await asyncpg.connect(pair.primary_url())
    await conn.execute("CREATE TABLE IF NOT EXISTS acked (n int PRIMARY KEY)")
    await asyncio.sleep(0.5)                        # the table reaches the standby
    sender = _walsender(pair)
    os.kill(sender, signal.SIGSTOP)
    acked = 0
    waited = 0.0
    try:
        for i in range(n):
            t = time.monotonic()
            try:
                await asyncio.wait_for(conn.execute("INSERT INTO acked VALUES ($1)", i), 3)
            except TimeoutError:
                waited = time.monotonic() - t          # a synchronous commit waits for the standby: not acknowledged
                break
            acked += 1
    finally:
        conn.terminate()
        await asyncio.to_thread(pair.kill_primary)     # the stopped sender too (SIGKILL ends a stopped process)
    await asyncio.to_thread(pair.promote)
    c = await asyncpg.connect(pair.standby_url())
    try:
        kept = await c.fetchval("SELECT count(*) FROM acked")
    finally:
        await c.close()
    return acked, int(kept), waited


def loss_demo(n: int) -> None:
    """With an asynchronous standby a promotion loses acknowledged commits; with a synchronous one the commit
    is not acknowledged until the standby has it."""
    import asyncio

    for sync in (False, True):
        pair = PgPair(sync=sync, standby_first=False).start()
        try:
            acked, kept, waited = asyncio.run(_loss(pair, n))
        finally:
            pair.stop()
        name = "synchronous " if sync else "asynchronous"
        extra = f"; the next commit waited {waited:.1f} s unacknowledged (given up)" if sync else ""
        print(f"  {name} standby, its WAL sender stopped: {acked} commits acknowledged, {kept} of them on the"
              f" promoted standby, {acked - kept} lost{extra}")


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.sync_standby",
                                 description="press_to_offer with and without a synchronous standby")
    ap.add_argument("--seconds", type=float, default=30, help="measured phase of each run (default 30)")
    ap.add_argument("--rate", type=float, default=5, help="help requests per second (default 5)")
    ap.add_argument("--rounds", type=int, default=2, help="pairs of runs, without then with (default 2)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--loss-demo", type=int, default=0, metavar="N",
                    help="instead: commit N rows with the primary's WAL sender stopped, kill -9 the primary,"
                         " promote; how many acknowledged rows the promoted standby has, async then sync")
    args = ap.parse_args()
    print(f"bench.sync_standby - {conditions()}")
    if args.loss_demo:
        loss_demo(args.loss_demo)
        return
    pair = PgPair(sync=False, standby_first=False).start()
    p2o.__dict__["latency_line"] = _recording_latency_line   # read press_to_offer's own figures as it prints them
    runs: list[dict[str, Any]] = []
    try:
        # BenchStack reads the server URL from here: both hosts (the primary first: its admin connection
        # creates the database, and asyncpg stops at the first host that lacks it)
        stack_mod.BENCH_PG = pair.base_url()
        log(f"pair: primary :{pair.primary_port}, standby :{pair.standby_port} under {pair.dir}")
        for _ in range(args.rounds):
            for sync in (False, True):
                runs.append(_one_run(pair, sync, args))
    finally:
        p2o.__dict__["latency_line"] = _latency_line
        pair.stop()

    def ms(x: float) -> str:
        return f"{x * 1000:.2f}"
    print(f"\nsync_standby: bench.press_to_offer {args.seconds:g} s at {args.rate:g}/s per run, {args.rounds} round(s);"
          " primary and standby on this machine")
    for r in runs:
        o, k = r["offer"], r["ok"]
        name = "synchronous standby " if r["sync"] else "asynchronous standby"
        if o is None or k is None:
            print(f"  {name}: no figures (exit {r['exit']})")
            continue
        print(f"  {name} (standby {r['state']}): offer p50 {ms(o['p50'])} ms p99 {ms(o['p99'])} ms;"
              f" ok p50 {ms(k['p50'])} ms p99 {ms(k['p99'])} ms; n={o['n']}; exit {r['exit']}")
    summary: dict[bool, dict[str, float]] = {}
    for sync in (False, True):
        mine = [r for r in runs if r["sync"] == sync and r["offer"] and r["ok"]]
        if mine:
            summary[sync] = {f"{what}_{p}": statistics.median(r[what][p] for r in mine)
                             for what in ("offer", "ok") for p in ("p50", "p99")}
    if len(summary) == 2:
        a, s = summary[False], summary[True]
        for what in ("offer", "ok"):
            print(f"  help.request -> {what}: median p50 {ms(a[what + '_p50'])} -> {ms(s[what + '_p50'])} ms"
                  f" (x{s[what + '_p50'] / a[what + '_p50']:.2f}), p99 {ms(a[what + '_p99'])} ->"
                  f" {ms(s[what + '_p99'])} ms (x{s[what + '_p99'] / a[what + '_p99']:.2f})")
        ratio = s["offer_p50"] / a["offer_p50"]
        met = ratio <= 1.5
        print(f"  target (offer p50 with the synchronous standby <= 1.5x without): x{ratio:.2f},"
              f" {'met' if met else 'NOT met'}")
        raise SystemExit(0 if met else 1)
    raise SystemExit(1)


if __name__ == "__main__":
    main()
