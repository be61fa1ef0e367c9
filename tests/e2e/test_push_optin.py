"""The Web Push opt-in of the staff pages (issue 12), in headless Chromium, both languages, axe on
each state.

Playwright's browser contexts are incognito-like, and Chromium has no Push API there ("Chrome
currently does not support the Push API in incognito mode"); nor could it reach a real push
service from these machines. So `PushManager.subscribe` is the one thing faked (in page JS, before
the page's own scripts): it hands back a subscription of the stand-in push service, with keys the
test made, and records the applicationServerKey the page asked with. Everything else is real: the
service worker registration, the permission (granted to the context), GET /api/push/key, the POST,
the server's offer push (decrypted by the stand-in), the service worker's notification (a push
delivered to it through the DevTools protocol), the opt-out and the sign-out.
"""
from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from testkit.client import http
from testkit.geo import near
from testkit.stack import query
from testkit.webpush import FakePushService
from tests.e2e.a11y import assert_accessible
from tests.e2e.helpers import NEARBY, OpenPage, expect, go_on_duty, login

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180), pytest.mark.config(push_allow_http_endpoints="true")]

LOCALES = {"en": "en-US", "zh": "zh-CN"}
TEXT = {"en": ("Get alerts when the screen is off", "Stop alerts on this device", "Someone needs help"),
        "zh": ("锁屏时也提醒我", "关闭本机提醒", "有人需要帮助")}

FAKE_SUBSCRIBE = """(() => {
  const SUB = %s;
  let current = null;
  window.__asked = [];
  const make = (key) => ({
    endpoint: SUB.endpoint,
    options: { applicationServerKey: key },
    toJSON: () => SUB,
    unsubscribe: async () => { current = null; window.__asked.push('unsubscribe'); return true; },
  });
  PushManager.prototype.subscribe = async function (opts) {
    const key = new Uint8Array(opts.applicationServerKey);
    window.__asked.push({ userVisibleOnly: opts.userVisibleOnly, key: btoa(String.fromCharCode(...key)) });
    current = make(key.buffer);
    return current;
  };
  PushManager.prototype.getSubscription = async function () { return current; };
})();"""


async def rows(node: Any) -> list[tuple[str, str]]:
    return [(r["endpoint"], r["lang"]) for r in await query(node, "SELECT endpoint, lang FROM push_subscriptions")]


async def eventually(check: Any, what: str) -> None:
    for _ in range(100):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(what)


