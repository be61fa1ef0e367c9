"""The console rings (issue 12, contract §7): two dispatchers on two consoles. An escalation rings on both;
one says "I'm on it" and both go quiet, the other showing who took it; a mute shows its time left; a reload
keeps acknowledgements (the server's) and the mute (the browser's); a new priority-1 incident rings; a page
the browser keeps silent until a click says so. Both languages; axe on every state; screenshots of the
ringing console on a phone and a desktop (/tmp/shots/alarm-ringing-*).
"""
from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from testkit.geo import near
from tests.e2e.a11y import assert_accessible
from tests.e2e.helpers import SHOTS, OpenPage, expect, login
from tests.e2e.test_screens import both_sizes

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
WORDS = {
    "en": {"locale": "en-US", "zhang": "Zhang Min", "li": "Li Na", "taken": "Taken by Zhang Min",
           "ack": "I’m on it", "left": re.compile(r"Sound off: [45]:\d\d left"), "new": "new P1",
           "elsewhere": "taken by Zhang Min"},
    "zh": {"locale": "zh-CN", "zhang": "张敏", "li": "李娜", "taken": "张敏 已接手",
           "ack": "我来处理", "left": re.compile(r"已静音，剩余 [45]:\d\d"), "new": "新 P1",
           "elsewhere": "已由 张敏 接手"},
}


async def report(node: Any, category: str) -> dict[str, Any]:
    resident = await node.resident()
    inc: dict[str, Any] = (await resident.ok("help.request", request_id=uuid.uuid4().hex, category=category,
                                             **near(0)))["incident"]
    return inc


def alarm_item(page: Any, inc: dict[str, Any]) -> Any:
    return page.locator(f'[data-testid=alarm-incident][data-incident-id="{inc["id"]}"]')


def row(page: Any, inc: dict[str, Any]) -> Any:
    return page.locator(f'[data-testid=incident-row][data-incident-id="{inc["id"]}"]')


async def beeps(page: Any) -> int:
    return int(await page.get_by_test_id("alarm").get_attribute("data-beeps") or 0)


@pytest.mark.config(dispatch_offer_timeout_s=120, dispatch_supervisor_after_s=0)
@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_two_consoles_ring_one_takes_it_both_go_quiet(node: Any, open_page: OpenPage, lang: str) -> None:
    w = WORDS[lang]
    await node.add_user("zhang", "dispatcher", name=w["zhang"])
    await node.add_user("li", "dispatcher", name=w["li"])
    a = await open_page(node, "/dispatch", locale=w["locale"], viewport=DESKTOP)
    await login(a, "zhang")
    b = await open_page(node, "/dispatch", locale=w["locale"], viewport=PHONE)
    await login(b, "li")
    for p in (a, b):
        await expect(p.get_by_test_id("alarm")).to_have_attribute("data-state", "quiet")
        await expect(p.get_by_test_id("alarm-ack")).to_be_hidden()
    await assert_accessible(a, f"alarm quiet {lang}")

    # an escalation (police: nobody on duty has the skill) rings on both consoles
    esc = await report(node, "police")
    assert esc["status"] == "escalated"
    for p in (a, b):
        await expect(p.get_by_test_id("alarm")).to_have_attribute("data-state", "ringing")
        await expect(alarm_item(p, esc)).to_contain_text(esc["ref_no"])
        await expect(p.get_by_test_id("alarm-ack")).to_contain_text(f'{w["ack"]}')
        await expect(p.get_by_test_id("alarm-ack")).to_contain_text(esc["ref_no"])
    # the sign-in click let the page make sound: the tone repeats
    await expect(a.get_by_test_id("alarm")).to_have_attribute("data-sound", "on")
    await expect(a.get_by_test_id("alarm")).to_have_attribute("data-beeps", re.compile(r"^[2-9]|\d\d"), timeout=10000)
    await both_sizes(a, lang, "alarm-ringing")
    await a.set_viewport_size(DESKTOP)

    # mute on B: the sound stops, the time left is shown plainly; the list still shows what rings
    await b.get_by_test_id("alarm-mute").click()
    await expect(b.get_by_test_id("alarm")).to_have_attribute("data-state", "muted")
    await expect(b.get_by_test_id("alarm-mute-left")).to_have_text(w["left"])
    await expect(b.get_by_test_id("alarm-mute")).to_have_attribute("aria-pressed", "true")
    await expect(alarm_item(b, esc)).to_be_visible()
    await assert_accessible(b, f"alarm muted {lang}")
    await b.screenshot(path=f"{SHOTS}/alarm-muted-phone-{lang}.png")
    # a reload keeps the mute (the browser's) and what rings (the server's)
    await b.reload()
    await expect(b.locator(".conn")).to_have_attribute("data-state", "live")
    await expect(b.get_by_test_id("alarm")).to_have_attribute("data-state", "muted")
    await expect(b.get_by_test_id("alarm-mute-left")).to_have_text(w["left"])
    await expect(alarm_item(b, esc)).to_be_visible()
    await b.locator("h1").click()       # a click lets the reloaded page make sound
    await expect(b.get_by_test_id("alarm")).to_have_attribute("data-sound", "on")
    assert await beeps(b) == 0          # muted from the start: this page has not rung once

    # A: "I'm on it" takes it; quiet on A, and on B, which says who took it
    await a.get_by_test_id("alarm-ack").click()
    await expect(a.get_by_test_id("alarm")).to_have_attribute("data-state", "quiet")
    await expect(row(a, esc).get_by_test_id("taken-by")).to_have_text(w["taken"])
    await expect(a.locator("#d-ref")).to_have_text(esc["ref_no"])       # opened, to act on it
    await expect(a.locator("#timeline")).to_contain_text(w["zhang"])
    await expect(b.get_by_test_id("alarm")).to_have_attribute("data-state", "quiet")
    await expect(alarm_item(b, esc)).to_have_count(0)
    await expect(row(b, esc).get_by_test_id("taken-by")).to_have_text(w["taken"])
    await expect(b.locator("#alarm-note")).to_contain_text(w["elsewhere"])
    await expect(b.get_by_test_id("alarm-mute-left")).to_be_visible()   # the mute still runs, nothing rings
    for p, where in ((a, "desktop"), (b, "phone")):
        await assert_accessible(p, f"alarm taken {where} {lang}")
        await p.screenshot(path=f"{SHOTS}/alarm-taken-{where}-{lang}.png")
    # a reload keeps it quiet: acknowledgements come from the server
    await a.reload()
    await expect(a.locator(".conn")).to_have_attribute("data-state", "live")
    await expect(row(a, esc).get_by_test_id("taken-by")).to_have_text(w["taken"])
    await expect(a.get_by_test_id("alarm")).to_have_attribute("data-state", "quiet")

    # a new priority-1 incident (offered to a medic, not escalated) rings; B, muted, shows it muted
    medic = await node.user("responder", skills=["medical"])
    await medic.ok("duty.start", **near(0.001))
    p1 = await report(node, "medical")
    assert p1["status"] == "offered" and p1["priority"] == 1
    await expect(a.get_by_test_id("alarm")).to_have_attribute("data-state", "ringing")
    await expect(alarm_item(a, p1)).to_contain_text(w["new"])
    await expect(b.get_by_test_id("alarm")).to_have_attribute("data-state", "muted")
    # sound back on at B: it rings
    await b.get_by_test_id("alarm-mute").click()
    await expect(b.get_by_test_id("alarm")).to_have_attribute("data-state", "ringing")
    await expect(b.get_by_test_id("alarm-mute-left")).to_be_hidden()
    # B takes the selected one rather than the first: select it in the list, the button names it
    await alarm_item(b, p1).click()
    await expect(b.get_by_test_id("alarm-ack")).to_contain_text(p1["ref_no"])
    await b.get_by_test_id("alarm-ack").click()
    for p in (a, b):
        await expect(p.get_by_test_id("alarm")).to_have_attribute("data-state", "quiet")
        await expect(row(p, p1).get_by_test_id("taken-by")).to_contain_text(w["li"])
    await assert_accessible(a, f"alarm new p1 taken {lang}")


