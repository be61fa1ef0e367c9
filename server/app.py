"""The app factory: one aiohttp application, every resource opened and closed in cleanup_ctx."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from aiohttp import web

from dispatch.service import DispatchService
from infra import db
from server import gcwatch
from infra.bus import Bus
from infra.config import Config, token_service
from infra.keys import Keys
from infra.metrics import Metrics
from server.services import SERVICES, Services

log = logging.getLogger(__name__)


def redis_client(url: str) -> aioredis.Redis:
    """Commands wait for a free connection (up to 5 s) rather than failing at a surge."""
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=64, timeout=5, health_check_interval=10,
                                                    socket_connect_timeout=3, socket_timeout=5)
    return aioredis.Redis(connection_pool=pool)


def create_app(cfg: Config, database_url: str, redis_url: str) -> web.Application:
    # the command modules register themselves on import
    import handlers.help  # noqa: F401
    from handlers import http, ws

    app = web.Application(client_max_size=64 * 1024, middlewares=[http.errors_middleware])

    async def resources(app: web.Application) -> AsyncIterator[None]:
        conn = await db.connect(database_url)
        try:
            await db.migrate(conn)
        finally:
            await conn.close()
        pool = await db.create_pool(database_url, cfg.database.pool_min, cfg.database.pool_max)
        redis = redis_client(redis_url)
        keys = Keys(cfg.redis.key_prefix)
        metrics = Metrics()
        bus = Bus(redis)
        dispatch = DispatchService(cfg, pool, redis, keys, bus.publish_many, metrics)
        services = Services(cfg=cfg, pool=pool, redis=redis, bus=bus, keys=keys, metrics=metrics, dispatch=dispatch,
                            tokens=token_service(cfg))
        services.hub = ws.Hub(services)
        services.admission = ws.Admission(cfg.server.max_commands_in_flight, cfg.server.max_commands_waiting,
                                          metrics)

        async def resync() -> None:
            """Redis is back (it may have lost everything): live index, presence, then clients' state."""
            for attempt in range(8):
                try:
                    await dispatch.rebuild_index()
                    await services.hub.refresh_presence()
                    break
                except Exception as e:
                    log.warning("rebuilding live state after Redis reconnect (attempt %d): %s", attempt + 1, e)
                    await asyncio.sleep(0.2 * 2 ** attempt)
            await services.hub.resync()

        bus.on_resync = resync
        app[SERVICES] = services
        stop_gc_watch = gcwatch.watch(lambda gen, took: metrics.gc_pause.labels(generation=str(gen)).observe(took))
        await bus.start()
        with contextlib.suppress(Exception):
            await dispatch.rebuild_index()
        workers = [asyncio.create_task(_dispatch_worker(services), name="dispatch-worker"),
                   asyncio.create_task(_presence_worker(services), name="presence-worker")]
        try:
            yield
        finally:
            stop_gc_watch()
            for t in workers:
                t.cancel()
            for t in workers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            await bus.close()
            await redis.aclose()
            await pool.close()

    async def going_away(app: web.Application) -> None:
        """Before the server stops: tell every client at once (they reconnect, to another node if need be)."""
        hub = app[SERVICES].hub
        app[SERVICES].bus.closing = True
        closing = [conn.ws.close(code=1001, message=b"server shutting down") for conn in hub.all()]
        if closing:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), 3)

    app.cleanup_ctx.append(resources)
    app.on_shutdown.append(going_away)
    http.add_routes(app)
    app.router.add_get("/ws", ws.ws_handler)
    # features add routes, commands and their own resources after the core's (order matters: SMS after
    # mediation, both after the core, so each finds what it uses in services.extras)
    from handlers import sms
    from mediation import setup as mediation_setup

    for setup_feature in (mediation_setup.setup_app, sms.setup_app):
        setup_feature(app, cfg)
    return app


async def _dispatch_worker(s: Services) -> None:
    """Offer deadlines and orphaned incidents, driven from PostgreSQL; every node runs this."""
    tick = s.cfg.dispatch.tick_s
    while True:
        await asyncio.sleep(tick * (0.75 + random.random() / 2))
        try:
            await s.dispatch.expire_due()
            await s.dispatch.sweep_orphans()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("dispatch worker: %s", e)


async def _presence_worker(s: Services) -> None:
    while True:
        await asyncio.sleep(15)
        try:
            await s.hub.refresh_presence()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("presence refresh: %s", e)
