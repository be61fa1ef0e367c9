"""A stand-in for Twilio's REST Messages and Calls endpoints, and webhooks signed as Twilio signs them.

    FakeTwilio  on a loopback port: checks basic auth, records Messages and Calls posts, can be told
                to answer 429/500/an error code first, or to answer calls late (the `fake` fixture)
    sms_app     an in-process app with sms.provider twilio pointed at a FakeTwilio, its
                public URL set to the URL the tests post to (the `shl` fixture)
    sms_in, status_in   inbound and status webhooks, signed
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
import uuid
from typing import Any

import aiohttp
from aiohttp import web

from testkit.nodes import InProcess
from testkit.stack import Stack, free_port

TW_SID = "AC" + "b" * 32
TW_TOKEN = "c" * 32
TW_FROM = "+15005550006"


def twilio_signature(url: str, params: dict[str, str], token: str = TW_TOKEN) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1 over the URL followed by each param name+value, sorted by name."""
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


class FakeTwilio:
    """Records what the service sends through Twilio's Messages endpoint."""

    def __init__(self, port: int | None = None, sid: str = TW_SID, token: str = TW_TOKEN) -> None:
        self.port = port or free_port()
        self.sid, self.token = sid, token
        self.sent: list[dict[str, Any]] = []       # accepted messages
        self.posts = 0                              # every authenticated Messages request
        self.fail_next: list[int | tuple[int, int]] = []   # status, or (status, twilio error code)
        self.delay_s = 0.0                          # accept, then answer this late (a lost answer)
        self.calls: list[dict[str, Any]] = []      # accepted Calls: To, From, Twiml (or Url)
        self.call_delay_s = 0.0                     # answer the Calls API this late (a slow provider)
        self.runner: web.AppRunner | None = None

    async def start(self) -> FakeTwilio:
        async def messages(req: web.Request) -> web.Response:
            if req.headers.get("Authorization") != aiohttp.encode_basic_auth(self.sid, self.token) \
                    or req.match_info["sid"] != self.sid:
                return web.json_response({"code": 20003, "message": "Authenticate", "status": 401},
                                         status=401)
            form = dict(await req.post())
            self.posts += 1
            if self.fail_next:
                f = self.fail_next.pop(0)
                st, code = f if isinstance(f, tuple) else (f, 20429 if f == 429 else 20500)
                return web.json_response({"code": code, "message": "refused", "status": st}, status=st)
            sid = "SM" + uuid.uuid4().hex
            self.sent.append({**form, "sid": sid, "at": time.monotonic()})
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            return web.json_response({
                "sid": sid, "account_sid": self.sid, "to": form.get("To"), "from": form.get("From"),
                "body": form.get("Body"), "status": "queued", "num_segments": "1",
                "direction": "outbound-api", "api_version": "2010-04-01",
                "date_created": "Fri, 27 Nov 2026 00:00:00 +0000",
                "uri": f"/2010-04-01/Accounts/{self.sid}/Messages/{sid}.json"}, status=201)

        async def calls(req: web.Request) -> web.Response:
            if req.headers.get("Authorization") != aiohttp.encode_basic_auth(self.sid, self.token) \
                    or req.match_info["sid"] != self.sid:
                return web.json_response({"code": 20003, "message": "Authenticate", "status": 401},
                                         status=401)
            form = dict(await req.post())
            if self.call_delay_s:
                await asyncio.sleep(self.call_delay_s)
            sid = "CA" + uuid.uuid4().hex
            self.calls.append({**form, "sid": sid, "at": time.monotonic()})
            return web.json_response({
                "sid": sid, "account_sid": self.sid, "to": form.get("To"), "from": form.get("From"),
                "status": "queued", "direction": "outbound-api", "api_version": "2010-04-01",
                "uri": f"/2010-04-01/Accounts/{self.sid}/Calls/{sid}.json"}, status=201)

        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", messages)
        app.router.add_post("/2010-04-01/Accounts/{sid}/Calls.json", calls)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, str]:
        return {"sms_provider": "twilio", "sms_account_sid": self.sid, "sms_auth_token": self.token,
                "sms_from_number": TW_FROM, "sms_api_base": self.base}

    def to(self, phone: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m.get("To") == phone]

    def calls_to(self, phone: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if c.get("To") == phone]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def sms_in(base: str, phone: str, body: str, sid: str | None = None, signature: str | None = None,
                 token: str = TW_TOKEN, path: str = "/sms/inbound", **extra: str) -> tuple[int, str]:
    """POST an inbound SMS webhook as Twilio would; signature "" sends none."""
    params = {"AccountSid": TW_SID, "From": phone, "To": TW_FROM, "Body": body,
              "MessageSid": sid or "SM" + uuid.uuid4().hex, "NumMedia": "0", "SmsStatus": "received", **extra}
    url = base + path
    sig = twilio_signature(url, params, token) if signature is None else signature
    headers = {"X-Twilio-Signature": sig} if sig else {}
    async with aiohttp.ClientSession() as s, s.post(url, data=params, headers=headers) as r:
        return r.status, await r.text()


async def voice_in(base: str, offer_id: str, digits: str | None, call_sid: str | None = None,
                   signature: str | None = None, to: str = "", token: str = TW_TOKEN) -> tuple[int, str]:
    """POST the Gather action of an offer's call as Twilio would (Digits None: none pressed); signature ""
    sends none."""
    params = {"AccountSid": TW_SID, "CallSid": call_sid or "CA" + uuid.uuid4().hex, "From": TW_FROM, "To": to,
              "CallStatus": "in-progress", "Direction": "outbound-api"}
    if digits is not None:
        params["Digits"] = digits
    url = f"{base}/voice/offer?offer={offer_id}"
    sig = twilio_signature(url, params, token) if signature is None else signature
    headers = {"X-Twilio-Signature": sig} if sig else {}
    async with aiohttp.ClientSession() as s, s.post(url, data=params, headers=headers) as r:
        return r.status, await r.text()


async def status_in(base: str, sid: str, status: str, **extra: str) -> int:
    params = {"AccountSid": TW_SID, "MessageSid": sid, "MessageStatus": status, **extra}
    url = base + "/sms/status"
    headers = {"X-Twilio-Signature": twilio_signature(url, params)}
    async with aiohttp.ClientSession() as s, s.post(url, data=params, headers=headers) as r:
        return r.status


async def sms_app(stack: Stack, fake: FakeTwilio | None = None, **overrides: Any) -> InProcess:
    """An in-process app (twilio pointed at `fake` if given) whose public URL is its own address."""
    cfg = dict(fake.config() if fake else {}, **overrides)
    app = await InProcess(stack, **cfg).start()
    app.cfg.server.public_url = app.base      # the object the running app reads its config from
    return app
