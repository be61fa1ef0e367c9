"""Numbers a benchmark reports: percentiles and their report lines, the run's conditions, CPU and
memory of processes, CPU of the PostgreSQL backends of one database and what they wait on."""
from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import Iterable

import asyncpg


def percentiles(values: Iterable[float]) -> dict[str, float]:
    """n, mean, p50, p95, p99, max (nearest rank) of the values (seconds in, seconds out)."""
    xs = sorted(values)
    n = len(xs)
    if not n:
        return {"n": 0, "mean": math.nan, "p50": math.nan, "p95": math.nan, "p99": math.nan, "max": math.nan}

    def rank(p: float) -> float:
        return xs[min(n - 1, max(0, math.ceil(p / 100 * n) - 1))]

    return {"n": n, "mean": sum(xs) / n, "p50": rank(50), "p95": rank(95), "p99": rank(99), "max": xs[-1]}


def ms(x: float | None) -> str:
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


def proc_stats(pid: int) -> tuple[int, float]:
    """(RSS bytes, CPU seconds user+system) of one process."""
    import psutil

    p = psutil.Process(pid)
    t = p.cpu_times()
    return p.memory_info().rss, t.user + t.system


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
