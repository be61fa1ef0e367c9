"""The resident page tried as a frightened person would (issue 19): every harm it allowed with one
tap, done again, and shown not to harm any more. Phone and desktop, both languages; axe-core on
every state reached.
"""
from __future__ import annotations

import os
import re
import time
from typing import Any

import pytest

from tests.e2e.a11y import assert_accessible
from tests.e2e.helpers import CITY, SHOTS, WS_REFUSED, OpenPage, ask_for_help, expect, login

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
SMALL = {"width": 320, "height": 568}
LOCALES = {"en": "en-US", "zh": "zh-CN"}


def overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
async def test_a_second_tap_on_help_does_not_cancel(node: Any, open_page: OpenPage, lang: str,
                                                    viewport: dict[str, int]) -> None:
    res = await open_page(node, "/", locale=LOCALES[lang], viewport=viewport)
    await assert_accessible(res, f"resident start {lang} {viewport}")
    help_button = res.get_by_test_id("help-button")
    box = await help_button.bounding_box()
    assert box
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    # the person presses HELP, then presses again where it was, and again, as people do
    await help_button.click()
    status = res.get_by_test_id("incident-status")
    await expect(status).to_have_attribute("data-status", re.compile("queued|offered|escalated"))
    for _ in range(4):
        await res.mouse.click(x, y)
        await res.wait_for_timeout(250)
    cancel = res.get_by_test_id("cancel-button")
    cancel_box = await cancel.bounding_box()
    assert cancel_box and not overlaps(box, cancel_box), (box, cancel_box)  # Cancel is elsewhere
    await expect(res.get_by_test_id("cancel-confirm")).to_be_hidden()

    # a tap on Cancel itself within the first moments does nothing either
    await cancel.click(force=True)
    await expect(res.get_by_test_id("cancel-confirm")).to_be_hidden()
    await expect(status).not_to_have_attribute("data-status", "cancelled")
    await assert_accessible(res, f"resident waiting {lang} {viewport}")

    # later, Cancel asks first; a double tap on it lands on "keep"
    await expect(cancel).to_be_enabled(timeout=5000)
    await cancel.scroll_into_view_if_needed()  # on a phone it sits below the note box, well away from HELP
    cbox = await cancel.bounding_box()
    assert cbox
    await res.mouse.dblclick(cbox["x"] + cbox["width"] / 2, cbox["y"] + cbox["height"] / 2)
    await res.wait_for_timeout(700)
    await expect(status).not_to_have_attribute("data-status", "cancelled")  # a double tap only asks
    # (its second tap may land on "keep", which answers the question: on a phone the page scrolls to it)
    if await res.get_by_test_id("cancel-keep").is_visible():
        await res.get_by_test_id("cancel-keep").click()
    await expect(res.get_by_test_id("cancel-confirm")).to_be_hidden()
    await expect(status).not_to_have_attribute("data-status", "cancelled")
    await cancel.click()
    await expect(res.get_by_test_id("cancel-confirm")).to_be_visible()
    await assert_accessible(res, f"resident cancel question {lang} {viewport}")
    await res.get_by_test_id("cancel-confirm").click()
    await expect(status).to_have_attribute("data-status", "cancelled")
    await expect(status).to_have_text(re.compile("You cancelled" if lang == "en" else "您已取消"))


async def test_no_silent_medical_default_and_a_fresh_form_after_a_request(node: Any, open_page: OpenPage) -> None:
    await node.add_user("disp", "dispatcher", name="Zhang Min")
    res = await open_page(node, "/")
    category = res.get_by_test_id("category")
    assert await category.input_value() == "other"  # "not sure", never Medical unless chosen
    await expect(category.locator("option:checked")).to_have_text(re.compile("Not sure"))

    ref = await ask_for_help(res, "fire", note="smoke in the kitchen")
    status = res.get_by_test_id("incident-status")
    await expect(status).to_have_attribute("data-status", "escalated")
    # escalated says what is true: nobody has it yet, a dispatcher must act
    await expect(status).to_contain_text("waiting for a dispatcher")
    await expect(status).not_to_contain_text("personally")

    # the dispatcher closes it as a false alarm: the resident is told so, not "cancelled"
    disp = await open_page(node, "/dispatch")
    await login(disp, "disp")
    row = disp.locator(f'[data-testid=incident-row]:has-text("{ref}")')
    await row.locator("button.ref").click()
    await disp.locator("#disposition").select_option("false_alarm")
    await disp.get_by_test_id("close").click()
    confirm = disp.get_by_test_id("close-confirm")
    if await confirm.count():
        await confirm.click()
    await expect(status).to_have_attribute("data-status", "cancelled")
    await expect(status).to_have_text(re.compile("Closed by the dispatcher as: False alarm"))

    await res.get_by_test_id("help-again").click()
    assert await category.input_value() == "other"
    assert await res.get_by_test_id("note").input_value() == ""
    await assert_accessible(res, "resident fresh form")


