"""What one node holds: the shared objects every edge and worker uses."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from infra.auth import TokenService
from infra.bus import Bus
from infra.config import Config
from infra.keys import Keys
from infra.metrics import Metrics


@dataclass
class Services:
    cfg: Config
    pool: asyncpg.Pool
    redis: aioredis.Redis
    bus: Bus
    keys: Keys
    tokens: TokenService
    metrics: Metrics
    dispatch: Any                     # dispatch.service.DispatchService
    hub: Any = None                   # handlers.ws.Hub
    admission: Any = None             # handlers.ws.Admission: how many commands this node works on at once
    extras: dict[str, Any] = field(default_factory=dict)   # mediation, sms, ... add their services here


SERVICES = web.AppKey("services", Services)
