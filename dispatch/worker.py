"""The deadline and orphan worker: every node runs one, all driven from PostgreSQL.

Each tick (with jitter, so nodes started together do not tick together) it
expires offers past their deadline (offers.is_due), matches queued
incidents nobody carried on (their node died, or Redis was down) and texts
the supervisors about escalations no dispatcher took (dispatch/alarm.py). Rows are
claimed with FOR UPDATE SKIP LOCKED, so several nodes share the work and a
stale or duplicate tick does nothing.
"""
from __future__ import annotations

import asyncio
import logging
import random
from typing import Protocol

log = logging.getLogger(__name__)


class Duties(Protocol):
    """What the worker drives (dispatch.sweeps.Sweeps)."""

    async def expire_due(self, limit: int = 100) -> int: ...
    async def sweep_orphans(self, limit: int = 100) -> int: ...
    async def alert_supervisors(self) -> int: ...


async def run(service: Duties, tick_s: float) -> None:
    """Until cancelled: expire due offers, sweep orphans, text supervisors, every `tick_s` (±25 %)."""
    while True:
        await asyncio.sleep(tick_s * (0.75 + random.random() / 2))
        try:
            await service.expire_due()
            await service.sweep_orphans()
            await service.alert_supervisors()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - one bad tick (PostgreSQL restarting) must not end the worker
            log.warning("dispatch worker: %s", e)
