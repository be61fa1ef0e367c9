"""The mediation page tried as residents and a mediator would (issue 19): results far from the
control, a one-tap Sign and Close, a waiting signature nobody sees on a phone, "Applicant" in
English inside the Chinese page, a hash shown to residents. Both languages; axe-core on every
state reached.
"""
from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.a11y import assert_accessible
from tests.e2e.helpers import OpenPage, expect, login, open_case

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def row(page: Any, case_id: str) -> Any:
    return page.locator(f'[data-testid=case-row][data-case-id="{case_id}"]')


async def near(page: Any, a: Any, b: Any, limit: float = 200) -> None:
    ba, bb = await a.bounding_box(), await b.bounding_box()
    assert ba and bb and abs(ba["y"] - bb["y"]) < limit, (ba, bb)


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_sign_and_close_ask_first_and_residents_see_plain_words(
        node: Any, open_page: OpenPage, lang: str) -> None:
    zh = lang == "zh"
    locale = "zh-CN" if zh else "en-US"
    await node.add_user("med1", "mediator", name="王芳" if zh else "Wang Fang")

    # the filer leaves their name blank: shown in the page's language
    filer = await open_page(node, "/mediate", locale=locale, viewport=PHONE)
    case_id = await open_case(filer, "楼上噪音" if zh else "Noise upstairs", [("博先生" if zh else "Bo", "")])
    parties = filer.locator("#c-parties")
    await expect(parties).to_contain_text("申请人" if zh else "Applicant")
    if zh:
        await expect(parties).not_to_contain_text("Applicant")
    code = await filer.get_by_test_id("invite-code").get_attribute("data-code") or ""
    other = await open_page(node, "/mediate", locale=locale, viewport=PHONE)
    await other.get_by_test_id("join-code").fill(code)
    await other.get_by_test_id("join").click()
    await expect(other.get_by_test_id("case-status")).to_have_attribute("data-status", "filed")

    med = await open_page(node, "/mediate", locale=locale, viewport=DESKTOP)
    await login(med, "med1")
    await row(med, case_id).click()
    await med.get_by_test_id("take").click()
    await expect(med.get_by_test_id("case-status")).to_have_attribute("data-status", "in_mediation")

    # an error shows beside the control that caused it, not far below
    await med.locator("#tools summary").click()
    await med.get_by_test_id("agency-id").fill("not-an-id")
    await med.get_by_test_id("invite").click()
    local = med.locator("#invite-form .local-msg")
    await expect(local).to_be_visible()
    await near(med, local, med.get_by_test_id("invite"))
    await expect(med.locator("#case-msg")).to_be_hidden()
    await assert_accessible(med, f"mediate mediator tools {lang}")

    text = "每晚22点后保持安静。" if zh else "Quiet after 22:00 every night."
    await med.get_by_test_id("agreement-text").fill(text)
    await med.get_by_test_id("propose").click()
    await expect(filer.get_by_test_id("case-status")).to_have_attribute("data-status", "agreement_proposed")

    # on a phone, a banner at the top says a signature is waiting, and leads to the button
    banner = filer.get_by_test_id("sign-banner")
    await expect(banner).to_be_visible()
    await filer.evaluate("window.scrollTo(0, 0)")
    box = await banner.bounding_box()
    assert box and box["y"] < PHONE["height"], box
    await assert_accessible(filer, f"mediate party sign waiting {lang}")
    await banner.locator("a").click()
    await expect(filer.get_by_test_id("sign")).to_be_in_viewport()

    # signing asks first; "not yet" signs nothing
    await filer.get_by_test_id("sign").click()
    await expect(filer.get_by_test_id("sign-confirm")).to_be_visible()
    await assert_accessible(filer, f"mediate sign question {lang}")
    await filer.get_by_test_id("sign-keep").click()
    await filer.wait_for_timeout(300)
    await expect(med.get_by_test_id("signatures").locator("li.signed")).to_have_count(0)
    for page in (filer, other):
        await page.get_by_test_id("sign").click()
        await page.get_by_test_id("sign-confirm").click()
    await expect(other.get_by_test_id("case-status")).to_have_attribute("data-status", "settled")
    await expect(other.get_by_test_id("sign-banner")).to_be_hidden()

    # residents read plain words; the fingerprint is there for staff behind a toggle
    settlement = other.get_by_test_id("settlement")
    await expect(settlement).to_be_visible()
    visible = await other.evaluate("document.body.innerText")
    assert "SHA-256" not in visible, visible
    await expect(other.get_by_test_id("settled-sha256")).to_be_hidden()
    await assert_accessible(other, f"mediate settled party {lang}")
    await settlement.locator("details summary").click()
    await expect(other.get_by_test_id("settled-sha256")).to_be_visible()
    await expect(other.get_by_test_id("settled-sha256")).to_have_text(re.compile(r"^[0-9a-f]{64}$"))


async def test_closing_a_case_asks_first(node: Any, open_page: OpenPage) -> None:
    await node.add_user("med2", "mediator", name="Wang Fang")
    filer = await open_page(node, "/mediate")
    case_id = await open_case(filer, "Fence on the line", [("Neighbour Zhou", "")], my_name="Ann")
    med = await open_page(node, "/mediate")
    await login(med, "med2")
    await row(med, case_id).click()
    await med.get_by_test_id("take").click()
    await expect(med.get_by_test_id("case-status")).to_have_attribute("data-status", "in_mediation")
    await med.locator("#tools summary").click()
    await med.get_by_test_id("close-case").click()
    await expect(med.get_by_test_id("close-case-confirm")).to_be_visible()
    await assert_accessible(med, "mediate close question")
    await med.get_by_test_id("close-case-keep").click()
    await med.wait_for_timeout(300)
    await expect(filer.get_by_test_id("case-status")).to_have_attribute("data-status", "in_mediation")
    await med.get_by_test_id("close-case").click()
    await med.get_by_test_id("close-case-confirm").click()
    await expect(filer.get_by_test_id("case-status")).to_have_attribute("data-status", "failed")
