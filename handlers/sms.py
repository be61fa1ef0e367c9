"""The SMS channel's webhooks (contract §2 and §5): /sms/inbound and /sms/status from Twilio, and a
console-mode simulator for trainers (/sms/simulate, /sms/simulate/outbox).

Inbound texts are signed by Twilio (X-Twilio-Signature over server.public_url + path and the
form fields); anything unsigned or mis-signed is refused with 403. What a text does is decided in
handlers/sms_routing.py; phone login by code is handlers/sms_otp.py.
"""
from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
from aiohttp import web
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from handlers.apidoc import LOOPBACK, TWILIO, Param, route_doc
from handlers.context import CONFIG, POOL, SMS, SMS_ROUTER
from handlers.http import read_json
from handlers.sms_routing import InboundRouter
from infra import accounts
from infra.errors import BadRequest, Forbidden, NotFound


def twiml(text: str | None) -> web.Response:
    r = MessagingResponse()
    if text:
        r.message(text)
    return web.Response(text=str(r), content_type="text/xml", charset="utf-8")


async def signed_form(request: web.Request) -> Mapping[str, Any]:
    """The form fields of a Twilio webhook whose X-Twilio-Signature is valid, else Forbidden."""
    cfg = request.app[CONFIG]
    form = await request.post()
    signature = request.headers.get("X-Twilio-Signature", "")
    if not cfg.sms.auth_token or not signature:
        raise Forbidden("missing Twilio signature")
    url = cfg.server.public_url.rstrip("/") + request.raw_path
    if not RequestValidator(cfg.sms.auth_token).validate(url, form, signature):
        raise Forbidden("invalid Twilio signature")
    return form


async def answer(router: InboundRouter, form: Mapping[str, Any]) -> web.Response:
    sid, sender, body = form.get("MessageSid") or form.get("SmsSid"), form.get("From"), form.get("Body", "")
    if not isinstance(sid, str) or not isinstance(sender, str) or not sid or not sender:
        raise BadRequest("MessageSid and From are required")
    try:
        phone = accounts.normalise_phone(sender)
    except BadRequest:
        return twiml(None)      # a short code or an alphanumeric sender: nothing to do
    return twiml(await router.handle(phone, str(body), sid[:64]))


@route_doc(auth=TWILIO, form=True, answers="text/xml")
async def inbound(request: web.Request) -> web.Response:
    form = await signed_form(request)
    return await answer(request.app[SMS_ROUTER], form)


@route_doc(auth=TWILIO, form=True)
async def status_callback(request: web.Request) -> web.Response:
    form = await signed_form(request)
    sid, status, code = form.get("MessageSid"), form.get("MessageStatus"), form.get("ErrorCode")
    if isinstance(sid, str) and isinstance(status, str) and sid and status:
        error_code = int(code) if isinstance(code, str) and code.isdigit() else None
        await request.app[SMS].record_status(sid, status[:32], error_code)
    return web.Response(status=204)


def _console_local(request: web.Request) -> None:
    cfg = request.app[CONFIG]
    if cfg.sms.provider != "console" or cfg.server.production:
        raise NotFound("the simulator exists only with sms.provider console, outside production")
    try:
        local = ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        local = False
    if not local or "X-Forwarded-For" in request.headers or "Forwarded" in request.headers:
        raise Forbidden("the simulator is served on loopback only")


class SimBody(msgspec.Struct, rename={"from_": "from"}):
    from_: Annotated[str, msgspec.Meta(min_length=3, max_length=32)]
    body: Annotated[str, msgspec.Meta(max_length=1600)]


@route_doc(body=SimBody, auth=LOOPBACK, answers="text/xml")
async def simulate(request: web.Request) -> web.Response:
    """Console mode only, loopback only: an inbound text without Twilio (for trainers and testers)."""
    _console_local(request)
    msg = await read_json(request, SimBody)
    return await answer(request.app[SMS_ROUTER], {"MessageSid": "SIM" + uuid.uuid4().hex, "From": msg.from_,
                                            "Body": msg.body})


@route_doc(auth=LOOPBACK, query=(Param("phone", "the phone whose texts to read", True),
                                Param("after", "only texts after this sequence number", type="integer")))
async def simulate_outbox(request: web.Request) -> web.Response:
    """Console mode only, loopback only: the texts sent to a phone (after the id `after`)."""
    _console_local(request)
    phone = accounts.normalise_phone(request.query.get("phone", ""))
    try:
        after = int(request.query.get("after", "0"))
    except ValueError:
        raise BadRequest("after must be an integer") from None
    async with request.app[POOL].acquire() as conn:
        rows = await conn.fetch("SELECT id, body, status, created_at FROM sms_outbox WHERE to_phone = $1"
                                " AND id > $2 ORDER BY id LIMIT 100", phone, after)
    return web.json_response({"messages": [{"id": r["id"], "body": r["body"], "status": r["status"],
                                            "created_at": r["created_at"].isoformat()} for r in rows]})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/sms/inbound", inbound)
    r.add_post("/sms/status", status_callback)
    r.add_post("/sms/simulate", simulate)
    r.add_get("/sms/simulate/outbox", simulate_outbox)

