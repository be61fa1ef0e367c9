"""Wiring of the SMS feature: routes, the outbox and its worker, the dispatch hook, the router."""
from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from handlers import sms_otp
from handlers.dispatch_shim import DispatchShim, new_api
from handlers.sms import SMS_EDGE, SmsEdge, add_routes
from handlers.sms_routing import InboundRouter, for_mediation
from infra.config import Config
from server.services import SERVICES
from sms.gateway import make_gateway
from sms.outbox import SmsOutbox
from sms.status import StatusTexts


async def _sms_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the core's and mediation's resources: the outbox worker, the dispatch hook, the router."""
    s, edge = app[SERVICES], app[SMS_EDGE]
    outbox = SmsOutbox(s.cfg, s.pool, make_gateway(s.cfg))
    s.extras["sms"] = outbox       # the TextQueue mediation writes through (mediation/setup.py)
    dispatch = new_api(s.dispatch)
    # an SMS incident's status texts are queued in the transaction of each change (its report too)
    dispatch.on_change(StatusTexts(outbox), frozenset({"sms"}))
    edge.outbox = outbox
    mediation = s.extras.get("mediation")
    edge.router = InboundRouter(s.pool, dispatch, for_mediation(mediation) if mediation is not None else None,
                                s.cfg.web.emergency_number)
    outbox.start()
    try:
        yield
    finally:
        if isinstance(dispatch, DispatchShim):
            dispatch.close()
        edge.router = None
        await outbox.stop()


def setup_app(app: web.Application, cfg: Config) -> None:
    app[SMS_EDGE] = SmsEdge()
    add_routes(app)
    sms_otp.add_routes(app)
    app.cleanup_ctx.append(_sms_ctx)