async def notifications(page: Any) -> list[dict[str, Any]]:
    shown: list[dict[str, Any]] = await page.evaluate("""async () => {
        const reg = await navigator.serviceWorker.ready;
        return (await reg.getNotifications()).map((n) => ({title: n.title, body: n.body, tag: n.tag, data: n.data}));
    }""")
    return shown


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_the_responder_opts_in_gets_the_offer_pushed_and_opts_out(node: Any, open_page: OpenPage,
                                                                       pushsvc: FakePushService, lang: str) -> None:
    turn_on, turn_off, title = TEXT[lang]
    await node.add_user("medic1", "responder", name="Li Wei", skills=["medical"])
    sub = pushsvc.subscriber()
    page = await open_page(node, "/responder", locale=LOCALES[lang], position=NEARBY,
                           init=FAKE_SUBSCRIBE % json.dumps(sub.json()))
    await login(page, "medic1")
    card, toggle = page.get_by_test_id("push-alerts"), page.get_by_test_id("push-toggle")
    # notifications blocked (what a context without the permission says): told how, no button to press
    await expect(card).to_have_attribute("data-state", "denied")
    await expect(toggle).to_be_hidden()
    await assert_accessible(page, f"push denied {lang}")

    await page.context.grant_permissions(["geolocation", "notifications"], origin=node.base)
    await page.reload()
    await expect(page.locator(".conn")).to_have_attribute("data-state", "live")
    await expect(card).to_have_attribute("data-state", "off")
    await expect(toggle).to_have_text(turn_on)
    await assert_accessible(page, f"push off {lang}")
    await toggle.click()
    await expect(card).to_have_attribute("data-state", "on")
    await expect(toggle).to_have_text(turn_off)
    await expect(toggle).to_have_attribute("aria-pressed", "true")
    await assert_accessible(page, f"push on {lang}")
    st, body = await http("GET", node.base + "/api/push/key")
    key = base64.urlsafe_b64decode(body["public_key"] + "==")
    assert await page.evaluate("window.__asked") == [{"userVisibleOnly": True,
                                                      "key": base64.b64encode(key).decode()}]
    assert await rows(node) == [(sub.endpoint, lang)]

    # an offer with the page's socket still open goes by push too (the phone may be in a pocket)
    await go_on_duty(page)
    st, _ = await http("POST", node.base + "/api/help", token=await node.device_token(),
                       json={"request_id": "r1", "category": "medical", **near(0)})
    assert st == 201
    got = await sub.next()
    assert got["payload"]["type"] == "offer" and got["payload"]["title"].startswith(title)

    # the service worker shows what the server wrote, as a push service would deliver it
    cdp = await page.context.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: registrations.extend(e["registrations"]))
    await cdp.send("ServiceWorker.enable")

    def ours() -> list[str]:
        """The registrations of this page's origin: the browser also reports other tests' pages, live or gone,
        and an earlier test's node may have had this very port (the same origin), so which one is this page's
        cannot be told from the report: the push is delivered to each (to another, it shows nothing here)."""
        ids = [r["registrationId"] for r in registrations
               if r["scopeURL"].startswith(node.base + "/") and not r.get("isDeleted")]
        return list(dict.fromkeys(ids))
    await page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    await eventually(lambda: asyncio.sleep(0, bool(ours())), "no service worker registration seen")

    async def shown() -> bool:
        return any(n["tag"] == got["payload"]["tag"] for n in await notifications(page))

    delivered: dict[str, int] = {}

    async def deliver_until_shown() -> bool:
        """Deliver to each registration of the origin not yet given the push, and again to all every
        second: this page's registration can be reported after a stale one (or the first delivery can reach
        a worker still starting); a repeat replaces the notification (same tag), so it shows once."""
        if await shown():
            return True
        for registration in ours():
            tries = delivered.get(registration, 0)
            delivered[registration] = tries + 1
            if tries % 10:
                continue
            try:
                await cdp.send("ServiceWorker.deliverPushMessage", {
                    "origin": node.base, "registrationId": registration,
                    "data": json.dumps(got["payload"], ensure_ascii=False)})
            except Exception:  # a registration gone since it was reported: the others are tried
                continue
        return await shown()
    await eventually(deliver_until_shown, "the service worker showed no notification")
    [n] = [n for n in await notifications(page) if n["tag"] == got["payload"]["tag"]]
    assert n["title"] == got["payload"]["title"] and n["body"] == got["payload"]["body"]
    assert n["tag"] == got["payload"]["tag"] and n["data"]["url"] == got["payload"]["url"]

    await toggle.click()
    await expect(card).to_have_attribute("data-state", "off")
    await expect(toggle).to_have_text(turn_on)
    assert await rows(node) == []


async def test_signing_out_drops_the_subscription(node: Any, open_page: OpenPage, pushsvc: FakePushService) -> None:
    await node.add_user("disp1", "dispatcher", name="Zhang Min")
    sub = pushsvc.subscriber()
    page = await open_page(node, "/dispatch", init=FAKE_SUBSCRIBE % json.dumps(sub.json()))
    await page.context.grant_permissions(["geolocation", "notifications"], origin=node.base)
    await login(page, "disp1")
    await page.get_by_test_id("push-toggle").click()
    await expect(page.get_by_test_id("push-alerts")).to_have_attribute("data-state", "on")
    await assert_accessible(page, "dispatch push on")
    assert await rows(node) == [(sub.endpoint, "en")]

    await page.locator("#logout").click()
    await expect(page.get_by_test_id("login")).to_be_visible()

    async def dropped() -> bool:
        return await rows(node) == []
    await eventually(dropped, "the subscription outlived the sign-out")
    assert "unsubscribe" in await page.evaluate("window.__asked")
