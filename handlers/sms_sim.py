"""Send an inbound SMS to a running helpline without Twilio (for trainers and testers).

    python -m handlers.sms_sim --url http://127.0.0.1:8080 --from +8613800138000 "HELP fell down"

With an `sms.auth_token` configured (config.yaml / HELPLINE_SMS_AUTH_TOKEN) the text is posted to
/sms/inbound signed exactly as Twilio signs it, over `server.public_url` (or --public-url) + the path.
Without one (the console default) it goes to /sms/simulate, which the server accepts only with
sms.provider console and from loopback. Prints the reply; with --watch N it then prints, for N
seconds, the texts the server sends to that phone (console mode).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import aiohttp

from infra import config as config_mod


def signature(url: str, params: dict[str, str], token: str) -> str:
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def replies(twiml: str) -> list[str]:
    try:
        return [m.text or "" for m in ET.fromstring(twiml).iter("Message")]
    except ET.ParseError:
        return [twiml]


async def send(url: str, phone: str, body: str, cfg: Any, public_url: str | None, simulate: bool) -> list[str]:
    async with aiohttp.ClientSession() as s:
        if cfg.sms.auth_token and not simulate:
            params = {"AccountSid": cfg.sms.account_sid, "From": phone, "To": cfg.sms.from_number or "+10000000000",
                      "Body": body, "MessageSid": "SM" + uuid.uuid4().hex, "NumMedia": "0"}
            signed_url = (public_url or cfg.server.public_url).rstrip("/") + "/sms/inbound"
            headers = {"X-Twilio-Signature": signature(signed_url, params, cfg.sms.auth_token)}
            async with s.post(url.rstrip("/") + "/sms/inbound", data=params, headers=headers) as r:
                text = await r.text()
        else:
            async with s.post(url.rstrip("/") + "/sms/simulate", json={"from": phone, "body": body}) as r:
                text = await r.text()
        if r.status != 200:
            raise SystemExit(f"the server answered {r.status}: {text}")
        return replies(text)


async def watch(url: str, phone: str, seconds: float) -> None:
    after, deadline = 0, time.monotonic() + seconds
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            async with s.get(url.rstrip("/") + "/sms/simulate/outbox", params={"phone": phone, "after": after}) as r:
                if r.status != 200:
                    raise SystemExit(f"cannot watch texts ({r.status}): {await r.text()}")
                for m in (await r.json())["messages"]:
                    if m["status"] in ("sent", "failed", "skipped"):
                        print(f"<- {m['body']}   [{m['status']}]")
                        after = m["id"]
            await asyncio.sleep(1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m handlers.sms_sim", description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=None, help="the server (default http://127.0.0.1:<server.port>)")
    ap.add_argument("--from", dest="phone", required=True, help="the sender's phone, e.g. +8613800138000")
    ap.add_argument("--public-url", default=None, help="the URL to sign over (default server.public_url)")
    ap.add_argument("--simulate", action="store_true", help="use /sms/simulate even if a token is configured")
    ap.add_argument("--watch", type=float, default=0, metavar="SECONDS", help="then print texts sent to the phone")
    ap.add_argument("body", nargs="+", help="the text")
    args = ap.parse_args(argv)
    cfg = config_mod.load()
    url = args.url or f"http://127.0.0.1:{cfg.server.port}"
    body = " ".join(args.body)
    print(f"-> {body}")
    for text in asyncio.run(send(url, args.phone, body, cfg, args.public_url, args.simulate)):
        print(f"<- {text}")
    if args.watch > 0:
        asyncio.run(watch(url, args.phone, args.watch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
