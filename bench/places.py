"""The gazetteer at city size: 100,000 generated places imported, then searched the way call-takers type.

    .venv/bin/python -m bench.places [--places 100000] [--queries 3000] [--concurrency 8] [--seconds 10]

Imports the places with `helpline places import` (a CSV written by testkit.gazetteer), imports the same
file again (everything unchanged), then times `places_store.search` (the SQL behind places.search and
GET /api/places) one query at a time (latency: p50/p99 per kind and overall; target p99 < 20 ms), then
with `--concurrency` connections for `--seconds` (throughput). Its own database, dropped at the end.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

import asyncpg

from dispatch import places_store
from testkit.gazetteer import places, to_csv
from testkit.nodes import node_env
from testkit.runtime import REPO, log
from testkit.stack import BenchStack
from testkit.stats import latency_line, percentiles

TARGET_P99_MS = 20.0


def queries(rows: list[dict[str, str]], n: int, rng: random.Random) -> list[tuple[str, str]]:
    """(kind, text): what a call-taker types, by kind."""
    out: list[tuple[str, str]] = []
    for _ in range(n):
        r = rng.choice(rows)
        alias = r["aliases"].split("|")[0]
        road = r["address"].split("(")[1].split(",")[0]          # "62 Yucai Avenue"
        kind = rng.choice(["zh-2", "zh-prefix", "zh-name", "en-word", "en-name", "en-typo", "address", "one",
                           "miss"])
        if kind == "zh-2":
            text = r["name"][-4:-2] if len(r["name"]) >= 4 else r["name"][:2]
        elif kind == "zh-prefix":
            text = r["name"][:rng.randint(2, 4)]
        elif kind == "zh-name":
            text = r["name"]
        elif kind == "en-word":
            text = alias.split()[0][:rng.randint(3, 6)]
        elif kind == "en-name":
            text = alias
        elif kind == "en-typo":
            i = rng.randrange(1, len(alias) - 1)
            text = alias[:i] + alias[i + 1:]
        elif kind == "address":
            text = road.split(" ", 1)[1] if rng.random() < 0.5 else road
        elif kind == "one":
            text = r["name"][0]
        else:
            text = rng.choice(["qwxz", "火星基地", "Atlantis Road", "zz9"])
        out.append((kind, text))
    return out


def cpu_s(pid: int) -> float | None:
    """Seconds a local process has run on a CPU (/proc/PID/schedstat), or None when it is not readable."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


async def latency(pool: asyncpg.Pool, qs: list[tuple[str, str]]) -> None:
    """One search at a time: wall time per kind, and the CPU the PostgreSQL backend spent on each search
    plus this process's (what a search costs on an idle machine; the wall time also holds the wait for a
    CPU when the machine is busy)."""
    by_kind: dict[str, list[float]] = defaultdict(list)
    cpu: list[float] = []
    found = 0
    async with pool.acquire() as conn:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        for _, text in qs[:50]:      # warm the cache
            await places_store.search(conn, text, 10)
        for kind, text in qs:
            c0, m0, t0 = cpu_s(pid), time.thread_time(), time.perf_counter()
            got = await places_store.search(conn, text, 10)
            by_kind[kind].append(time.perf_counter() - t0)
            c1 = cpu_s(pid)
            if c0 is not None and c1 is not None:
                cpu.append(c1 - c0 + time.thread_time() - m0)
            found += bool(got)
    every = [x for v in by_kind.values() for x in v]
    for kind in sorted(by_kind):
        print(latency_line(f"search {kind:10s}", percentiles(by_kind[kind])))
    st = percentiles(every)
    print(latency_line("search (all)    ", st))
    print(f"queries {len(every)}, with a result {found}")
    if cpu:
        print(latency_line("CPU per search  ", percentiles(cpu)) + "   (PostgreSQL backend + client)")
    p99 = st["p99"] * 1000
    print(f"p99 {p99:.2f} ms: {'within' if p99 < TARGET_P99_MS else 'OVER'} the {TARGET_P99_MS:g} ms target")


async def throughput(pool: asyncpg.Pool, qs: list[tuple[str, str]], concurrency: int, seconds: float) -> None:
    done = 0
    lat: list[float] = []
    stop = time.monotonic() + seconds

    async def worker(i: int) -> None:
        nonlocal done
        async with pool.acquire() as conn:
            j = i
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                await places_store.search(conn, qs[j % len(qs)][1], 10)
                lat.append(time.perf_counter() - t0)
                done += 1
                j += concurrency
    t0 = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    took = time.monotonic() - t0
    print(f"throughput: {done / took:.0f} searches/s with {concurrency} connections over {took:.1f} s")
    print(latency_line("under load      ", percentiles(lat)))


def cli(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "server.cli", *args], env=env, cwd=REPO, capture_output=True,
                         text=True, timeout=900)
    return run, time.monotonic() - t0


async def main(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    rows = list(places(args.places, args.seed))
    async with BenchStack("places") as bs:
        env = node_env(bs.database_url, bs.redis_url, bs.prefix)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "city.csv")
            with open(path, "w", encoding="utf-8") as f:
                f.write(to_csv(iter(rows)))
            for label in ("import", "re-import"):
                run, took = cli(env, "places", "import", path)
                if run.returncode != 0:
                    raise SystemExit(f"import failed: {run.stderr[-2000:]}")
                print(f"{label}: {run.stdout.strip()} in {took:.1f} s ({len(rows) / took:.0f} places/s)")
        pool = await asyncpg.create_pool(bs.database_url, min_size=args.concurrency, max_size=args.concurrency)
        try:
            async with pool.acquire() as conn:
                await conn.execute("ANALYZE places")
            qs = queries(rows, args.queries, rng)
            await latency(pool, qs)
            await throughput(pool, qs, args.concurrency, args.seconds)
        finally:
            await pool.close()
    log("done")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="gazetteer import and search at city size")
    p.add_argument("--places", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=3000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=13)
    asyncio.run(main(p.parse_args()))
