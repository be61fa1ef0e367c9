"""The harness's own process: its log, its open-file limit, its event loop and GC; a poll."""
from __future__ import annotations

import asyncio
import contextlib
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def log(*a: Any) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *a, file=sys.stderr, flush=True)


def raise_nofile() -> int:
    """Raise the soft open-file limit to the hard one; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def use_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def tune_gc() -> None:
    """Load-generating processes hold thousands of sockets too: the same garbage-collector settings as
    the nodes (server.gc_thresholds' default, server/gcwatch.py), so that the instrument's own pauses
    do not show up as helpline's latency. The floor server gets them as well, to compare like with like."""
    import gc

    gc.set_threshold(50000, 50, 100)


async def until(pred: Callable[[], Any], timeout: float = 10, what: str = "condition") -> Any:
    """Poll a (sync or async) predicate until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.05)
