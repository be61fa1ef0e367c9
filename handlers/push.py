"""Web Push routes (contract §7): the server's VAPID key, and a browser's subscription kept or dropped."""
from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from handlers.apidoc import BEARER, route_doc
from handlers.context import PUSH
from handlers.http import bearer, read_json
from push.rules import MAX_ENDPOINT


class SubscriptionKeys(msgspec.Struct):
    p256dh: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    auth: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class SubscribeBody(msgspec.Struct):
    """PushSubscription.toJSON() (expirationTime and any other field ignored), and the page's language."""

    endpoint: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ENDPOINT)]
    keys: SubscriptionKeys
    lang: Annotated[str, msgspec.Meta(max_length=16)] | None = None


class UnsubscribeBody(msgspec.Struct):
    endpoint: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ENDPOINT)]


@route_doc()
async def key(request: web.Request) -> web.Response:
    return web.json_response({"public_key": request.app[PUSH].public_key},
                             headers={"Cache-Control": "no-cache"})


@route_doc(body=SubscribeBody, auth=BEARER, statuses={201: "subscribed"})
async def subscribe(request: web.Request) -> web.Response:
    account = await bearer(request)
    body = await read_json(request, SubscribeBody)
    sub = await request.app[PUSH].subscribe(account, body.endpoint, body.keys.p256dh, body.keys.auth, body.lang)
    return web.json_response({"endpoint": sub.endpoint, "lang": sub.lang}, status=201)


@route_doc(body=UnsubscribeBody, auth=BEARER, statuses={204: "unsubscribed"})
async def unsubscribe(request: web.Request) -> web.Response:
    account = await bearer(request)
    body = await read_json(request, UnsubscribeBody)
    await request.app[PUSH].unsubscribe(account["id"], body.endpoint)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/push/key", key)
    app.router.add_post("/api/push/subscribe", subscribe)
    app.router.add_delete("/api/push/subscribe", unsubscribe)
