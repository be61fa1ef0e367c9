"""The SMS gateway: one interface, the Twilio and console implementations.

Twilio's REST client is pointed at `sms.api_base` (a test points it at a local stand-in) through
`RebasedHttpClient`, which also tells "nothing was sent" (safe to retry) apart from an outcome
the sender cannot know (never retried: a duplicate text is worse than a late one).
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response as TwilioResponse

from infra.config import Config, ConfigError
from infra.formats import mask_phone

log = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 20.0


class Gateway(Protocol):
    async def send(self, to: str, body: str, status_callback: str | None) -> Sent:
        """Hand one text to the provider. Raises NotSent (retry), ProviderError (refused), or anything
        else when the outcome is unknown."""
        ...

    async def call(self, to: str, twiml: str) -> Sent:
        """Place one phone call that plays this TwiML; errors as for `send`."""
        ...

    async def close(self) -> None: ...


class NotSent(Exception):
    """Nothing reached the provider (connection never opened, or HTTP 429): safe to retry."""


class ProviderError(Exception):
    """The provider refused the message (an HTTP error answer); never retried."""

    def __init__(self, status: int, code: int | None, message: str) -> None:
        super().__init__(f"HTTP {status} code {code}: {message}")
        self.status, self.code = status, code


@dataclass(frozen=True)
class Sent:
    sid: str
    status: str


class RebasedHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]  # twilio ships no types
    """twilio's async HTTP client, pointed at `sms.api_base`; no blind retries; tells 'not sent' apart."""

    def __init__(self, api_base: str, timeout_s: float = HTTP_TIMEOUT_S) -> None:
        super().__init__(pool_connections=False, timeout=timeout_s)   # no session made outside the loop
        base = urlsplit(api_base.rstrip("/"))
        self.base_scheme, self.base_netloc, self.base_path = base.scheme, base.netloc, base.path
        self.timeout_s = timeout_s
        self._http: aiohttp.ClientSession | None = None

    def rebase(self, url: str) -> str:
        u = urlsplit(url)
        if not (u.hostname or "").endswith("twilio.com"):
            return url
        return u._replace(scheme=self.base_scheme, netloc=self.base_netloc, path=self.base_path + u.path).geturl()

    async def request(self, method: str, url: str, params: dict[str, object] | None = None,
                      data: dict[str, object] | None = None, headers: dict[str, str] | None = None,
                      auth: tuple[str, str] | None = None, timeout: float | None = None,
                      allow_redirects: bool = False) -> TwilioResponse:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(keepalive_timeout=10))
        t = aiohttp.ClientTimeout(total=timeout or self.timeout_s, connect=5)
        headers = dict(headers or {})
        if auth:
            headers["Authorization"] = aiohttp.encode_basic_auth(*auth)
        try:
            async with self._http.request(method.upper(), self.rebase(url), params=params, data=data,  # type: ignore[arg-type]
                                          headers=headers, timeout=t, allow_redirects=allow_redirects) as resp:
                text = await resp.text()
                return TwilioResponse(resp.status, text, resp.headers)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as e:
            raise NotSent(f"connection not opened: {e}") from e

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


class TwilioGateway:
    def __init__(self, cfg: Config) -> None:
        from twilio.rest import Client

        missing = [k for k in ("account_sid", "auth_token", "from_number") if not getattr(cfg.sms, k)]
        if missing:
            raise ConfigError(f"sms.provider is twilio but sms.{', sms.'.join(missing)} not set")
        self.http = RebasedHttpClient(cfg.sms.api_base)
        self.client = Client(cfg.sms.account_sid, cfg.sms.auth_token, http_client=self.http, environment={})
        self.from_number = cfg.sms.from_number

    async def send(self, to: str, body: str, status_callback: str | None) -> Sent:
        try:
            msg = await self.client.messages.create_async(to=to, from_=self.from_number, body=body,
                                                          status_callback=status_callback)
        except (TwilioRestException, TwilioServiceException) as e:
            if e.status == 429:
                raise NotSent(f"HTTP 429 (code {e.code})") from e
            raise ProviderError(e.status, e.code, str(getattr(e, "msg", "") or getattr(e, "title", ""))) from e
        return Sent(str(msg.sid), str(msg.status or "queued"))

    async def call(self, to: str, twiml: str) -> Sent:
        """The Calls API (same host as Messages, so the rebased client reaches the stand-in too)."""
        try:
            c = await self.client.calls.create_async(to=to, from_=self.from_number, twiml=twiml)
        except (TwilioRestException, TwilioServiceException) as e:
            if e.status == 429:
                raise NotSent(f"HTTP 429 (code {e.code})") from e
            raise ProviderError(e.status, e.code, str(getattr(e, "msg", "") or getattr(e, "title", ""))) from e
        return Sent(str(c.sid), str(c.status or "queued"))

    async def close(self) -> None:
        await self.http.close()


class ConsoleGateway:
    """sms.provider console: the text goes to the log (and the outbox records it as sent)."""

    async def send(self, to: str, body: str, status_callback: str | None) -> Sent:
        # the number masked and no text (a code, someone's words): GET /sms/simulate/outbox shows the texts
        sid = "console-" + uuid.uuid4().hex
        log.info("SMS (console) %s to %s: %d characters", sid, mask_phone(to), len(body))
        return Sent(sid, "sent")

    async def call(self, to: str, twiml: str) -> Sent:
        sid = "console-call-" + uuid.uuid4().hex
        log.info("call (console) %s to %s", sid, mask_phone(to))
        return Sent(sid, "queued")

    async def close(self) -> None:
        return None


def make_gateway(cfg: Config) -> Gateway:
    return TwilioGateway(cfg) if cfg.sms.provider == "twilio" else ConsoleGateway()