async def test_a_request_pressed_offline_can_be_cancelled_and_never_goes_later(node: Any, open_page: OpenPage) -> None:
    await node.add_user("disp", "dispatcher", name="Zhang Min")
    res = await open_page(node, "/", ignore=WS_REFUSED)
    await expect(res.locator(".conn")).to_have_attribute("data-state", "live")
    node.kill()
    await expect(res.locator(".conn")).not_to_have_attribute("data-state", "live", timeout=10000)
    await res.get_by_test_id("help-button").click()
    await expect(res.get_by_test_id("incident-status")).to_have_text(re.compile("Sending"))
    cancel = res.get_by_test_id("cancel-button")
    await expect(cancel).to_be_enabled(timeout=5000)  # a pending request can be cancelled
    await cancel.click()
    await res.get_by_test_id("cancel-confirm").click()
    await expect(res.get_by_test_id("help-button")).to_be_visible()
    await expect(res.locator("#msg")).to_contain_text("not sent")
    assert await res.evaluate("localStorage.getItem('helpline.resident.pending')") is None

    # a request pressed long ago (the tab slept) is not sent with its old position once back
    stale = {"req": {"request_id": "req-stale-1", "category": "police", "lat": CITY["latitude"],
                     "lon": CITY["longitude"], "accuracy_m": 20}, "located": True,
             "at": int(time.time() * 1000) - 2 * 3600 * 1000}
    await res.evaluate("p => localStorage.setItem('helpline.resident.pending', JSON.stringify(p))", stale)
    await node.start()
    await res.reload()
    await expect(res.locator(".conn")).to_have_attribute("data-state", "live", timeout=30000)
    await expect(res.locator("#msg")).to_contain_text("call 110 now")
    await expect(res.get_by_test_id("help-button")).to_be_visible()
    assert await res.evaluate("localStorage.getItem('helpline.resident.pending')") is None
    await assert_accessible(res, "resident expired request")

    disp = await open_page(node, "/dispatch")
    await login(disp, "disp")
    await expect(disp.locator("#queue-empty")).to_be_visible()
    await disp.wait_for_timeout(1000)
    await expect(disp.get_by_test_id("incident-row")).to_have_count(0)  # neither reached the server


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_small_phone_with_large_text_has_help_in_full_view(node: Any, open_page: OpenPage, lang: str) -> None:
    res = await open_page(node, "/", locale=LOCALES[lang], viewport=SMALL)
    await res.evaluate("document.documentElement.style.fontSize = '200%'")
    await res.wait_for_timeout(200)
    width = await res.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], width  # no sideways scroll
    help_button = res.get_by_test_id("help-button")
    await help_button.evaluate("el => el.scrollIntoView({block: 'nearest'})")
    await res.wait_for_timeout(200)
    box = await help_button.bounding_box()
    assert box
    # every part of the button is the button, not the 110 bar over it
    for fx, fy in ((.5, .08), (.5, .5), (.5, .92), (.08, .5), (.92, .5)):
        hit = await res.evaluate("([x, y]) => !!document.elementFromPoint(x, y)?.closest('[data-testid=help-button]')",
                                 [box["x"] + box["width"] * fx, box["y"] + box["height"] * fy])
        assert hit, (lang, fx, fy, box)
    await help_button.click()
    await expect(res.get_by_test_id("incident-ref")).to_have_text(re.compile(r"\w+-?\d+"))
    width = await res.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], width
    await assert_accessible(res, f"resident 320px 200% {lang}")


@pytest.mark.config(sms_from_number="+8610690000")
@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_offline_load_shows_the_shell_with_call_and_text(node: Any, open_page: OpenPage, lang: str) -> None:
    res = await open_page(node, "/", locale=LOCALES[lang], viewport=PHONE,
                          ignore=(*WS_REFUSED, "Failed to fetch", "sw.js"))
    await res.evaluate("navigator.serviceWorker.ready")
    await res.reload()  # the worker now controls the page and has the shell
    assert await res.evaluate("!!navigator.serviceWorker.controller")
    body = "HELP" if lang == "en" else "%E6%B1%82%E5%8A%A9"
    await expect(res.get_by_test_id("sms-link")).to_have_attribute("href", f"sms:+8610690000?body={body}")

    node.kill()  # the server cannot be reached: the page still loads
    await res.reload()
    await expect(res.get_by_test_id("help-button")).to_be_visible()
    await expect(res.locator(".emergency-number")).to_have_text("110")
    await expect(res.locator("#call")).to_have_attribute("href", "tel:110")
    await expect(res.get_by_test_id("sms-link")).to_have_attribute("href", f"sms:+8610690000?body={body}")
    await expect(res.locator("#offline-note")).to_be_visible(timeout=15000)
    await expect(res.locator("#offline-note")).to_contain_text("110")
    await assert_accessible(res, f"resident offline shell {lang}")


