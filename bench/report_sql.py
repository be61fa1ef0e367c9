"""report_sql: the PostgreSQL CPU of the report statement alone, and of what it sets off (issue 18).

A help request's PostgreSQL work is one statement (dispatch/store.py REPORT_SQL: the incident, its first
offer, the claim of the responder, two log rows and, by trigger, the report's facts), run by the node with
no transaction around it. This runs that statement in a loop on one connection, as the node does, and
reads the backend's own CPU (schedstat, exact to the nanosecond) around each batch of calls, so the figure
is the statement's cost and nothing else's. Beside it, in the same rounds (variants interleaved, so a change
in the machine's load falls on all of them alike):

* `floor`: the floor's whole PostgreSQL work per message (bench/floor.py: one small INSERT, committed);
* `no facts`: the report statement with the reports' facts trigger (migration 028) disabled;
* `no triggers`: with every trigger disabled, foreign keys included (session_replication_role = replica);
* `async commit`: with synchronous_commit = off (what the commit's wait for the WAL flush costs).

Only the first is what a node runs; the others say where the statement's cost goes.

    .venv/bin/python -m bench.report_sql [--calls 300] [--rounds 7] [--responders 3000]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench import floor
from dispatch import lifecycle as lc
from dispatch import offers, store
from infra import db
from infra.config import load
from testkit.accounts import create_accounts
from testkit.runtime import log
from testkit.stack import BenchStack
from testkit.stats import conditions, cpu_seconds, headline

VARIANTS = ["report", "floor", "no facts", "no triggers", "async commit"]


async def _setup(conn: asyncpg.Connection, residents: int, responders: int) -> tuple[list[str], list[str]]:
    await db.migrate(conn)
    await db._init_connection(conn)    # jsonb as the node's pool has it
    await conn.execute(f"CREATE TABLE {floor.TABLE} (id bigserial PRIMARY KEY, ch text NOT NULL,"   # as bench.floor's
                       " body jsonb NOT NULL, at timestamptz NOT NULL DEFAULT now())")
    res = await create_accounts(conn, "resident", residents, "rsql", verified=True)
    rsp = await create_accounts(conn, "responder", responders, "rsql", skills=["medical"])
    await conn.execute("UPDATE responders SET status = 'available', lat = 30.0, lon = 120.0")
    return res, rsp


async def _free(conn: asyncpg.Connection) -> None:
    """Every responder available again, with no pending offer (between batches)."""
    await conn.execute("UPDATE offers SET state = 'expired', answered_at = now() WHERE state = 'pending'")
    await conn.execute("UPDATE responders SET status = 'available' WHERE status <> 'available'")


def _report(plan: offers.Plan, reporter_id: str, request_id: str, near: list[str], lat: float) -> dict[str, Any]:
    """store.report's arguments for a verified resident's medical report offered to the first of `near`
    still available, as a WebSocket report outside every grid."""
    return dict(reporter_id=reporter_id, request_id=request_id, category="medical", skill="medical", priority=1,
                lat=lat, lon=120.0, accuracy_m=20.0, note="", channel="ws", plan=plan, offer_to=near,
                otherwise=lc.Status.ESCALATED, reason=lc.NO_CANDIDATE, attempt=1, offer_id=str(uuid.uuid4()),
                expires_at=datetime.now(UTC) + timedelta(seconds=30), hold=False,
                channels={r: ["ws"] for r in near}, grid=None, tiers={}, session=None, untagged=True)


async def _batch(conn: asyncpg.Connection, variant: str, n: int, residents: list[str], responders: list[str],
                 seq: list[int]) -> tuple[float, float]:
    """(backend CPU s, wall s) of n calls of the variant."""
    plan = offers.freeze(load(None).dispatch)
    setting = {"no triggers": "SET session_replication_role = replica",
               "async commit": "SET synchronous_commit = off"}.get(variant)
    if variant == "no facts":
        await conn.execute("ALTER TABLE incident_events DISABLE TRIGGER incident_facts_apply")
    if setting:
        await conn.execute(setting)
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    try:
        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        for i in range(n):
            k = seq[0]
            seq[0] += 1
            if variant == "floor":
                await conn.execute(f"INSERT INTO {floor.TABLE} (ch, body) VALUES ($1, $2)", "room",
                                   f'{{"type":"msg","n":{k},"text":"hello"}}')
                continue
            near = [responders[(i * 3 + j) % len(responders)] for j in range(3)]
            row = await store.report(conn, **_report(plan, residents[k % len(residents)], f"rsql-{k}", near,
                                                     30.0 + (k % 100) * 1e-4))
            assert row is not None and row["offer_id"] is not None, "every call is to make an offer"
        return cpu_seconds(pid) - cpu0, time.perf_counter() - t0
    finally:
        if setting:
            await conn.execute("RESET ALL")
        if variant == "no facts":
            await conn.execute("ALTER TABLE incident_events ENABLE TRIGGER incident_facts_apply")


async def _explain(conn: asyncpg.Connection, residents: list[str], responders: list[str], seq: list[int]) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of one report as the node runs it (its generic plan, after the warm-up)."""
    captured: list[tuple[Any, ...]] = []

    class Capture:          # store.report's connection: records the arguments, runs nothing
        async def fetchrow(self, sql: str, *a: Any) -> None:
            captured.append(a)
    k = seq[0]
    seq[0] += 1
    near = [responders[-1], responders[-2]]       # responders no batch claims
    await store.report(Capture(), **_report(offers.freeze(load(None).dispatch),  # type: ignore[arg-type]
                                            residents[k % len(residents)], f"rsql-explain-{k}", near, 30.0))
    args = list(captured[0])
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    try:
        plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS, VERBOSE off) " + store.REPORT_SQL, *args)
    finally:
        await conn.execute("RESET plan_cache_mode")
    print("EXPLAIN (ANALYZE, BUFFERS) of one report, generic plan:")
    for r in plan:
        print("  " + r[0])
    await _free(conn)


