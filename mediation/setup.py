"""Wiring into the app: server/app.py calls `setup_app(app, cfg)` when this module exists."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from infra.config import Config
from infra.db import Conn
from infra.texts import Template
from mediation.handlers import PARTICIPANTS, actor
from mediation.live import Feeds
from mediation.rules import OPEN
from mediation.service import MediationService
from server.services import SERVICES


class _ExtrasTexts:
    """The TextQueue of services.extras["sms"] (the sms package's outbox), found when first used.

    The SMS feature starts after mediation (server/app.py), so it is not there yet when the service
    is built; without it (no SMS feature) texts are not queued. Goes when the wiring uses AppKeys."""

    def __init__(self, extras: dict[str, Any]) -> None:
        self.extras = extras

    async def enqueue(self, conn: Conn, to: str, body: str | Template, *, kind: str = "notice",
                      incident_id: str | None = None, case_id: str | None = None,
                      ttl_s: float | None = None) -> int:
        queue = self.extras.get("sms")
        if queue is None:
            return 0
        return int(await queue.enqueue(conn, to, body, kind=kind, incident_id=incident_id, case_id=case_id,
                                       ttl_s=ttl_s))


def setup_app(app: web.Application, cfg: Config) -> None:
    async def mediation_ctx(app: web.Application) -> AsyncIterator[None]:
        # appended after the core's cleanup_ctx: app[SERVICES] exists here, and outlives us at shutdown
        services = app[SERVICES]
        svc = MediationService(services.pool, services.redis, services.keys, services.bus.publish_many,
                               _ExtrasTexts(services.extras), cfg.server.public_url)
        svc.feeds = Feeds(svc, services.bus, services.keys)
        services.extras["mediation"] = svc
        services.extras.setdefault("resync_hooks", []).append(svc.feeds.resync)
        services.extras.setdefault("close_hooks", []).append(svc.feeds.forget)

        async def open_cases(ctx: Any) -> dict[str, Any]:
            """welcome carries the caller's open cases, so a reconnecting client picks up where it was."""
            if ctx.role not in PARTICIPANTS:
                return {}
            return {"open_cases": [c for c in await svc.my_cases(actor(ctx)) if c["status"] in OPEN]}
        services.extras.setdefault("welcome_hooks", []).append(open_cases)
        await svc.feeds.start()
        try:
            yield
        finally:
            await svc.feeds.close()
            services.extras.pop("mediation", None)

    app.cleanup_ctx.append(mediation_ctx)
