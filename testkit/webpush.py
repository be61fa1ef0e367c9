"""A stand-in for a browser's push service (RFC 8030), with the browser's side of the keys.

    FakePushService  on a loopback port: hands out PushSubscriptions whose key pairs it made itself
                     (as a browser would), and for each POST to an endpoint checks the VAPID header
                     (RFC 8292: `Authorization: vapid t=<JWT>,k=<public key>`, the ES256 signature
                     verified against k, aud = this origin, exp within 24 h), decrypts the body with
                     the subscriber's private key and auth secret (RFC 8291, aes128gcm) and records
                     the plaintext; an endpoint can be told to answer 404, 410 or any status, or to
                     answer slowly.

The pages' JavaScript is not involved: tests POST the subscription JSON themselves, as push.js does.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import http_ece
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from testkit.stack import free_port


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class VapidError(Exception):
    pass


def check_vapid(header: str, audience: str) -> tuple[str, dict[str, Any]]:
    """(the signer's public key k, the JWT claims) of a valid `vapid t=...,k=...` header; VapidError else."""
    scheme, _, params = header.partition(" ")
    if scheme.lower() != "vapid":
        raise VapidError(f"scheme {scheme!r} is not vapid")
    parts = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
    token, k = parts.get("t"), parts.get("k")
    if not token or not k:
        raise VapidError("t= and k= are both required")
    try:
        head_b64, claims_b64, sig_b64 = token.split(".")
        header_json = json.loads(unb64url(head_b64))
        claims = json.loads(unb64url(claims_b64))
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(k))
        sig = unb64url(sig_b64)
    except (ValueError, TypeError) as e:
        raise VapidError(f"malformed: {e}") from None
    if header_json.get("alg") != "ES256" or len(sig) != 64:
        raise VapidError("not an ES256 JWT")
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    try:
        key.verify(der, f"{head_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise VapidError("bad signature") from None
    if claims.get("aud") != audience:
        raise VapidError(f"aud {claims.get('aud')!r} is not {audience!r}")
    exp = claims.get("exp")
    if not isinstance(exp, int) or not time.time() < exp <= time.time() + 86400:
        raise VapidError(f"exp {exp!r} not within the next 24 h")
    if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
        raise VapidError("sub must be a mailto: or https: URL")
    return k, claims


@dataclass
class Subscriber:
    """One browser's subscription: its endpoint, its keys (the private one stays here), what it got."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    received: list[dict[str, Any]] = field(default_factory=list)     # decrypted messages, with their headers
    status: int = 201                      # what the endpoint answers
    delay_s: float = 0.0                   # how long it takes to answer
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def p256dh(self) -> str:
        return b64url(self.private_key.public_key().public_bytes(serialization.Encoding.X962,
                                                                 serialization.PublicFormat.UncompressedPoint))

    def json(self, lang: str | None = None) -> dict[str, Any]:
        """PushSubscription.toJSON(), as push.js posts it (with the page's language)."""
        body: dict[str, Any] = {"endpoint": self.endpoint, "expirationTime": None,
                                "keys": {"p256dh": self.p256dh, "auth": b64url(self.auth)}}
        if lang is not None:
            body["lang"] = lang
        return body

    async def next(self, timeout: float = 10) -> dict[str, Any]:
        """The oldest message not yet taken, waiting for one."""
        deadline = time.monotonic() + timeout
        while not self.received:
            self.arrived.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no push reached {self.endpoint} within {timeout}s")
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except TimeoutError:
                pass
        return self.received.pop(0)


class FakePushService:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.subscribers: dict[str, Subscriber] = {}
        self.rejected: list[str] = []          # why a POST was refused (bad VAPID, bad encryption)
        self.posts = 0                         # every POST to an endpoint, answered or not
        self.runner: web.AppRunner | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def subscriber(self, status: int = 201, delay_s: float = 0.0) -> Subscriber:
        """A new subscription, keys made as a browser makes them."""
        token = uuid.uuid4().hex
        sub = Subscriber(f"{self.base}/push/{token}", ec.generate_private_key(ec.SECP256R1()), os.urandom(16),
                         status=status, delay_s=delay_s)
        self.subscribers[token] = sub
        return sub

    async def _receive(self, req: web.Request) -> web.Response:
        self.posts += 1
        sub = self.subscribers.get(req.match_info["token"])
        if sub is None:
            return web.Response(status=404)
        body = await req.read()
        try:
            k, claims = check_vapid(req.headers.get("Authorization", ""), self.base)
            if req.headers.get("Content-Encoding") != "aes128gcm":
                raise VapidError(f"Content-Encoding {req.headers.get('Content-Encoding')!r}")
            plain = http_ece.decrypt(body, private_key=sub.private_key, auth_secret=sub.auth, version="aes128gcm")
        except Exception as e:   # anything wrong is the service's fault: say so, record it
            self.rejected.append(f"{type(e).__name__}: {e}")
            return web.Response(status=401 if isinstance(e, VapidError) else 400, text=str(e))
        if sub.delay_s:
            await asyncio.sleep(sub.delay_s)
        if sub.status < 300:
            sub.received.append({"payload": json.loads(plain), "ttl": int(req.headers.get("TTL", "-1")),
                                 "urgency": req.headers.get("Urgency"), "vapid_key": k, "claims": claims,
                                 "at": time.monotonic()})
            sub.arrived.set()
        return web.Response(status=sub.status)

    async def start(self) -> FakePushService:
        app = web.Application()
        app.router.add_post("/push/{token}", self._receive)
        self.runner = web.AppRunner(app, shutdown_timeout=1)   # a slow endpoint still sleeping is not waited for
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