async def run(args: argparse.Namespace) -> int:
    print(f"bench.report_sql - {conditions()}")
    async with BenchStack("report_sql") as stack:
        conn = await stack.connect()
        try:
            residents, responders = await _setup(conn, args.residents, args.responders)
            seq = [0]
            for v in VARIANTS:   # warm-up: statement caches, the generic plan, the first pages of each index
                await _batch(conn, v, 50, residents, responders, seq)
                await _free(conn)
            if args.explain:
                await _explain(conn, residents, responders, seq)
            got: dict[str, list[float]] = {v: [] for v in VARIANTS}
            for r in range(args.rounds):
                order = VARIANTS[r % len(VARIANTS):] + VARIANTS[:r % len(VARIANTS)]
                for v in order:
                    cpu, wall = await _batch(conn, v, args.calls, residents, responders, seq)
                    await _free(conn)
                    got[v].append(cpu / args.calls * 1e3)
                    log(f"round {r + 1} {v:<13} {cpu / args.calls * 1e3:6.3f} ms backend CPU per call,"
                        f" {wall / args.calls * 1e3:6.3f} ms wall")
            n = await conn.fetchval("SELECT count(*) FROM incidents")
        finally:
            await conn.close()
    print(f"{args.rounds} rounds of {args.calls} calls per variant on one connection ({n} incidents made);"
          " PostgreSQL backend CPU per call, ms:")
    base = statistics.median(got["floor"])
    for v in VARIANTS:
        xs = sorted(got[v])
        med = statistics.median(xs)
        print(f"  {v:<13} min {xs[0]:6.3f}  median {med:6.3f}  max {xs[-1]:6.3f}   ({med / base:4.1f}x the floor's"
              f" INSERT)")
    headline("report_sql.report_ms", statistics.median(got["report"]))
    headline("report_sql.floor_ms", base)
    headline("report_sql.facts_ms", statistics.median(got["report"]) - statistics.median(got["no facts"]))
    headline("report_sql.triggers_ms", statistics.median(got["report"]) - statistics.median(got["no triggers"]))
    headline("report_sql.commit_ms", statistics.median(got["report"]) - statistics.median(got["async commit"]))
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=300, help="calls per variant per round (default 300)")
    ap.add_argument("--rounds", type=int, default=7, help="rounds, variants interleaved (default 7)")
    ap.add_argument("--residents", type=int, default=2000)
    ap.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of one report first")
    ap.add_argument("--responders", type=int, default=3000, help="more than --calls: each call claims one")
    args = ap.parse_args()
    if args.responders < args.calls * 3:
        ap.error("--responders must be at least 3x --calls (each call claims one of three)")
    raise SystemExit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
