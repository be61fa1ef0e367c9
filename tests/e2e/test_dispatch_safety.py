"""The dispatch console tried as a busy dispatcher would (issue 19): the one-click close, the
timeline below the fold, the sideways-scrolling queue on a phone, the map of identical dots,
Chinese with ASCII punctuation and words broken in two. Both languages, desktop and phone;
axe-core on every state reached.
"""
from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.a11y import assert_accessible
from tests.e2e.helpers import CITY, NEARBY, OpenPage, ask_for_help, expect, go_on_duty, login

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
LOCALES = {"en": "en-US", "zh-CN": "zh-CN"}


@pytest.mark.config(dispatch_offer_timeout_s=90)
@pytest.mark.parametrize("lang", ["en", "zh-CN"])
async def test_console_close_layout_and_map(node: Any, open_page: OpenPage, lang: str) -> None:
    zh = lang == "zh-CN"
    await node.add_user("medic", "responder", name="Li Wei", skills=["medical"])
    await node.add_user("fire", "responder", name="Chen Jie", skills=["fire"])
    await node.add_user("disp", "dispatcher", name="Zhang Min")
    disp = await open_page(node, "/dispatch", locale=LOCALES[lang], viewport=DESKTOP)
    await login(disp, "disp")
    await assert_accessible(disp, f"dispatch empty {lang}")

    fire = await open_page(node, "/responder", position=NEARBY, viewport=PHONE)
    await login(fire, "fire")
    await go_on_duty(fire)
    r1 = await open_page(node, "/")
    fire_ref = await ask_for_help(r1, "fire")
    await fire.get_by_test_id("accept").click()  # fire: busy
    medic = await open_page(node, "/responder", position=NEARBY, viewport=PHONE)
    await login(medic, "medic")
    await go_on_duty(medic)
    r2 = await open_page(node, "/", position={**CITY, "latitude": CITY["latitude"] + 0.004})
    await ask_for_help(r2, "medical")  # medic: offer pending
    await expect(medic.get_by_test_id("offer")).to_be_visible()
    r3 = await open_page(node, "/", position={**CITY, "latitude": CITY["latitude"] - 0.006})
    police_ref = await ask_for_help(r3, "police")  # nobody has the skill: escalated
    await expect(disp.get_by_test_id("incident-row")).to_have_count(3)

    # the map: offer pending and busy differ in shape, each incident carries its reference
    await expect(disp.locator(".leaflet-marker-icon .mk-offered")).to_have_count(1)
    await expect(disp.locator(".leaflet-marker-icon .mk-busy")).to_have_count(1)
    await expect(disp.locator(".leaflet-marker-icon .mk-escalated .mk-label")).to_have_text(police_ref)
    if zh:
        await expect(disp.locator(".leaflet-control-zoom-in")).to_have_attribute("title", "放大")
        await expect(disp.locator(".leaflet-control-zoom-out")).to_have_attribute("title", "缩小")

    # a marker is a button in the tab order: Enter selects its incident, which is ringed
    marker = disp.locator(".leaflet-marker-icon", has=disp.locator(".mk-escalated"))
    assert await marker.get_attribute("tabindex") == "0"
    await marker.focus()
    await disp.keyboard.press("Enter")
    await expect(disp.locator("#d-ref")).to_have_text(police_ref)
    await expect(disp.locator(".mk-selected .mk-label")).to_have_text(police_ref)
    await expect(disp.locator("#timeline li").first).to_be_visible()

    # detail and timeline beside the queue, in view without scrolling
    queue = await disp.locator(".queue").bounding_box()
    detail = await disp.locator(".detail").bounding_box()
    assert queue and detail and detail["x"] >= queue["x"] + queue["width"] - 1 and detail["y"] < 200, (queue, detail)
    timeline_top = await disp.locator("#timeline").bounding_box()
    assert timeline_top and timeline_top["y"] < DESKTOP["height"], timeline_top
    if zh:
        text = await disp.locator("#timeline").inner_text()
        assert not any(p in text for p in (" — ", ": ", "; ", " (")), text  # Chinese punctuation
    await assert_accessible(disp, f"dispatch selected {lang}")

    # closing: no default outcome; a press without one only asks for it
    status = r3.get_by_test_id("incident-status")
    await disp.get_by_test_id("close").click()
    await expect(disp.locator("#close-msg")).to_be_visible()
    assert await disp.get_by_test_id("disposition").input_value() == ""
    await disp.get_by_test_id("disposition").select_option("false_alarm")
    await disp.get_by_test_id("close").click()
    confirm = disp.get_by_test_id("close-confirm")
    await expect(confirm).to_be_visible()
    await expect(disp.locator("#close-q")).to_contain_text(police_ref)
    await assert_accessible(disp, f"dispatch close question {lang}")
    await disp.get_by_test_id("close-keep").click()
    await disp.wait_for_timeout(300)
    await expect(status).to_have_attribute("data-status", "escalated")  # still open
    await disp.get_by_test_id("close").click()
    await confirm.click()
    await expect(status).to_have_attribute("data-status", "cancelled")
    await expect(disp.get_by_test_id("incident-row")).to_have_count(2)

    # on a phone: the queue fits, no sideways scroll; category names are not cut mid-word
    await disp.set_viewport_size(PHONE)
    await disp.wait_for_timeout(400)
    width = await disp.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], width
    row = disp.locator(f'[data-testid=incident-row]:has-text("{fire_ref}")')
    await expect(row).to_be_visible()
    broken = await disp.evaluate("""() => [...document.querySelectorAll('[data-testid=incident-row] td')]
        .filter((td) => /[\\u4e00-\\u9fff]{2,}/.test(td.textContent) && td.children.length === 0)
        .filter((td) => { const r = document.createRange(); r.selectNodeContents(td);
                          return new Set([...r.getClientRects()].map((x) => Math.round(x.top))).size > 1; })
        .map((td) => td.textContent)""")
    assert not broken, broken
    await assert_accessible(disp, f"dispatch phone {lang}")
