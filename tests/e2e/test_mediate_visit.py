"""The counter's form on /mediate (issue 13): a clerk on a phone and a mediator on a desktop open cases for
visitors and get the join codes to hand over, with whether each was texted. Both languages; axe-core on
every state reached; screenshots at 390x844 and 1280x800 in /tmp/shots.
"""
from __future__ import annotations

from typing import Any

import pytest

from testkit.stack import query
from tests.e2e.a11y import assert_accessible
from tests.e2e.helpers import SHOTS, OpenPage, expect, login

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


async def fill_party(page: Any, i: int, name: str, phone: str = "") -> None:
    await page.get_by_test_id("visit-party-name").nth(i).fill(name)
    await page.get_by_test_id("visit-party-phone").nth(i).fill(phone)


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_a_clerk_registers_visitors_and_hands_over_the_codes(node: Any, open_page: OpenPage, lang: str) -> None:
    zh = lang == "zh"
    locale = "zh-CN" if zh else "en-US"
    await node.add_user("desk1", "clerk", name="钱前台" if zh else "Qian Desk")

    page = await open_page(node, "/mediate", locale=locale, viewport=PHONE)
    await login(page, "desk1")
    form = page.locator("#visit-form")
    await expect(form).to_be_visible()                       # the front desk: the form is open at once
    await expect(page.locator("#visit-title")).to_have_text("为来访群众登记案件" if zh else "Open a case for a visitor")
    await expect(page.get_by_test_id("visit-party-name")).to_have_count(2)
    await assert_accessible(page, f"visit form {lang}")

    # what is missing is said before anything is sent
    msg = page.locator("#visit-msg")
    await page.get_by_test_id("visit-submit").click()
    await expect(msg).to_have_text("请说明发生了什么。" if zh else "Please say what happened.")
    await page.get_by_test_id("visit-summary").fill("楼上漏水" if zh else "Water through the ceiling")
    await fill_party(page, 0, "王芳" if zh else "Wang Fang", "12345")
    await page.get_by_test_id("visit-submit").click()
    await expect(msg).to_contain_text("至少填写两位" if zh else "at least two")

    # the server refuses the number: the words name the person, and the focus is on their phone box
    await fill_party(page, 1, "赵磊" if zh else "Zhao Lei")
    await page.get_by_test_id("visit-submit").click()
    await expect(msg).to_contain_text("第 1 位当事人（王芳）的手机号码无效" if zh
                                      else "person 1 (Wang Fang) is not a valid number")
    phone0 = page.get_by_test_id("visit-party-phone").nth(0)
    await expect(phone0).to_be_focused()
    await expect(phone0).to_have_attribute("aria-invalid", "true")
    await assert_accessible(page, f"visit refused {lang}")
    await page.screenshot(path=f"{SHOTS}/mediate-visit-refused-{lang}-phone.png", full_page=True)
    assert (await query(node, "SELECT count(*) AS n FROM cases"))[0]["n"] == 0

    # corrected: the slip shows each person's code, and whether it was texted
    await phone0.fill("139 1111 0001")
    await page.get_by_test_id("visit-submit").click()
    slip = page.get_by_test_id("visit-slip")
    await expect(slip).to_be_visible()
    await expect(slip).to_be_focused()
    codes = page.get_by_test_id("visit-code")
    await expect(codes).to_have_count(2)
    await expect(codes.nth(0)).to_have_attribute("data-texted", "true")
    await expect(codes.nth(0)).to_contain_text("已短信发送至 +8613911110001" if zh else "texted to +8613911110001")
    await expect(codes.nth(1)).to_have_attribute("data-texted", "false")
    await expect(codes.nth(1)).to_contain_text("无手机号：请当面交付" if zh else "no mobile number: hand it over")
    ref = (await query(node, "SELECT ref_no FROM cases"))[0]["ref_no"]
    await expect(slip.locator("#slip-title")).to_contain_text(ref)
    stored = {r["join_code"] for r in await query(node, "SELECT join_code FROM case_parties")}
    shown = {await codes.nth(i).get_attribute("data-code") for i in range(2)}
    assert shown == stored and len(stored) == 2
    await expect(form).to_be_hidden()
    await assert_accessible(page, f"visit slip {lang}")
    await page.screenshot(path=f"{SHOTS}/mediate-visit-slip-{lang}-phone.png", full_page=True)

    # printed, only the slip is on paper
    await page.emulate_media(media="print")
    await expect(page.locator("#cases-panel")).to_be_hidden()
    await expect(page.locator(".topbar")).to_be_hidden()
    await expect(slip).to_be_visible()
    await page.emulate_media(media="screen")

    # the case itself: who registered it, the codes, and room to name one more person; no chat for the desk
    await page.get_by_test_id("visit-show").click()
    await expect(page.locator("#c-ref")).to_have_text(ref)
    await expect(page.locator("#c-meta")).to_contain_text("由 钱前台 在窗口登记" if zh
                                                          else "registered at the counter by Qian Desk")
    await expect(page.get_by_test_id("invite-code")).to_have_count(2)
    await expect(page.locator("#add-party-box")).to_be_visible()
    await expect(page.locator("#chat")).to_be_hidden()
    await assert_accessible(page, f"visit case {lang}")
    await page.screenshot(path=f"{SHOTS}/mediate-visit-case-{lang}-phone.png", full_page=True)

    # another case: the form comes back empty
    await page.get_by_test_id("visit-another").click()
    await expect(form).to_be_visible()
    await expect(page.get_by_test_id("visit-summary")).to_have_value("")


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_a_mediator_opens_a_case_for_visitors_on_a_desktop(node: Any, open_page: OpenPage, lang: str) -> None:
    zh = lang == "zh"
    locale = "zh-CN" if zh else "en-US"
    await node.add_user("med1", "mediator", name="孙调解" if zh else "Sun Mediator")
    page = await open_page(node, "/mediate", locale=locale, viewport=DESKTOP)
    await login(page, "med1")
    form = page.locator("#visit-form")
    await expect(form).to_be_hidden()                      # a mediator opens it when someone is at the counter
    await page.locator("#visit-box summary").click()
    await expect(form).to_be_visible()
    await assert_accessible(page, f"mediator visit form {lang}")
    await page.get_by_test_id("visit-category").select_option("family")
    await page.get_by_test_id("visit-summary").fill("赡养老人" if zh else "Care of an elderly father")
    await fill_party(page, 0, "李明" if zh else "Li Ming", "13911110002")
    await fill_party(page, 1, "李华" if zh else "Li Hua", "+86 139 1111 0003")
    await page.get_by_test_id("visit-add-party").click()
    await expect(page.get_by_test_id("visit-party-name")).to_have_count(3)
    await expect(page.get_by_test_id("visit-party-name").nth(2)).to_be_focused()
    await fill_party(page, 2, "李强" if zh else "Li Qiang")
    await page.screenshot(path=f"{SHOTS}/mediate-visit-form-{lang}-desktop.png", full_page=True)
    await page.keyboard.press("Tab")
    await page.get_by_test_id("visit-submit").click()
    codes = page.get_by_test_id("visit-code")
    await expect(codes).to_have_count(3)
    assert [await codes.nth(i).get_attribute("data-texted") for i in range(3)] == ["true", "true", "false"]
    await assert_accessible(page, f"mediator visit slip {lang}")
    await page.screenshot(path=f"{SHOTS}/mediate-visit-slip-{lang}-desktop.png", full_page=True)

    # the mediator's list has it, and the mediator may take it
    cid = str((await query(node, "SELECT id FROM cases"))[0]["id"])
    await page.locator(f'[data-testid=case-row][data-case-id="{cid}"]').click()
    await expect(page.locator("#c-meta")).to_contain_text("孙调解" if zh else "Sun Mediator")
    await expect(page.get_by_test_id("invite-code")).to_have_count(3)      # the opener's copy keeps the codes
    await page.get_by_test_id("take").click()
    await expect(page.get_by_test_id("case-status")).to_have_attribute("data-status", "in_mediation")
    await assert_accessible(page, f"mediator took the visitors' case {lang}")
    rows = await query(node, "SELECT actor_role FROM audit_log WHERE action = 'open_for_visitors'")
    assert [r["actor_role"] for r in rows] == ["mediator"]
