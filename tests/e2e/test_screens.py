"""Every page in English and Chinese: no untranslated string keys, the right language, no axe-core
violation, and screenshots in /tmp/shots (outside the repository) for a person to look at, on a
390x844 phone and a 1280x800 desktop."""
from __future__ import annotations

import os
import re
from typing import Any

import pytest

from tests.e2e.a11y import assert_accessible
from tests.e2e.helpers import CITY, NEARBY, SHOTS, OpenPage, ask_for_help, expect, go_on_duty, login

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
# a dictionary key left on screen looks like "dispatch.colAge" or "status.en_route"
RAW_KEY = re.compile(r"\b(?:common|conn|age|dist|error|category|skill|status|duty|channel|rstatus|resident|login|"
                     r"responder|dispatch|disposition|timeline|event|field|reason|by|mediate|case|casecat|outcome|newcall)\.[a-z_]\w*")
CJK = re.compile(r"[\u4e00-\u9fff]")


async def check(page: Any, lang: str, name: str) -> None:
    text = await page.evaluate("document.body.innerText")
    assert not RAW_KEY.findall(text), (name, RAW_KEY.findall(text))
    assert await page.evaluate("document.documentElement.lang") == ("zh-CN" if lang == "zh" else "en")
    if lang == "zh":
        assert CJK.search(text), name
    await assert_accessible(page, f"{name}-{lang}")
    os.makedirs(SHOTS, exist_ok=True)
    await page.screenshot(path=f"{SHOTS}/{name}-{lang}.png", full_page=True)


async def both_sizes(page: Any, lang: str, name: str) -> None:
    """The page as it is now, on the phone and on the desktop."""
    for size, suffix in ((PHONE, "phone"), (DESKTOP, "desktop")):
        await page.set_viewport_size(size)
        await page.wait_for_timeout(400)  # let the layout (and the map) settle
        width = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], (name, suffix, width)  # no sideways scroll
        await check(page, lang, f"{name}-{suffix}")


@pytest.mark.config(dispatch_offer_timeout_s=60)
@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_pages_in_both_languages(node: Any, open_page: OpenPage, lang: str) -> None:
    locale = "zh-CN" if lang == "zh" else "en-US"
    await node.add_user("medic", "responder", name="李伟" if lang == "zh" else "Li Wei", skills=["medical"])
    await node.add_user("fire", "responder", name="陈杰" if lang == "zh" else "Chen Jie", skills=["fire"])
    await node.add_user("disp", "dispatcher", name="张敏" if lang == "zh" else "Zhang Min")
    await node.add_user("med", "mediator", name="王芳" if lang == "zh" else "Wang Fang")

    res = await open_page(node, "/", locale=locale, viewport=PHONE)
    await check(res, lang, "resident-start")

    disp = await open_page(node, "/dispatch", locale=locale)
    await check(disp, lang, "dispatch-login")
    await login(disp, "disp")

    resp = await open_page(node, "/responder", locale=locale, position=NEARBY, viewport=PHONE)
    await check(resp, lang, "responder-login")
    await login(resp, "medic")
    await go_on_duty(resp)
    other = await open_page(node, "/responder", locale=locale, position=NEARBY, viewport=PHONE)
    await login(other, "fire")
    await go_on_duty(other)

    # one incident offered to the medic, one escalated (nobody with the police skill)
    note = "第三层楼梯间，老人摔倒" if lang == "zh" else "Stairwell, 3rd floor. Elderly man fell."
    await ask_for_help(res, "medical", note=note)
    await expect(resp.get_by_test_id("offer")).to_be_visible()
    await check(resp, lang, "responder-offer")
    await check(res, lang, "resident-waiting")
    res2 = await open_page(node, "/", locale=locale, position={**CITY, "latitude": CITY["latitude"] - 0.01})
    await ask_for_help(res2, "police")
    await expect(res2.get_by_test_id("incident-status")).to_have_attribute("data-status", "escalated")
    await check(res2, lang, "resident-escalated-desktop")

    await resp.get_by_test_id("accept").click()
    await expect(res.get_by_test_id("incident-status")).to_have_attribute("data-status", "assigned")
    await resp.get_by_test_id("progress-en_route").click()
    await expect(res.get_by_test_id("incident-status")).to_have_attribute("data-status", "en_route")
    await check(res, lang, "resident-en-route")
    await check(resp, lang, "responder-job")

    await expect(disp.get_by_test_id("incident-row")).to_have_count(2)
    await disp.locator("[data-testid=incident-row] button.ref").first.click()
    await expect(disp.locator("#timeline li").first).to_be_visible()
    await disp.wait_for_timeout(500)  # let the map settle
    await check(disp, lang, "dispatch-console")
    await disp.set_viewport_size(PHONE)
    await disp.wait_for_timeout(300)
    await check(disp, lang, "dispatch-console-phone")

    med = await open_page(node, "/mediate", locale=locale)
    await check(med, lang, "mediate-login")
    await login(med, "med")
    # the case list, or (before mediation is served) a plain message saying it could not load
    await expect(med.locator("#cases-empty, #cases-msg, [data-testid=case-row]").first).to_be_visible()
    await check(med, lang, "mediate-cases")

    # every page, both sizes
    for page, name in ((res, "all-resident-en-route"), (res2, "all-resident-escalated"), (resp, "all-responder-job"),
                       (other, "all-responder-available"), (disp, "all-dispatch"), (med, "all-mediate-cases")):
        await both_sizes(page, lang, name)
    start = await open_page(node, "/", locale=locale)
    await both_sizes(start, lang, "all-resident-start")
    out = await open_page(node, "/responder", locale=locale)
    await both_sizes(out, lang, "all-responder-login")
    mstart = await open_page(node, "/mediate", locale=locale)
    await both_sizes(mstart, lang, "all-mediate-start")


async def test_language_switch_is_live_and_remembered(node: Any, open_page: OpenPage) -> None:
    res = await open_page(node, "/", locale="en-US")
    help_button = res.get_by_test_id("help-button")
    await expect(help_button).to_contain_text("HELP")
    await res.locator(".lang-switch").click()
    await expect(help_button).to_contain_text("求助")
    await expect(res.locator(".conn")).to_have_text("实时")
    assert await res.evaluate("document.documentElement.lang") == "zh-CN"
    await res.reload()
    await expect(help_button).to_contain_text("求助")  # the choice outlives the browser's language
    await res.locator(".lang-switch").click()
    await expect(help_button).to_contain_text("HELP")


async def test_help_without_a_position_still_goes_out_and_says_so(node: Any, open_page: OpenPage) -> None:
    res = await open_page(node, "/", position=None)  # the browser refuses the location
    await ask_for_help(res, "medical")
    await expect(res.locator("#position-warning")).to_be_visible()
    await expect(res.get_by_test_id("incident-status")).to_have_attribute(
        "data-status", re.compile("queued|offered|escalated"))
    await check(res, "en", "resident-no-position")
