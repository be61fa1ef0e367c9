"""Client worker processes (spawned), each holding a slice of many residents and obeying the
benchmark over a pipe: connect, send help requests on a schedule, report, close."""
from __future__ import annotations

import asyncio
import contextlib
import time
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from typing import Any

from testkit.client import WSClient, close_all, connect_many
from testkit.runtime import raise_nofile, tune_gc, use_uvloop


def resident_worker(
    pipe: Any,
    urls: list[str],
    tokens: list[str],
    schedule: list[tuple[Any, ...]],
    compression: str | None,
    concurrency: int,
) -> None:
    """A client process: connects its residents, then obeys the parent over `pipe`.

    Commands: ("run", t0_wall[, schedule]) sends `schedule` [(i, offset_s, local_idx, fields)] (the
    one given with the command, else the one given at the start) as help.request at t0_wall +
    offset_s and answers ("done", results); ("status",) answers
    ("status", open, closed); ("stop",) closes everything and exits."""
    raise_nofile()
    use_uvloop()
    tune_gc()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        t = time.perf_counter()
        clients, failures = await connect_many(
            urls, tokens, None, concurrency=concurrency, compression=compression
        )
        pipe.send(("connected", len(tokens) - failures, failures, time.perf_counter() - t))
        while True:
            cmd = await loop.run_in_executor(None, pipe.recv)
            if cmd[0] == "run":
                base = time.perf_counter() + (cmd[1] - time.time())
                todo = cmd[2] if len(cmd) > 2 and cmd[2] is not None else schedule
                pipe.send(("done", await _run_schedule(clients, todo, base)))
            elif cmd[0] == "status":
                live = [c for c in clients if c is not None]
                pipe.send(
                    (
                        "status",
                        sum(not c.closed for c in live),
                        sum(c.closed for c in live),
                        sum(c.pushes for c in live),
                    )
                )
            elif cmd[0] == "stop":
                await close_all(clients)
                pipe.send(("stopped",))
                return

    asyncio.run(main())


async def _run_schedule(
    clients: list[WSClient | None], schedule: list[tuple[Any, ...]], base: float
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []

    async def one(i: int, due: float, idx: int, fields: dict[str, Any]) -> None:
        rec: dict[str, Any] = {"i": i, "request_id": fields["request_id"]}
        results.append(rec)
        c = clients[idx]
        if c is None or c.closed:
            rec["error"] = "not connected"
            return
        try:
            t, fut = await c.send("help.request", **fields)
            rec["lag"] = t - due
            t_ok, ans = await asyncio.wait_for(fut, 30)
        except TimeoutError:
            rec["error"] = "timeout"
            return
        except Exception as e:
            rec["error"] = type(e).__name__
            return
        rec["ack"] = t_ok - due  # from the scheduled time: client lag counts against us
        rec["ack_sent"] = t_ok - t
        if ans.get("type") == "ok":
            rec["incident"] = ans["incident"]["id"]
            rec["status"] = ans["incident"]["status"]
        else:
            rec["error"] = ans.get("code")

    tasks = []
    for i, offset, idx, fields in schedule:
        due = base + offset
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due, idx, fields)))
    if tasks:
        await asyncio.gather(*tasks)
    return results


class Workers:
    """Client worker processes (spawned), each holding a slice of the residents."""

    def __init__(
        self,
        procs: int,
        urls: list[str],
        tokens: list[str],
        compression: str | None,
        schedule: list[tuple[int, float, int, dict[str, Any]]] | None = None,
        concurrency: int = 100,
    ) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[SpawnProcess] = []
        self.n = procs
        slices = self._split(schedule or [])
        for w in range(procs):
            idxs = list(range(w, len(tokens), procs))  # global resident index g = w + k*procs
            w_urls = [urls[g % len(urls)] for g in idxs]
            w_tokens = [tokens[g] for g in idxs]
            # the worker connects local k to w_urls[k % len(w_urls)]: give it one url per token
            w_sched = slices[w]
            parent, child = ctx.Pipe()
            p = ctx.Process(
                target=resident_worker,
                args=(child, w_urls, w_tokens, w_sched, compression, concurrency),
                daemon=True,
            )
            p.start()
            self.pipes.append(parent)
            self.procs.append(p)

    def _split(self, schedule: list[tuple[int, float, int, dict[str, Any]]]) -> list[list[tuple[Any, ...]]]:
        """The schedule [(i, offset, global resident index, fields)] cut into one per worker, each with
        the worker's local index of the resident."""
        out: list[list[tuple[Any, ...]]] = [[] for _ in range(self.n)]
        for i, off, g, fields in schedule:
            out[g % self.n].append((i, off, g // self.n, fields))
        return out

    @property
    def pids(self) -> dict[str, int]:
        """label -> pid of each client worker process (for testkit.stats.CpuWindow)."""
        return {f"client{w}": p.pid for w, p in enumerate(self.procs) if p.pid is not None}

    async def _recv_all(self, timeout: float) -> list[Any]:
        loop = asyncio.get_running_loop()

        def recv(p: Any) -> Any:
            if not p.poll(timeout):
                raise TimeoutError("client worker did not answer")
            return p.recv()

        return list(await asyncio.gather(*(loop.run_in_executor(None, recv, p) for p in self.pipes)))

    async def connected(self, timeout: float = 600) -> tuple[int, int, float]:
        answers = await self._recv_all(timeout)
        return sum(a[1] for a in answers), sum(a[2] for a in answers), max(a[3] for a in answers)

    async def run(
        self,
        t0_wall: float,
        timeout: float = 600,
        schedule: list[tuple[int, float, int, dict[str, Any]]] | None = None,
    ) -> list[dict[str, Any]]:
        """Every worker sends its part of `schedule` (or of the one given at the start, when None) from
        t0_wall (time.time()) on; the results of all."""
        slices = self._split(schedule) if schedule is not None else [None] * self.n
        for p, part in zip(self.pipes, slices):
            p.send(("run", t0_wall, part))
        return [r for a in await self._recv_all(timeout) for r in a[1]]

    async def status(self) -> tuple[int, int, int]:
        for p in self.pipes:
            p.send(("status",))
        answers = await self._recv_all(60)
        return sum(a[1] for a in answers), sum(a[2] for a in answers), sum(a[3] for a in answers)

    async def stop(self) -> None:
        for p in self.pipes:
            with contextlib.suppress(Exception):
                p.send(("stop",))
        with contextlib.suppress(Exception):
            await self._recv_all(120)
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()
