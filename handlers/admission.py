"""Admission control: how many commands this node works on at once."""
from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from infra.errors import Unavailable
from infra.metrics import Metrics


class Admission:
    """A node works on at most `limit` commands at once, and past `max_waiting` commands waiting
    for a slot it answers `unavailable` at once instead of queueing without bound.

    Under a surge beyond capacity, work already admitted finishes instead of every request slowing
    down together until clients time out; a client told `unavailable` retries (a help.request with
    the same request_id, so nothing is done twice) or is sent by its page to another node or to
    the emergency number.
    """

    def __init__(self, limit: int, max_waiting: int, metrics: Metrics | None = None) -> None:
        self.limit, self.max_waiting, self.metrics = limit, max_waiting, metrics
        self.running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def __aenter__(self) -> None:
        if self.running < self.limit and not self._waiters:
            self.running += 1
            return
        if len(self._waiters) >= self.max_waiting:
            if self.metrics is not None:
                self.metrics.shed.inc()
            raise Unavailable("this node is overloaded; retry in a moment")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut                # a finishing command hands its slot over (running stays the same)
        except BaseException:
            if fut.done() and not fut.cancelled():
                self._release()      # the slot was handed to us just as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            raise

    async def __aexit__(self, *exc: Any) -> None:
        self._release()

    def _release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.running -= 1
