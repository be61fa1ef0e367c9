"""Numbers a benchmark reports: percentiles and their report lines, the run's conditions, CPU and
memory of processes, CPU of the PostgreSQL backends of one database and what they wait on."""
from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

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
    """CPU seconds (user+system) used so far by the PostgreSQL backends connected to this database
    (cpu_seconds: schedstat, exact to the nanosecond)."""
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
    return sum(cpu_seconds(pid) for pid in pids)


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


# ------------------------------------------------------------------ CPU by schedstat, the machine's idle share
def cpu_seconds(pid: int) -> float:
    """CPU seconds a process has run so far, all its threads: the sum of /proc/<pid>/task/*/schedstat's
    first field (nanoseconds on a CPU, user and system), exact where /proc/<pid>/stat counts 10 ms ticks.
    Threads that ended are counted by the kernel in the process's own stat only, so the larger of the two
    is returned. 0.0 for a process that is gone."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0
    return max(total / 1e9, ticks)


async def pg_pids(conn: asyncpg.Connection, database: str) -> list[int]:
    """The pids of the PostgreSQL backends connected to a database, this connection's own left out."""
    rows = await conn.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", database
    )
    return [r["pid"] for r in rows]


def machine_cpu() -> tuple[int, int]:
    """(idle, total) jiffies of the whole machine so far, from /proc/stat's first line (idle counts
    iowait too)."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice: already inside user and nice]
    return parts[3] + parts[4], sum(parts[:8])


CLIENT_LIMIT_PCT = 80.0  # a client process above this share of one core may be what limits the run
MACHINE_IDLE_MIN_PCT = 5.0  # below this the machine as a whole was saturated


@dataclass
class CpuReport:
    """What a window cost: each client process's CPU as % of one core, the machine's idle share."""

    seconds: float
    clients: dict[str, float]  # label -> % of one core over the window
    machine_idle_pct: float

    def limited(self) -> list[str]:
        """Why the run may have been limited by its clients or the machine rather than by helpline
        (empty: not)."""
        why = [
            f"client process {k} used {v:.0f}% of a core (> {CLIENT_LIMIT_PCT:.0f}%)"
            for k, v in self.clients.items()
            if v > CLIENT_LIMIT_PCT
        ]
        if self.machine_idle_pct < MACHINE_IDLE_MIN_PCT:
            why.append(f"the machine was saturated ({self.machine_idle_pct:.1f}% idle)")
        return why

    def line(self, label: str = "clients") -> str:
        per = ", ".join(f"{k} {v:.0f}%" for k, v in self.clients.items())
        why = self.limited()
        verdict = ("  ** LIMITED BY THE CLIENTS OR THE MACHINE: " + "; ".join(why) + " **") if why else ""
        return (
            f"  {label}: CPU {per} of one core each (total {sum(self.clients.values()):.0f}%) over "
            f"{self.seconds:.1f} s; machine idle {self.machine_idle_pct:.0f}%{verdict}"
        )


class CpuWindow:
    """CPU of the benchmark's own client processes and the machine's idle share over one window:
    `start()` ... `stop()` -> CpuReport. `clients`: label -> pid (the benchmark's own process too when
    it holds clients)."""

    def __init__(self, clients: dict[str, int]) -> None:
        self.clients = dict(clients)
        self.t0 = 0.0
        self.c0: dict[str, float] = {}
        self.m0 = (0, 0)

    def start(self) -> CpuWindow:
        self.t0 = time.perf_counter()
        self.c0 = {k: cpu_seconds(pid) for k, pid in self.clients.items()}
        self.m0 = machine_cpu()
        return self

    def stop(self) -> CpuReport:
        span = max(1e-6, time.perf_counter() - self.t0)
        m1 = machine_cpu()
        per = {k: 100 * (cpu_seconds(pid) - self.c0[k]) / span for k, pid in self.clients.items()}
        total = m1[1] - self.m0[1]
        idle = 100 * (m1[0] - self.m0[0]) / total if total > 0 else math.nan
        return CpuReport(span, per, idle)


def warmup_line(what: str) -> str:
    """The line that says a warm-up ran and its numbers were thrown away."""
    return f"  warm-up: {what}; its numbers are discarded"


# ------------------------------------------------------------------ steps, ratios and headlines
@dataclass
class Step:
    """One step of a stepped benchmark: the rate asked, whether it passed, and why not."""

    rate: float
    passed: bool
    achieved: float = math.nan  # what was actually done per second (for chat: persisted msgs/s)
    why: str = ""


def capacity(steps: list[Step]) -> tuple[float, Step | None]:
    """(capacity, the first failed step): the highest rate among the steps before the first failure
    (0.0 when the first step fails). The steps are judged in the order they ran, so a pass after a
    failure does not count: the benchmark stops at the first failure."""
    best = 0.0
    for s in steps:
        if not s.passed:
            return best, s
        best = max(best, s.achieved if not math.isnan(s.achieved) else s.rate)
    return best, None


def target_line(label: str, value: float, floor: float | None, target: float, higher_is_better: bool,
                unit: str = "") -> tuple[str, bool | None]:
    """'label: value = 0.42x the floor (target >= 0.30x): met', and whether it was met (None: no floor)."""
    if floor is None or not floor or math.isnan(floor) or math.isnan(value):
        return f"  {label}: {value:,.2f}{unit} (no floor in this run: no ratio)", None
    r = value / floor
    met = r >= target if higher_is_better else r <= target
    sign = ">=" if higher_is_better else "<="
    return (
        f"  {label}: {value:,.2f}{unit} = {r:.2f}x the floor's {floor:,.2f}{unit} "
        f"(target {sign} {target:.2f}x): {'met' if met else 'NOT met'}",
        met,
    )


HEADLINE = "HEADLINE"


def headline(name: str, value: float | str) -> str:
    """A machine-readable figure that bench/round.py collects: 'HEADLINE name=value'."""
    v = f"{value:.6g}" if isinstance(value, float) else str(value)
    return f"{HEADLINE} {name}={v}"


def parse_headlines(text: str) -> dict[str, str]:
    """The HEADLINE name=value lines of a benchmark's output (the last of each name wins)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith(HEADLINE + " ") and "=" in line:
            name, _, value = line[len(HEADLINE) + 1 :].strip().partition("=")
            out[name] = value
    return out
