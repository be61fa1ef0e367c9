"""The admin console (/admin, issue 21) in Chromium, in both languages: a non-admin is turned away with
"admins only"; an admin finds accounts, creates one (its one-time code shown), sees a dispatcher's open
session, suspends the dispatcher after a confirmation (their console signs out at once), issues a reset
code that the person then uses on the sign-in view, filters the audit log and downloads it as CSV.
Screenshots in /tmp/shots (phone and desktop), axe-clean, no untranslated keys."""
from __future__ import annotations

import csv
import re
from typing import Any

import pytest

from testkit.accounts import PASSWORD
from tests.e2e.helpers import OpenPage, expect, login
from tests.e2e.test_screens import both_sizes, check

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

ADMIN_KEY = re.compile(r"\badmin\.[a-z]\w*")
CODE = re.compile(r"^[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}$")
WORDS = {
    "en": {"admins_only": "Admins only", "created": "Account clerk9 created", "suspended": "Suspended",
           "suspended_done": "disp1 is suspended", "password_set": "Your new password is set"},
    "zh": {"admins_only": "仅限管理员", "created": "已创建账号 clerk9", "suspended": "已停用",
           "suspended_done": "disp1 已停用", "password_set": "新密码已设置"},
}


async def no_raw_keys(page: Any) -> None:
    text = await page.evaluate("document.body.innerText")
    assert not ADMIN_KEY.findall(text), ADMIN_KEY.findall(text)


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_admin_console(node: Any, open_page: OpenPage, lang: str, tmp_path: Any) -> None:
    locale = "zh-CN" if lang == "zh" else "en-US"
    words = WORDS[lang]
    await node.add_user("boss", "admin", name="Admin Boss")
    await node.add_user("disp1", "dispatcher", name="Zhang Min")

    # a dispatcher at work: their session is listed, and suspension signs them out at once
    disp = await open_page(node, "/dispatch", locale=locale, ignore=("WebSocket", "Failed to load resource"))
    await login(disp, "disp1")
    second = await open_page(node, "/dispatch", locale=locale, ignore=("WebSocket", "Failed to load resource"))
    await login(second, "disp1")

    # a non-admin who opens /admin is told it is for admins only
    # (the refusals below answer 4xx, which Chromium logs as a failed load)
    page = await open_page(node, "/admin", locale=locale, ignore=("Failed to load resource",))
    await page.get_by_test_id("username").fill("disp1")
    await page.get_by_test_id("password").fill(PASSWORD)
    await page.get_by_test_id("login").click()
    await expect(page.get_by_test_id("login-msg")).to_contain_text(words["admins_only"])
    await no_raw_keys(page)
    await check(page, lang, "admin-refused")

    await login(page, "boss")
    # find: by a piece of the name, then the row opens the account
    await page.get_by_test_id("find-q").fill("zhang")
    await page.get_by_test_id("find").click()
    await expect(page.get_by_test_id("account-disp1")).to_be_visible()
    await expect(page.get_by_test_id("account-boss")).to_have_count(0)

    # bad input is refused with a message naming the field, and nothing is made
    await page.get_by_test_id("new-account").click()
    await page.get_by_test_id("f-username").fill("disp1")
    await page.get_by_test_id("f-save").click()
    await expect(page.get_by_test_id("f-msg")).to_contain_text("username")
    await page.get_by_test_id("f-username").fill("clerk9")
    await page.get_by_test_id("f-phone").fill("12")
    await page.get_by_test_id("f-save").click()
    await expect(page.get_by_test_id("f-msg")).to_contain_text("phone")
    await page.get_by_test_id("f-phone").fill("")

    # create, without a password: the one-time code is shown
    await page.get_by_test_id("new-account").click()
    await page.get_by_test_id("f-username").fill("clerk9")
    await page.get_by_test_id("f-role").select_option("clerk")
    await page.get_by_test_id("f-name").fill("Front desk Qian")
    await page.get_by_test_id("f-save").click()
    await expect(page.get_by_test_id("action-msg")).to_contain_text(words["created"])
    await expect(page.get_by_test_id("code-box")).to_be_visible()
    first_code = await page.get_by_test_id("code").inner_text()
    assert CODE.match(first_code), first_code
    await no_raw_keys(page)
    await both_sizes(page, lang, "admin-created")

    # the dispatcher's two sessions: one ended with its button (that console signs out), then suspension
    # with a confirmation
    await page.get_by_test_id("account-disp1").click()
    await expect(page.get_by_test_id("session")).to_have_count(2)
    await expect(page.get_by_test_id("session").first).to_contain_text("127.0.0.1")
    await page.get_by_test_id("session-end").last.click()
    await page.get_by_test_id("confirm-yes").click()
    await expect(page.get_by_test_id("session")).to_have_count(1)
    await expect(second.locator("#login")).to_be_visible()
    await expect(disp.locator("#app")).to_be_visible()          # the other session goes on
    await page.get_by_test_id("suspend").click()
    await expect(page.get_by_test_id("confirm")).to_be_visible()
    await check(page, lang, "admin-confirm-suspend")
    await page.get_by_test_id("confirm-yes").click()
    await expect(page.get_by_test_id("action-msg")).to_contain_text(words["suspended_done"])
    await expect(page.get_by_test_id("account-disp1")).to_contain_text(words["suspended"])
    await expect(disp.locator("#login")).to_be_visible()          # signed out at once
    await expect(page.get_by_test_id("reinstate")).to_be_visible()

    # a reset code for the new clerk (confirmed), shown once
    await page.get_by_test_id("find-q").fill("clerk9")
    await page.get_by_test_id("find").click()
    await page.get_by_test_id("account-clerk9").click()
    await page.get_by_test_id("reset").click()
    await page.get_by_test_id("confirm-yes").click()
    await expect(page.get_by_test_id("code-box")).to_be_visible()
    code = await page.get_by_test_id("code").inner_text()
    assert CODE.match(code) and code != first_code
    await both_sizes(page, lang, "admin-reset-code")

    # the audit log: what boss did to accounts, and the CSV of the same
    await page.get_by_test_id("a-actor").fill("boss")
    await page.get_by_test_id("a-subject").fill("account")
    await page.get_by_test_id("a-show").click()
    rows = page.get_by_test_id("audit-row")
    await expect(rows.filter(has_text="account.suspend")).to_have_count(1)
    await expect(rows.filter(has_text="account.create")).to_have_count(1)
    await expect(rows.filter(has_text="account.reset_code")).to_have_count(1)
    await expect(rows.filter(has_text="accounts.list")).to_have_count(0)      # subject type account only
    await page.get_by_test_id("a-show").scroll_into_view_if_needed()
    await both_sizes(page, lang, "admin-audit")
    async with page.expect_download() as dl_info:
        await page.get_by_test_id("a-csv").click()
    dl = await dl_info.value
    path = tmp_path / "audit.csv"
    await dl.save_as(path)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    got = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
    assert {r["action"] for r in got} >= {"account.create", "account.suspend", "account.reset_code"}
    assert {r["actor"] for r in got} == {"boss"}

    # the clerk sets a password with the code on the sign-in view (an earlier code no longer works)
    other = await open_page(node, "/admin", locale=locale)
    await other.get_by_test_id("rc-username").fill("clerk9")
    await other.get_by_test_id("rc-code").fill(code.lower())
    await other.get_by_test_id("rc-password").fill("Clerk-pass-9")
    await other.get_by_test_id("rc-submit").click()
    await expect(other.get_by_test_id("rc-msg")).to_contain_text(words["password_set"])
    await no_raw_keys(other)
    await check(other, lang, "admin-password-set")
