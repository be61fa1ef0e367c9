"""Phone login by one-time code (contract §2): the code goes out by SMS through the outbox."""
from __future__ import annotations

import re
from typing import Any

from testkit.client import http
from testkit.runtime import until
from testkit.stack import query as q
from testkit.twilio import sms_in

PHONE = "+8613800138000"


async def request_code(app: Any, fake: Any, phone: str = PHONE, as_written: str | None = None) -> str:
    before = len(fake.to(phone))
    st, body = await http("POST", app.base + "/api/auth/otp/request", json={"phone": as_written or phone})
    assert st == 202, (st, body)
    msgs = await until(lambda: fake.to(phone)[before:], what="code SMS")
    m = re.search(r"\b(\d{6})\b", msgs[-1]["Body"])
    assert m, msgs[-1]
    return m.group(1)


async def verify(app: Any, code: str, phone: str = PHONE, token: str | None = None) -> tuple[int, Any]:
    return await http("POST", app.base + "/api/auth/otp/verify", token=token, json={"phone": phone, "code": code})


async def allow_next_request(app: Any, phone: str = PHONE) -> None:
    await q(app, "UPDATE sms_otp SET last_sent_at = now() - interval '31 seconds' WHERE phone = $1", phone)


async def test_request_and_verify(shl, fake):
    code = await request_code(shl, fake, as_written="138 0013 8000")     # national form, normalised
    body = fake.to(PHONE)[-1]["Body"]
    assert "验证码" in body and len(body) <= 70                             # +86: Chinese, one UCS-2 segment
    (row,) = await q(shl, "SELECT code_hash FROM sms_otp WHERE phone = $1", PHONE)
    assert code not in row["code_hash"]                                    # stored as an HMAC only
    wrong = f"{(int(code) + 1) % 1000000:06d}"
    st, err = await verify(shl, wrong)
    assert st == 401 and err["error"]["code"] == "unauthorized"
    st, got = await verify(shl, code)
    assert st == 200 and got["account"]["role"] == "resident" and got["account"]["verified"] is True
    c = await shl.connect(got["token"])
    assert c.account_id == got["account"]["id"]
    st, _ = await verify(shl, code)                                        # single use
    assert st == 401


async def test_expired_code_is_refused(shl, fake):
    code = await request_code(shl, fake)
    await q(shl, "UPDATE sms_otp SET expires_at = now() - interval '1 second' WHERE phone = $1", PHONE)
    st, _ = await verify(shl, code)
    assert st == 401


async def test_attempts_are_limited(shl, fake):
    code = await request_code(shl, fake)
    wrong = f"{(int(code) + 7) % 1000000:06d}"
    for _ in range(5):
        st, _ = await verify(shl, wrong)
        assert st == 401
    st, _ = await verify(shl, code)
    assert st == 401                                                       # the code is dead after 5 misses
    await allow_next_request(shl)
    code = await request_code(shl, fake)                                   # a new code works again
    st, _ = await verify(shl, code)
    assert st == 200


async def test_requests_are_rate_limited_per_phone(shl, fake):
    await request_code(shl, fake)
    st, body = await http("POST", shl.base + "/api/auth/otp/request", json={"phone": PHONE})
    assert st == 429 and body["error"]["code"] == "rate_limited"
    for _ in range(4):
        await allow_next_request(shl)
        await request_code(shl, fake)
    await allow_next_request(shl)
    st, _ = await http("POST", shl.base + "/api/auth/otp/request", json={"phone": PHONE})
    assert st == 429                                                       # 5 an hour
    st, _ = await http("POST", shl.base + "/api/auth/otp/request", json={"phone": "+8613800138001"})
    assert st == 202                                                       # another phone is not affected
    st, _ = await http("POST", shl.base + "/api/auth/otp/request", json={"phone": "12"})
    assert st == 400


async def test_verified_account_is_the_sms_senders(shl, fake):
    await sms_in(shl.base, PHONE, "HELP water everywhere")
    (inc,) = await q(shl, "SELECT id, reporter_id FROM incidents")
    code = await request_code(shl, fake)
    st, got = await verify(shl, code)
    assert st == 200 and got["account"]["id"] == str(inc["reporter_id"])
    c = await shl.connect(got["token"])
    assert [i["id"] for i in c.welcome["open_incidents"]] == [str(inc["id"])]
    assert len(await q(shl, "SELECT 1 FROM accounts WHERE phone = $1", PHONE)) == 1

    # and the other way round: verified first, then texting
    other = "+8613900139000"        # (codes go only to sms.allowed_countries)
    code = await request_code(shl, fake, other)
    st, got = await verify(shl, code, other)
    await sms_in(shl.base, other, "HELP")
    rows = await q(shl, "SELECT i.reporter_id FROM incidents i JOIN accounts a ON a.id = i.reporter_id"
                        " WHERE a.phone = $1", other)
    assert [str(r["reporter_id"]) for r in rows] == [got["account"]["id"]]


async def test_device_account_takes_the_phone(shl, fake):
    device_token = await shl.device_token("device-otp-1")
    dev = await shl.connect(device_token)
    code = await request_code(shl, fake)
    st, got = await verify(shl, code, token=device_token)
    assert st == 200 and got["account"]["id"] == dev.account_id and got["account"]["verified"]
    # a device id alone never reaches a verified account (issue 20): the device gets a fresh unverified
    # one, and the verified account is reached again by phone code
    st, again = await http("POST", shl.base + "/api/auth/device", json={"device_id": "device-otp-1"})
    assert st == 200 and again["account"]["id"] != dev.account_id and not again["account"]["verified"]


async def test_staff_phone_cannot_log_in_by_code(shl, fake):
    await shl.add_user("medic-otp", "responder", phone=PHONE)
    code = await request_code(shl, fake)
    st, body = await verify(shl, code)
    assert st == 403 and body["error"]["code"] == "forbidden"


async def test_codes_are_limited_per_address_across_phones(shl, fake):
    """Guessing codes for many phones from one address stops after 50 failures in 15 minutes."""
    for i in range(50):
        st, _ = await verify(shl, "000000", phone=f"+86138001{i:05d}")
        assert st == 401
    await request_code(shl, fake)   # a real code for PHONE...
    st, body = await verify(shl, "123456")
    assert st == 429 and body["error"]["code"] == "rate_limited"   # ...but this address is blocked for now
    for i in range(20):
        st, _ = await http("POST", shl.base + "/api/auth/otp/request", json={"phone": f"+86139001{i:05d}"})
        assert st in (202, 429)
    st, body = await http("POST", shl.base + "/api/auth/otp/request", json={"phone": "+8613900299999"})
    assert st == 429
