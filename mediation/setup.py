"""Wiring into the app: server/app.py calls `setup_app(app, cfg)` when this module exists."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from mediation.handlers import PARTICIPANTS, actor
from mediation.live import Feeds
from mediation.rules import OPEN
from mediation.service import MediationService
from infra.config import Config
from server.services import SERVICES


def setup_app(app: web.Application, cfg: Config) -> None:
    async def mediation_ctx(app: web.Application) -> AsyncIterator[None]:
        # appended after the core's cleanup_ctx: app[SERVICES] exists here, and outlives us at shutdown
        services = app[SERVICES]
        svc = MediationService(services.pool, services.redis, services.keys, services.bus.publish_many,
                               services.extras, cfg.server.public_url)
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
            await svc.shutdown()
            services.extras.pop("mediation", None)

    app.cleanup_ctx.append(mediation_ctx)
