"""The app factory, the composition root: every service is made, wired and closed here.

One aiohttp application per node; every resource is opened and closed in cleanup_ctx, and
stored under its typed key (handlers/context.py). Routes and commands are listed where
they live (handlers/http.py `add_routes`, handlers/commands.py), not registered by import.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable

import redis.asyncio as aioredis
from aiohttp import web

from dispatch import worker as dispatch_worker
from dispatch.service import DispatchService
from handlers import admin, apidoc, http, intake, sms_otp, voice, ws
from handlers import context as k
from handlers import export as export_handlers
from handlers import grids as grids_handlers
from handlers import push as push_handlers
from handlers import reports as reports_handlers
from handlers import sms as sms_handlers
from handlers.admission import Admission
from handlers.commands import COMMANDS
from handlers.connection import Hub
from handlers.sms_routing import InboundRouter, for_mediation
from infra import db, redisclient
from infra.bus import Bus
from infra.config import Config, sms_countries, token_service, trusted_proxies
from infra.keys import Keys
from infra.metrics import Metrics
from mediation import tracking
from mediation.live import Feeds
from mediation.service import MediationService
from push.service import PushService
from server import gcwatch
from sms.gateway import make_gateway
from sms.offers import OfferTexts
from sms.outbox import SmsOutbox
from sms.status import STATUS_TEXT_CHANNELS, StatusTexts

log = logging.getLogger(__name__)


def redis_client(url: str) -> aioredis.Redis:
    """The node's Redis client for `redis.url`: one Redis, or the primary of a Sentinel set
    (infra/redisclient.py `connect`: a blocking pool, a command retried once on a dead connection)."""
    return redisclient.connect(url)


def create_app(cfg: Config, database_url: str, redis_url: str) -> web.Application:
    app = web.Application(client_max_size=64 * 1024, middlewares=[
        *([http.proxies_middleware(proxies)] if (proxies := trusted_proxies(cfg)) else []),
        http.log_context_middleware, http.errors_middleware])
    app[k.CONFIG] = cfg
    app[k.TOKENS] = token_service(cfg)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        conn = await db.connect(database_url, wait_s=db.START_WAIT_S)   # a primary mid-failover: wait a little
        try:
            await db.migrate(conn)
        finally:
            await conn.close()
        pool = await db.create_pool(database_url, cfg.database.pool_min, cfg.database.pool_max)
        redis = redis_client(redis_url)
        keys = Keys.for_redis(cfg.redis.key_prefix, redis_url)     # hash-tagged on a Redis Cluster
        metrics = Metrics()
        bus = Bus(redis, keepalive=keys.keepalive_channel)
        push = PushService(cfg, pool, redis, keys, metrics, bus=bus)   # bus: who holds a subscription

        async def publish(items: list[tuple[str, str]]) -> None:
            """Dispatch's events, after commit: Web Push looks at them (queues, never waits), Redis rings."""
            push.observe(items)
            await bus.publish_many(items)

        dispatch = DispatchService(cfg, pool, redis, keys, publish, metrics)
        push.on_offer_pushed = dispatch.reach.pushed    # the incident's log names push among an offer's channels
        outbox = SmsOutbox(cfg, pool, make_gateway(cfg), metrics,   # every text, of every domain, goes out through it
                           listen_dsn=database_url)                  # woken as the transaction queuing one commits
        # an SMS incident's status texts are queued in the transaction of each change (its report too); so are
        # those of an incident a dispatcher opened for a caller (by phone or at a counter: issue 13)
        dispatch.on_change(StatusTexts(outbox), STATUS_TEXT_CHANNELS)
        dispatch.texts = outbox      # supervisors texted about escalations nobody took (dispatch/acks.py)
        # an offer to a responder off line (or with dispatch.offer_sms always) is texted and, if urgent, called,
        # in the offer's transaction; neither goes out once the offer has ended
        dispatch.on_offer(OfferTexts(outbox, cfg))
        outbox.offer_open = dispatch.reads.offer_open
        mediation = MediationService(pool, redis, keys, bus.publish_many, outbox, cfg.server.public_url,
                                     sms_countries(cfg), settings=cfg.mediation)
        mediation.metrics = metrics      # overdue cases (issue 15)
        feeds = Feeds(mediation, bus, keys)
        mediation.feeds = feeds
        hub = Hub(app, cfg, pool, redis, bus, keys, metrics)
        dispatch.refresh_presence = hub.refresh_presence   # the live index is ready only with presence back
        for key, value in ((k.POOL, pool), (k.REDIS, redis), (k.KEYS, keys), (k.METRICS, metrics), (k.BUS, bus),
                           (k.DISPATCH, dispatch), (k.MEDIATION, mediation), (k.FEEDS, feeds), (k.HUB, hub),
                           (k.SMS, outbox), (k.PUSH, push),
                           (k.SMS_ROUTER, InboundRouter(pool, dispatch, for_mediation(mediation),
                                                        cfg.web.emergency_number, feedback=mediation)),
                           (k.ADMISSION, Admission(cfg.server.max_commands_in_flight,
                                                   cfg.server.max_commands_waiting, metrics))):
            app[key] = value   # type: ignore[misc]  # one loop over keys of different types

        async def resync() -> None:
            """Redis is back (it may have lost everything): live index, presence, then clients' state."""
            for attempt in range(8):
                try:
                    await dispatch.rebuild_index()
                    await hub.refresh_presence()
                    break
                except Exception as e:
                    log.warning("rebuilding live state after Redis reconnect (attempt %d): %s", attempt + 1, e)
                    await asyncio.sleep(0.2 * 2 ** attempt)
            await ws.resync(app)

        bus.on_resync = resync
        stop_gc_watch = gcwatch.watch(lambda gen, took: metrics.gc_pause.labels(generation=str(gen)).observe(took))
        await bus.start()
        with contextlib.suppress(Exception):
            await dispatch.rebuild_index()
        await feeds.start()
        outbox.start()
        await push.start()
        workers = [asyncio.create_task(dispatch_worker.run(dispatch.sweeps, cfg.dispatch.tick_s),
                                       name="dispatch-worker"),
                   asyncio.create_task(_presence_worker(hub), name="presence-worker"),
                   asyncio.create_task(_session_worker(hub, cfg.server.session_recheck_s), name="session-worker"),
                   asyncio.create_task(tracking.run(mediation.sweep_overdue, cfg.mediation.sweep_s),
                                       name="case-deadline-worker")]
        try:
            yield
        finally:
            stop_gc_watch()
            for t in workers:
                t.cancel()
            for t in workers:
                await _bounded(f"the {t.get_name()}", t)
            await _bounded("the mediation feeds", feeds.close())
            await _bounded("the SMS outbox", outbox.stop())
            await _bounded("Web Push", push.stop())
            await _bounded("the Redis bus", bus.close())
            await _bounded("the Redis client", redis.aclose())
            if not await _bounded("the database pool", pool.close()):
                pool.terminate()     # a connection some stuck task holds: closed under it, so the node stops

    async def going_away(app: web.Application) -> None:
        """Before the server stops: tell every client at once (they reconnect, to another node if need be)."""
        app[k.BUS].closing = True
        closing = [conn.ws.close(code=1001, message=b"server shutting down") for conn in app[k.HUB].all()]
        if closing:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), 3)

    app.cleanup_ctx.append(resources)
    app.on_shutdown.append(going_away)
    http.add_routes(app)
    app.router.add_get("/ws", ws.ws_handler)
    sms_handlers.add_routes(app)
    sms_otp.add_routes(app)
    push_handlers.add_routes(app)
    voice.add_routes(app)
    intake.add_routes(app)
    grids_handlers.add_routes(app)
    reports_handlers.add_routes(app)
    export_handlers.add_routes(app)
    admin.add_routes(app)
    apidoc.add_routes(app, COMMANDS)
    return app


