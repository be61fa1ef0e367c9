"""Phone login by one-time code (contract §2): POST /api/auth/otp/request and /api/auth/otp/verify.

The codes, their per-phone limits and the account they verify are sms.otp's; here are the
per-address limits (infra/ratelimit.py) and the wire.
"""
from __future__ import annotations

import unicodedata
from typing import Annotated, Any

import msgspec
from aiohttp import web

from handlers.apidoc import route_doc
from handlers.context import CONFIG, KEYS, POOL, REDIS, SMS, TOKENS
from handlers.http import bearer_claims, read_json
from infra import accounts, ratelimit
from infra.config import sms_countries
from infra.errors import BadRequest, HelplineError, RateLimited, Unauthorized
from mediation.guard import region_of
from sms import otp


class OtpRequest(msgspec.Struct):
    phone: Annotated[str, msgspec.Meta(min_length=3, max_length=32)]


class OtpVerify(msgspec.Struct):
    phone: Annotated[str, msgspec.Meta(min_length=3, max_length=32)]
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=16)]
    keep: bool = False    # extension: link the phone to the caller's own account, or 409 (docs/protocol.md)


@route_doc(body=OtpRequest)
async def otp_request(request: web.Request) -> web.Response:
    app = request.app
    phone = accounts.normalise_phone((await read_json(request, OtpRequest)).phone)
    # a code is a text the city pays for, to a number the caller chooses: the SMS pump's favourite
    # (premium ranges abroad), so only to sms.allowed_countries, and limited per address and network
    allowed = sms_countries(app[CONFIG])
    if region_of(phone) not in allowed:
        raise BadRequest(f"phone: codes are sent only to numbers in {', '.join(sorted(allowed))}")
    address = request.remote or "-"
    for key, limit in ((app[KEYS].rate("otp-req-addr", address), ratelimit.OTP_REQUESTS_PER_ADDRESS),
                       (app[KEYS].rate("otp-req-net", ratelimit.address_prefix(address)),
                        ratelimit.OTP_REQUESTS_PER_NETWORK)):
        if not await ratelimit.allow(app[REDIS], key, *limit):
            raise RateLimited("too many codes asked from this network; try again later")
    async with app[POOL].acquire() as conn, conn.transaction():
        await otp.send_code(conn, app[SMS], app[CONFIG].auth.jwt_secret, phone)
    return web.json_response({"status": "sent", "expires_in_s": otp.OTP_TTL_S}, status=202)


async def _caller(request: web.Request) -> dict[str, Any] | None:
    """The account of a Bearer token sent along (the app's device account), if any and valid."""
    try:
        account, _ = await bearer_claims(request)
    except HelplineError:
        return None
    return account


@route_doc(body=OtpVerify)
async def otp_verify(request: web.Request) -> web.Response:
    app = request.app
    body = await read_json(request, OtpVerify)
    phone = accounts.normalise_phone(body.phone)
    code = unicodedata.normalize("NFKC", body.code).strip()
    by_address = app[KEYS].rate("otp-fail-addr", request.remote or "-")
    if await ratelimit.peek(app[REDIS], by_address) >= ratelimit.OTP_FAILURES_PER_ADDRESS[0]:
        raise RateLimited("too many wrong codes from this address; try again later")
    caller = await _caller(request)
    if body.keep and caller is None:
        raise Unauthorized("keep: send the account's token")
    async with app[POOL].acquire() as conn, conn.transaction():
        row = await otp.check_code(conn, app[CONFIG].auth.jwt_secret, phone, code, caller, body.keep)
    if row is None:
        await ratelimit.count(app[REDIS], by_address, ratelimit.OTP_FAILURES_PER_ADDRESS[1])
        raise Unauthorized("wrong or expired code")
    token = app[TOKENS].issue(str(row["id"]), row["role"], row.get("session_epoch", 0))
    return web.json_response({"token": token, "account": accounts.account_view(row)})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/auth/otp/request", otp_request)
    app.router.add_post("/api/auth/otp/verify", otp_verify)
