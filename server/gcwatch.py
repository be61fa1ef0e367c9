"""Garbage-collector pauses: a full collection stops the event loop for every connection.

Python's cyclic collector walks every tracked object of the generations it collects; with
5,000 WebSockets open that is about a million objects, and with the default thresholds
(700, 10, 10) a collection of the oldest generation held a node's loop for 100-320 ms
every few seconds of a help surge (bench.surge: ack p99 250 ms). Objects of a request
live for milliseconds; collecting the youngest generation every 50,000 allocations
instead of 700 lets them die by reference counting before they are promoted, and full
collections become rare (same surge: ack p99 32 ms, no collection over 50 ms).

`tune` applies server.gc_thresholds (and freezes what startup allocated: it lives as
long as the process); `watch` times each collection into a histogram and logs the long
ones, so a latency spike can be told apart from the database or Redis.
"""
from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
SLOW_S = 0.05


def tune(thresholds: str) -> None:
    """Apply "g0,g1,g2" (server.gc_thresholds)."""
    g0, g1, g2 = (int(x) for x in thresholds.split(","))
    gc.set_threshold(g0, g1, g2)


def freeze_startup() -> None:
    """Once the node serves: what startup allocated (modules, config, pools) lives as long as the
    process, so later collections need not walk it again."""
    gc.collect()
    gc.freeze()


def watch(observe: Callable[[int, float], None]) -> Callable[[], None]:
    """Call observe(generation, seconds) after every collection; returns the function that stops it."""
    started: list[float] = [0.0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        took = time.perf_counter() - started[0]
        observe(info["generation"], took)
        if took >= SLOW_S:
            log.warning("garbage collection of generation %d held the loop for %.0f ms (%d collected)",
                        info["generation"], took * 1000, info.get("collected", 0))

    gc.callbacks.append(callback)

    def stop() -> None:
        if callback in gc.callbacks:
            gc.callbacks.remove(callback)
    return stop
