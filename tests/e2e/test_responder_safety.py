"""The responder page tried on a phone as a hurried responder would (issue 19): the accidental
resolve, the silent offer, the stale message, signing out mid-job. Both languages; axe-core on
every state reached.
"""
from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.a11y import assert_accessible
from tests.e2e.helpers import NEARBY, OpenPage, ask_for_help, expect, go_on_duty, login

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

PHONE = {"width": 390, "height": 844}
LOCALES = {"en": "en-US", "zh": "zh-CN"}
# records what the page asks of the Screen Wake Lock API (headless Chromium has no screen to keep on)
WAKE_LOCK_SPY = """(() => {
  window.__locks = [];
  const fake = {request: async (type) => {
    window.__locks.push(type);
    const l = new EventTarget();
    l.release = async () => { window.__locks.push('released'); };
    return l;
  }};
  Object.defineProperty(Navigator.prototype, 'wakeLock', {get: () => fake, configurable: true});
})();"""


@pytest.mark.config(dispatch_offer_timeout_s=60)
@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_only_the_next_step_and_resolve_asks_first(node: Any, open_page: OpenPage, lang: str) -> None:
    await node.add_user("medic1", "responder", name="Li Wei", skills=["medical"])
    resp = await open_page(node, "/responder", locale=LOCALES[lang], position=NEARBY, viewport=PHONE,
                           init=WAKE_LOCK_SPY)
    await login(resp, "medic1")
    await assert_accessible(resp, f"responder off duty {lang}")
    await go_on_duty(resp)
    assert "screen" in await resp.evaluate("window.__locks")  # the screen stays on while on duty

    res = await open_page(node, "/", locale=LOCALES[lang])
    await ask_for_help(res, "medical")
    banner = resp.get_by_test_id("alert-banner")
    await expect(banner).to_be_visible()  # seen ...
    await expect(banner).to_have_attribute("data-chimes", "1")  # ... and heard
    await assert_accessible(resp, f"responder offer {lang}")
    await resp.get_by_test_id("accept").click()
    await expect(banner).to_be_hidden()

    status = resp.get_by_test_id("incident-status")
    rstatus = res.get_by_test_id("incident-status")
    await expect(status).to_have_attribute("data-status", "assigned")
    # right after accepting, "Resolved" is not there to be tapped; only the next step is
    await expect(resp.get_by_test_id("progress-resolved")).to_be_hidden()
    await expect(resp.get_by_test_id("progress-on_scene")).to_be_hidden()
    await assert_accessible(resp, f"responder job {lang}")
    await resp.get_by_test_id("progress-en_route").click()
    await expect(status).to_have_attribute("data-status", "en_route")
    await expect(resp.get_by_test_id("progress-en_route")).to_be_hidden()
    await expect(resp.get_by_test_id("progress-resolved")).to_be_hidden()
    await resp.get_by_test_id("progress-on_scene").click()
    await expect(status).to_have_attribute("data-status", "on_scene")

    # resolve asks; "not yet" keeps the job open
    await resp.get_by_test_id("progress-resolved").click()
    await expect(resp.get_by_test_id("resolve-confirm")).to_be_visible()
    await assert_accessible(resp, f"responder resolve question {lang}")
    await resp.get_by_test_id("resolve-keep").click()
    await resp.wait_for_timeout(300)
    await expect(rstatus).to_have_attribute("data-status", "on_scene")
    await resp.get_by_test_id("progress-resolved").click()
    await resp.get_by_test_id("resolve-confirm").click()
    await expect(rstatus).to_have_attribute("data-status", "resolved")

    await resp.get_by_test_id("duty-toggle").click()
    await expect(resp.get_by_test_id("duty-toggle")).to_have_attribute("aria-pressed", "false")
    assert (await resp.evaluate("window.__locks"))[-1] == "released"


@pytest.mark.config(dispatch_offer_timeout_s=4, dispatch_max_offers=1)
async def test_stale_message_cleared_and_true_wording(node: Any, open_page: OpenPage) -> None:
    await node.add_user("medic1", "responder", name="Li Wei", skills=["medical"])
    resp = await open_page(node, "/responder", position=NEARBY, viewport=PHONE)
    await login(resp, "medic1")
    await go_on_duty(resp)

    res = await open_page(node, "/")
    await ask_for_help(res, "medical")
    await expect(resp.get_by_test_id("offer")).to_be_visible()
    # unanswered: it escalates; the page does not claim someone else took it
    await expect(res.get_by_test_id("incident-status")).to_have_attribute("data-status", "escalated", timeout=15000)
    msg = resp.locator("#msg")
    await expect(msg).to_contain_text("ran out")
    await expect(msg).not_to_contain_text("someone else")

    res2 = await open_page(node, "/")
    await ask_for_help(res2, "medical")
    await expect(resp.get_by_test_id("offer")).to_be_visible()
    await expect(msg).to_be_hidden()  # the old message is not left under the new call
    banner = resp.get_by_test_id("alert-banner")
    await expect(banner).to_be_visible()
    # the banner and message sit at the top of the page, above the offer card
    top = await banner.bounding_box()
    offer = await resp.get_by_test_id("offer").bounding_box()
    assert top and offer and top["y"] < offer["y"]


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_dispatcher_assignment_is_announced_and_sign_out_mid_job_warns(
        node: Any, open_page: OpenPage, lang: str) -> None:
    await node.add_user("fire1", "responder", name="Chen Jie", skills=["fire"])
    await node.add_user("disp", "dispatcher", name="Wu Fang")
    resp = await open_page(node, "/responder", locale=LOCALES[lang], position=NEARBY, viewport=PHONE)
    await login(resp, "fire1")
    await go_on_duty(resp)
    res = await open_page(node, "/", locale=LOCALES[lang])
    ref = await ask_for_help(res, "medical")  # nobody has the skill: escalated
    disp = await open_page(node, "/dispatch", locale=LOCALES[lang])
    await login(disp, "disp")
    row = disp.locator(f'[data-testid=incident-row]:has-text("{ref}")')
    await expect(row.get_by_test_id("assign")).to_be_enabled()
    await row.get_by_test_id("assign").click()

    banner = resp.get_by_test_id("alert-banner")
    await expect(banner).to_contain_text(ref)
    await expect(banner).to_have_attribute("data-chimes", "1")
    await expect(resp.get_by_test_id("incident-status")).to_have_attribute("data-status", "assigned")

    # signing out mid-job warns; staying keeps the responder signed in and on the job
    await resp.locator("#logout").click()
    warning = resp.get_by_test_id("logout-warning")
    await expect(warning).to_be_visible()
    await assert_accessible(resp, f"responder sign-out warning {lang}")
    await resp.get_by_test_id("logout-stay").click()
    await expect(warning).to_be_hidden()
    await expect(resp.get_by_test_id("incident-status")).to_have_attribute("data-status", "assigned")
    await expect(resp.get_by_test_id("username")).to_be_hidden()
    await resp.locator("#logout").click()
    await resp.get_by_test_id("logout-anyway").click()
    await expect(resp.get_by_test_id("username")).to_be_visible()
    await expect(res.get_by_test_id("incident-status")).to_have_attribute("data-status", re.compile(r"\w+"))
