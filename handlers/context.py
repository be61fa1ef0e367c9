"""What the edges find on the app: one typed `web.AppKey` per service of the node.

The composition root (server/app.py) creates each service and stores it under its key;
routes read `request.app[KEY]`, WebSocket commands `ctx.app[KEY]`. A missing service is a
KeyError at the first use, never a silent None.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from dispatch.service import DispatchService
from infra.auth import TokenService
from infra.bus import Bus
from infra.config import Config
from infra.keys import Keys
from infra.metrics import Metrics
from mediation.live import Feeds
from mediation.service import MediationService
from push.service import PushService
from sms.outbox import SmsOutbox

if TYPE_CHECKING:
    from handlers.admission import Admission
    from handlers.connection import Hub
    from handlers.sms_routing import InboundRouter

CONFIG = web.AppKey("config", Config)
POOL = web.AppKey("pool", asyncpg.Pool)
REDIS = web.AppKey("redis", aioredis.Redis)
BUS = web.AppKey("bus", Bus)
KEYS = web.AppKey("keys", Keys)
TOKENS = web.AppKey("tokens", TokenService)
METRICS = web.AppKey("metrics", Metrics)
DISPATCH = web.AppKey("dispatch", DispatchService)
MEDIATION = web.AppKey("mediation", MediationService)
FEEDS = web.AppKey("feeds", Feeds)
SMS = web.AppKey("sms", SmsOutbox)
PUSH = web.AppKey("push", PushService)
SMS_ROUTER: web.AppKey[InboundRouter] = web.AppKey("sms_router")
HUB: web.AppKey[Hub] = web.AppKey("hub")
ADMISSION: web.AppKey[Admission] = web.AppKey("admission")
