"""Issue 20, the attack review's classes again with variations it did not try: the SMS pump through
login codes (another route to the city's number), from one address and from its network."""
from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from testkit.nodes import InProcess


async def otp_request(hl: InProcess, phone: str, source: str = "127.0.0.1") -> tuple[int, Any]:
    conn = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=conn) as s:
        async with s.post(hl.base + "/api/auth/otp/request", json={"phone": phone}) as r:
            return r.status, await r.json()


async def texts(hl: InProcess) -> int:
    import asyncpg

    conn = await asyncpg.connect(hl.database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM sms_outbox"))
    finally:
        await conn.close()


@pytest.mark.parametrize("phone", ["+447700900123", "+88216000000", "+5352000000", "+12025550143"])
async def test_login_codes_go_only_to_the_allowed_countries(hl, phone):
    st, body = await otp_request(hl, phone)
    assert st == 400 and body["error"]["code"] == "bad_request" and "phone" in body["error"]["message"], body
    assert await texts(hl) == 0
    st, body = await otp_request(hl, "+8613800138000")       # a number of the service's own country
    assert st == 202, body
    assert await texts(hl) == 1


async def test_login_codes_are_limited_per_network_as_well_as_per_address(hl):
    sent = 0
    refused = []
    for i in range(4):                                       # four addresses of one /24, 20 codes each
        for j in range(20):
            st, body = await otp_request(hl, f"+86138{i:02d}{j:02d}{1000:04d}", source=f"127.0.0.{i + 2}")
            if st == 202:
                sent += 1
            else:
                refused.append((st, body["error"]["code"]))
    assert sent == 60 and refused == [(429, "rate_limited")] * 20
    assert await texts(hl) == 60
    st, _ = await otp_request(hl, "+8613900001000", source="127.0.1.2")     # the next network is its own
    assert st == 202
