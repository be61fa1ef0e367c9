"""round: every benchmark three times, and the minimum, median and maximum of each headline figure.

Runs each benchmark (`python -m bench.<name>`) --runs times (default 3), interleaved (the first run of
each, then the second of each, ...) so that a change in the machine's load spreads over all of them
rather than falling on one. Each run's output goes to its own file. From every run it collects the
`HEADLINE name=value` lines the benchmark prints (testkit.stats.headline) and prints, per figure, the
minimum / median / maximum over the runs, then lists every failed run: a non-zero exit (a target not
met, or a crash), a timeout, a run that printed no headline, and every run a benchmark flagged as
limited by its clients or the machine (`*.client_limited=1`). docs/benchmarks.md reports these.

    .venv/bin/python -m bench.round [--runs 3] [--only surge,chat] [--args "surge=--steps 300,450,600"]
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from testkit.runtime import REPO
from testkit.stats import conditions, parse_headlines

BENCHES = ["floor", "press_to_offer", "surge", "chat", "idle", "reconnect"]


@dataclass
class Run:
    bench: str
    no: int  # 1-based
    rc: int | None  # None: killed at the timeout
    seconds: float
    output: str  # the file with the run's output
    headlines: dict[str, str] = field(default_factory=dict)

    def failure(self) -> str | None:
        """Why this run counts as failed (None: it did not)."""
        if self.rc is None:
            return "timed out"
        if not self.headlines:
            return f"exit {self.rc}, no headline figures (crashed?)"
        if self.rc != 0:
            return f"exit {self.rc} (a target not met, or an error: see the output)"
        return None

    def limited(self) -> list[str]:
        return [k for k, v in self.headlines.items() if k.endswith("client_limited") and v not in ("0", "")]


def _number(v: str) -> float | None:
    try:
        x = float(v)
    except ValueError:
        return None
    return None if math.isnan(x) else x


def summarise(runs: list[Run]) -> list[str]:
    """The report: per benchmark and headline figure, min / median / max over the runs that printed it;
    then every failed run and every run limited by its clients or the machine."""
    out: list[str] = []
    benches = list(dict.fromkeys(r.bench for r in runs))
    for b in benches:
        mine = [r for r in runs if r.bench == b]
        out.append(f"{b}: {len(mine)} runs ({sum(r.failure() is None for r in mine)} passed)")
        names = list(dict.fromkeys(k for r in mine for k in r.headlines))
        for name in names:
            vals = [x for r in mine if (x := _number(r.headlines.get(name, ""))) is not None]
            if not vals:
                continue
            out.append(
                f"  {name:<44} min {min(vals):>10.4g}  median {statistics.median(vals):>10.4g}  "
                f"max {max(vals):>10.4g}  (n={len(vals)}: {', '.join(f'{v:.4g}' for v in vals)})"
            )
    failed = [(r, why) for r in runs if (why := r.failure()) is not None]
    out.append(f"failed runs: {len(failed)}" + ("" if failed else " (none)"))
    for r, why in failed:
        out.append(f"  {r.bench} run {r.no}: {why}; output {r.output}")
    limited = [r for r in runs if r.limited()]
    out.append(f"runs limited by their clients or the machine: {len(limited)}" + ("" if limited else " (none)"))
    for r in limited:
        out.append(f"  {r.bench} run {r.no}: {', '.join(r.limited())}; output {r.output}")
    return out


def run_one(bench: str, no: int, extra: list[str], outdir: str, timeout: float) -> Run:
    path = os.path.join(outdir, f"{bench}-{no}.txt")
    cmd = [sys.executable, "-m", f"bench.{bench}", *extra]
    t = time.perf_counter()
    with open(path, "w") as f:
        f.write("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
        f.flush()
        p = subprocess.Popen(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc: int | None = p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            rc = None
    with open(path) as f:
        text = f.read()
    return Run(bench, no, rc, time.perf_counter() - t, path, parse_headlines(text))


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.round", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="runs of each benchmark (default 3)")
    ap.add_argument(
        "--only", default=",".join(BENCHES), help=f"benchmarks, comma-separated (default {','.join(BENCHES)})"
    )
    ap.add_argument(
        "--args", action="append", default=[], metavar="NAME=ARGS",
        help='extra arguments for one benchmark, e.g. --args "surge=--residents 2000 --steps 100,200"; repeatable',
    )
    ap.add_argument("--out", help="directory for the runs' output (default: a new one under /tmp)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds before a run is stopped (default 1800)")
    args = ap.parse_args()
    benches = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = [b for b in benches if not (REPO / "bench" / f"{b}.py").exists()]
    if unknown or not benches:
        ap.error(f"--only: no such benchmark {', '.join(unknown) or '(none given)'}")
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    extra: dict[str, list[str]] = {}
    for a in args.args:
        name, sep, rest = a.partition("=")
        if not sep or name not in benches:
            ap.error(f"--args: expected NAME=ARGS with NAME one of {', '.join(benches)}, got {a!r}")
        extra[name] = extra.get(name, []) + shlex.split(rest)
    outdir = args.out or tempfile.mkdtemp(prefix="hl_round_")
    os.makedirs(outdir, exist_ok=True)
    print(f"bench.round - {conditions()}; {args.runs} runs of {', '.join(benches)}; output in {outdir}", flush=True)
    runs: list[Run] = []
    for no in range(1, args.runs + 1):
        for b in benches:
            r = run_one(b, no, extra.get(b, []), outdir, args.timeout)
            runs.append(r)
            print(
                f"[{time.strftime('%H:%M:%S')}] {b} run {no}: exit {r.rc if r.rc is not None else 'timeout'} in "
                f"{r.seconds:.0f} s, load average {os.getloadavg()[0]:.2f}; "
                + (", ".join(f"{k}={v}" for k, v in r.headlines.items()) or "no headline figures"),
                flush=True,
            )
    print()
    print("\n".join(summarise(runs)))
    raise SystemExit(0 if all(r.failure() is None for r in runs) else 1)


if __name__ == "__main__":
    main()