STOP_STEP_S = 10.0    # each step of a node's shutdown; one that hangs is logged and left behind


async def _bounded(what: str, step: Awaitable[object]) -> bool:
    """Await one shutdown step for at most STOP_STEP_S: whether it finished (an error in it is logged). A node
    asked to stop must stop, whatever one of its parts is stuck on."""
    try:
        async with asyncio.timeout(STOP_STEP_S):
            await step
        return True
    except asyncio.CancelledError:
        me = asyncio.current_task()
        if me is not None and me.cancelling():
            raise            # this shutdown itself is being cancelled
        return True          # the step was a cancelled worker: that is how it ends
    except TimeoutError:
        log.error("shutdown: %s did not stop within %.0f s; going on without it", what, STOP_STEP_S)
        return False
    except Exception as e:
        log.warning("shutdown: %s: %s", what, e)
        return True


async def _presence_worker(hub: Hub) -> None:
    while True:
        await asyncio.sleep(15)
        try:
            await hub.refresh_presence()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("presence refresh: %s", e)
        try:
            await hub.refresh_sessions()     # the staff sessions /admin lists (infra/sessions.py REFRESH_S)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("sessions refresh: %s", e)


async def _session_worker(hub: Hub, period_s: float) -> None:
    """Sessions whose account lost the right close within `period_s`, whether or not Redis told us."""
    while True:
        await asyncio.sleep(period_s)
        try:
            await hub.recheck_sessions()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("session re-check: %s", e)