# Headless Chromium plays sound without a user gesture whatever --autoplay-policy says, so the policy of a
# desktop browser is put back in the page: an AudioContext stays suspended until resumed during a user
# activation (a click or a key), as Chromium's autoplay policy has it.
AUTOPLAY_POLICY = """(() => {
  const Real = window.AudioContext;
  class Gated extends Real {
    constructor(...args) { super(...args); this.allowed = false; }
    get state() { return this.allowed ? super.state : 'suspended'; }
    resume() {
      if (!navigator.userActivation.isActive) return new Promise(() => {});   // pending, as in Chromium
      this.allowed = true;
      return super.resume();
    }
  }
  window.AudioContext = Gated;
})();"""


@pytest.mark.config(dispatch_supervisor_after_s=0)
async def test_a_page_the_browser_keeps_silent_says_so_until_a_click(node: Any, open_page: OpenPage) -> None:
    """No sound before a user gesture: a console opened with its saved session (a browser restarted) has had
    no click; it shows "click to enable sound", and one click lets the tone play."""
    await node.add_user("zhang", "dispatcher", name="Zhang Min")
    token = await node.login("zhang")
    await report(node, "police")
    session = json.dumps({"token": token, "account": {"role": "dispatcher", "name": "Zhang Min"}})
    saved = f"localStorage.setItem('helpline.dispatch.session', {json.dumps(session)});"
    page = await open_page(node, "/dispatch", viewport=DESKTOP, init=AUTOPLAY_POLICY + saved)
    await expect(page.locator(".conn")).to_have_attribute("data-state", "live")
    alarm = page.get_by_test_id("alarm")
    await expect(alarm).to_have_attribute("data-state", "ringing")
    await expect(alarm).to_have_attribute("data-sound", "blocked")
    await expect(page.get_by_test_id("alarm-sound")).to_be_visible()
    assert await beeps(page) == 0
    await assert_accessible(page, "alarm sound blocked")
    await page.get_by_test_id("alarm-sound").click()
    await expect(alarm).to_have_attribute("data-sound", "on")
    await expect(page.get_by_test_id("alarm-sound")).to_be_hidden()
    await expect(alarm).to_have_attribute("data-beeps", re.compile(r"^[1-9]"))
