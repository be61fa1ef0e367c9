"""The reports page (/reports, issue 16) in Chromium, in both languages: an admin signs in, picks a period
and a grouping, and sees the table and both charts drawn (their canvases hold painted pixels); a mediator
gets the case report. Screenshots in /tmp/shots."""
from __future__ import annotations

from typing import Any

import pytest

from testkit.accounts import PASSWORD
from tests.e2e.helpers import SHOTS, OpenPage, expect
from tests.integration.test_reports import CASES, HISTORY, build, build_cases

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

PAINTED = """(id) => {
    const c = document.getElementById(id);
    if (!c || !c.width || !c.height) return 0;
    const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
    return n;
}"""


async def sign_in(page: Any, username: str) -> None:
    await page.get_by_test_id("username").fill(username)
    await page.get_by_test_id("password").fill(PASSWORD)
    await page.get_by_test_id("login").click()
    await expect(page.locator("#app")).to_be_visible()


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_the_incident_report_with_its_charts(node: Any, open_page: OpenPage, lang: str) -> None:
    zh = lang == "zh"
    await build(node.database_url, HISTORY)
    await node.add_user("chief1", "admin", name="局长" if zh else "Chief Wu")
    page = await open_page(node, "/reports", locale="zh-CN" if zh else "en-US")
    await expect(page.locator("h1")).to_have_text("统计报表" if zh else "Reports")
    await sign_in(page, "chief1")
    await page.get_by_test_id("report-from").fill("2026-03-01")
    await page.get_by_test_id("report-to").fill("2026-03-31")
    await page.get_by_test_id("report-by").select_option("grid")
    await page.get_by_test_id("report-show").click()
    caption = page.get_by_test_id("report-caption")
    await expect(caption).to_have_text("2026-03-01 至 2026-03-31 收到的求助事件" if zh
                                       else "Incidents received 2026-03-01 to 2026-03-31")
    rows = page.locator("#rp-table tbody tr")
    await expect(rows).to_have_count(4)                     # no grid, G1, G2, the total
    await expect(rows.nth(1).locator("th")).to_have_text("G1 name (G1)")
    await expect(rows.nth(3)).to_contain_text("合计" if zh else "Total")
    await expect(rows.nth(3).locator("td").first).to_have_text(str(len(HISTORY)))
    await expect(page.locator("#rp-table thead")).to_contain_text("至指派（秒） p90" if zh else "To assigned (s) p90")
    for canvas in ("rp-chart-times", "rp-chart-outcomes"):
        assert await page.evaluate(PAINTED, canvas) > 500, canvas
    await page.screenshot(path=f"{SHOTS}/reports-{lang}.png", full_page=True)
    await page.emulate_media(media="print")
    await expect(page.get_by_test_id("report-show")).to_be_hidden()     # print: the table and charts only
    await expect(page.get_by_test_id("report-table")).to_be_visible()


async def test_a_mediator_gets_the_case_report(node: Any, open_page: OpenPage) -> None:
    await build(node.database_url, [])
    await build_cases(node.database_url)
    await node.add_user("med1", "mediator", name="Zhao")
    page = await open_page(node, "/reports")
    await sign_in(page, "med1")
    await expect(page.get_by_test_id("report-kind")).to_have_value("cases")
    await page.get_by_test_id("report-from").fill("2026-03-01")
    await page.get_by_test_id("report-to").fill("2026-04-30")
    await page.get_by_test_id("report-show").click()
    rows = page.locator("#rp-table tbody tr")
    await expect(rows).to_have_count(4)                     # family, labour, neighbour, the total
    await expect(rows.nth(3).locator("td").first).to_have_text(str(len(CASES)))
    assert await page.evaluate(PAINTED, "rp-chart-outcomes") > 500