SLOW_FIX = """(() => {
  // the phone takes a while to find where it is
  navigator.geolocation.getCurrentPosition = (ok) => setTimeout(() => ok({coords: {
    latitude: 31.2304, longitude: 121.4737, accuracy: 20}}), 5000);
})();"""


async def test_cancelled_while_finding_the_position_nothing_is_sent(node: Any, open_page: OpenPage) -> None:
    res = await open_page(node, "/", position=None, init=SLOW_FIX)
    await expect(res.locator(".conn")).to_have_attribute("data-state", "live")
    await res.get_by_test_id("help-button").click()
    cancel = res.get_by_test_id("cancel-button")
    await expect(cancel).to_be_enabled(timeout=4000)  # while the position is still being found
    await cancel.click()
    await res.get_by_test_id("cancel-confirm").click()
    await expect(res.get_by_test_id("help-button")).to_be_visible()
    await res.wait_for_timeout(4000)  # the position arrives now: it must go nowhere
    assert await res.evaluate("localStorage.getItem('helpline.resident.pending')") is None
    await expect(res.get_by_test_id("help-button")).to_be_visible()
    await res.reload()
    await expect(res.locator(".conn")).to_have_attribute("data-state", "live")
    await res.wait_for_timeout(500)
    await expect(res.get_by_test_id("incident-ref")).to_be_hidden()  # no incident for this device


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_with_location_refused_the_resident_says_where_they_are_and_it_is_received(
        node: Any, open_page: OpenPage, lang: str) -> None:
    disp = await node.user("dispatcher")
    await disp.ok("queue.watch")
    res = await open_page(node, "/", locale=LOCALES[lang], viewport=PHONE, position=None)  # location refused
    await ask_for_help(res, "medical", note="chest pain")
    status = res.get_by_test_id("incident-status")
    await expect(status).to_have_attribute("data-status", "escalated")
    # the truth: nobody knows where they are, and where to say it
    await expect(status).to_contain_text("We do not know where you are" if lang == "en" else "我们不知道您在哪里")
    box = res.get_by_test_id("add-note")
    await expect(box).to_be_visible()
    await expect(res.locator("#add-note-label")).to_contain_text("Where are you?" if lang == "en" else "您在哪里")
    await assert_accessible(res, f"resident where-am-i {lang}")

    # a stray tap on Send with nothing written sends nothing and raises no alarm
    await res.get_by_test_id("add-note-send").click()
    await expect(res.get_by_test_id("add-note-status")).to_be_hidden()
    where = "北门外，图书馆旁" if lang == "zh" else "Outside the library, north gate"
    await box.fill(where)
    await res.get_by_test_id("add-note-send").click()
    said = res.get_by_test_id("add-note-status")
    await expect(said).to_contain_text("Received at" if lang == "en" else "已于")
    await expect(box).to_have_value("")                          # sent: the box is ready for more
    await expect(res.get_by_test_id("incident-note")).to_contain_text(where)
    await expect(res.get_by_test_id("incident-note")).to_contain_text("chest pain")   # the first note stays
    seen = await disp.push("incident.updated", lambda m: where in (m["incident"]["note"] or ""))
    assert seen["incident"]["status"] == "escalated"              # the dispatcher reads it live
    await assert_accessible(res, f"resident note received {lang}")
    os.makedirs(SHOTS, exist_ok=True)
    await res.screenshot(path=f"{SHOTS}/resident-note-received-{lang}.png", full_page=True)

    # still there for more, and after a reload
    await res.reload()
    await expect(res.get_by_test_id("add-note")).to_be_visible()
    await expect(res.get_by_test_id("incident-note")).to_contain_text(where)
    # once closed, the box goes: nothing can be added to a closed request
    await disp.ok("incident.close", incident_id=seen["incident"]["id"], disposition="handled_by_phone")
    await expect(status).to_have_attribute("data-status", "resolved")
    await expect(res.get_by_test_id("add-note-form")).to_be_hidden()


async def test_the_note_box_reaches_the_responder_on_the_way(node: Any, open_page: OpenPage) -> None:
    medic = await node.user("responder", skills=["medical"])
    await medic.ok("duty.start", lat=CITY["latitude"] + 0.002, lon=CITY["longitude"])
    res = await open_page(node, "/", viewport=PHONE)
    ref = await ask_for_help(res, "medical")
    offer = await medic.push("offer", lambda m: m["incident"]["ref_no"] == ref)
    await medic.ok("offer.accept", offer_id=offer["offer_id"])
    await expect(res.get_by_test_id("incident-status")).to_have_attribute("data-status", "assigned")
    await res.get_by_test_id("add-note").fill("Ring twice, the bell is broken")
    await res.get_by_test_id("add-note-send").click()
    await expect(res.get_by_test_id("add-note-status")).to_contain_text("the dispatcher and your helper can read it")
    got = await medic.push("incident.updated", lambda m: "Ring twice" in (m["incident"]["note"] or ""))
    assert got["incident"]["ref_no"] == ref
