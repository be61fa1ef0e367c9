"""The benchmark harness's judging (testkit/stats.py, bench/round.py): capacity by steps, the client-CPU
flag, HEADLINE lines and the three-run summary. Pure: no PostgreSQL, no Redis, no nodes."""
from __future__ import annotations

import math
import os
import time

from bench.round import Run, run_one, summarise
from testkit.stats import CpuReport, CpuWindow, Step, capacity, headline, parse_headlines, target_line


def test_capacity_is_the_highest_step_before_the_first_failure():
    steps = [Step(150, True), Step(300, True), Step(450, False, why="ack p99 140 ms"), Step(600, True)]
    cap, first = capacity(steps)
    assert cap == 300 and first is not None and first.rate == 450   # the pass at 600 after a failure is not counted
    assert capacity([Step(150, False)]) == (0.0, Step(150, False))
    assert capacity([Step(150, True), Step(300, True)]) == (300, None)
    # chat counts what was achieved (persisted msgs/s), not the rate asked
    assert capacity([Step(500, True, 497.0), Step(1000, True, 990.0), Step(1500, False, 1200.0)])[0] == 990.0


def test_a_ratio_is_judged_against_its_target_in_the_right_direction():
    line, met = target_line("surge / floor", 600, 2000, 0.30, True)
    assert met is True and "0.30x" in line
    assert target_line("surge / floor", 500, 2000, 0.30, True)[1] is False
    assert target_line("cpu / floor", 1.5, 0.5, 2.0, False)[1] is False     # 3x, target <= 2x
    assert target_line("cpu / floor", 0.9, 0.5, 2.0, False)[1] is True
    assert target_line("no floor", 1.0, None, 2.0, False)[1] is None


def test_clients_over_80_percent_of_a_core_or_a_saturated_machine_flag_the_run():
    assert CpuReport(10, {"client0": 45.0, "client1": 60.0}, 30.0).limited() == []
    busy = CpuReport(10, {"client0": 92.0, "client1": 60.0}, 30.0).limited()
    assert len(busy) == 1 and "client0" in busy[0]
    assert "saturated" in CpuReport(10, {"client0": 10.0}, 2.0).limited()[0]
    assert "LIMITED" in CpuReport(10, {"client0": 92.0}, 30.0).line()


def test_a_cpu_window_counts_this_process_busy():
    w = CpuWindow({"me": os.getpid()}).start()
    t = time.process_time()
    while time.process_time() - t < 0.2:
        pass
    r = w.stop()
    assert r.clients["me"] > 0 and 0 <= r.machine_idle_pct <= 100 and not math.isnan(r.machine_idle_pct)


def test_headlines_round_trip_and_the_summary_gives_min_median_max_and_every_failed_run():
    text = "\n".join(["noise", headline("surge.capacity_per_s", 450.0), headline("surge.client_limited", 0)])
    assert parse_headlines(text) == {"surge.capacity_per_s": "450", "surge.client_limited": "0"}
    runs = [
        Run("surge", 1, 0, 1, "/o/1", {"surge.capacity_per_s": "450", "surge.client_limited": "0"}),
        Run("surge", 2, 1, 1, "/o/2", {"surge.capacity_per_s": "300", "surge.client_limited": "1"}),
        Run("surge", 3, 0, 1, "/o/3", {"surge.capacity_per_s": "600", "surge.client_limited": "0"}),
        Run("chat", 1, None, 1, "/o/c1", {}),
        Run("chat", 2, 2, 1, "/o/c2", {}),
    ]
    out = "\n".join(summarise(runs))
    assert "min        300  median        450  max        600" in out
    assert "failed runs: 3" in out
    assert "surge run 2: exit 1" in out and "chat run 1: timed out" in out and "chat run 2: exit 2, no headline" in out
    assert "surge run 1:" not in out.split("failed runs")[1].split("limited")[0]
    assert "limited by their clients or the machine: 1" in out and "surge run 2: surge.client_limited" in out


def test_round_runs_a_benchmark_module_and_a_run_without_headlines_counts_as_failed(tmp_path):
    r = run_one("round", 1, ["--help"], str(tmp_path), 60)      # `python -m bench.round --help`: exit 0, no headline
    assert r.rc == 0 and r.headlines == {} and r.failure() is not None and "usage" in open(r.output).read()
