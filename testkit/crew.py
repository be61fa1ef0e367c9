"""Responders that work their offers: accept (or decline), then en route, on scene, resolved."""
from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

from testkit.client import WSClient


@dataclass
class ResponderStats:
    offers: dict[str, float] = field(
        default_factory=dict
    )  # incident id -> first offer received (perf_counter)
    offers_total: int = 0
    accepted: int = 0
    declined: int = 0
    conflicts: int = 0
    resolved: int = 0
    errors: int = 0


class ResponderCrew:
    """Responders that accept (or decline with probability `decline_p`) each offer at once, then go
    en route, on scene and resolved `hold_s` apart, so they become available again."""

    def __init__(self, rng: random.Random, decline_p: float = 0.1, hold_s: float = 0.2) -> None:
        self.rng, self.decline_p, self.hold_s = rng, decline_p, hold_s
        self.stats = ResponderStats()
        self.tasks: set[asyncio.Task[None]] = set()

    def on_push(self, client: WSClient, msg: dict[str, Any], t: float) -> None:
        if msg.get("type") != "offer":
            return
        iid = msg["incident"]["id"]
        self.stats.offers_total += 1
        self.stats.offers.setdefault(iid, t)
        task = asyncio.get_running_loop().create_task(self._work(client, msg))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _work(self, c: WSClient, offer: dict[str, Any]) -> None:
        try:
            if self.rng.random() < self.decline_p:
                ans = await c.call("offer.decline", offer_id=offer["offer_id"])
                self.stats.declined += ans.get("type") == "ok"
                return
            ans = await c.call("offer.accept", offer_id=offer["offer_id"])
            if ans.get("type") != "ok":
                self.stats.conflicts += 1
                return
            self.stats.accepted += 1
            iid = offer["incident"]["id"]
            for status in ("en_route", "on_scene", "resolved"):
                await asyncio.sleep(self.hold_s)
                ans = await c.call("incident.progress", incident_id=iid, status=status)
                if ans.get("type") != "ok":
                    self.stats.errors += 1
                    return
            self.stats.resolved += 1
        except Exception:
            self.stats.errors += 1

    async def drain(self, timeout: float = 15) -> None:
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)


async def start_duty(clients: list[WSClient], points: list[tuple[float, float]]) -> None:
    for c, (lat, lon) in zip(clients, points):
        await c.ok("duty.start", lat=lat, lon=lon)
