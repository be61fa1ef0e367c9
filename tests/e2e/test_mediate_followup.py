"""Cases followed up on /mediate in a real browser (issue 15): an untaken case turns overdue within seconds
(a configuration in seconds) and is listed first with its marker; once closed, its party is asked how
satisfied they are and answers once. Both languages; screenshots under /tmp/shots."""
from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.helpers import OpenPage, expect, login, open_case
from tests.e2e.test_screens import check

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


@pytest.mark.config(mediation_take_within_h="0.0005", mediation_sweep_s="0.3")
@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_overdue_marker_first_and_the_satisfaction_prompt(node: Any, open_page: OpenPage, lang: str) -> None:
    zh = lang == "zh"
    locale = "zh-CN" if zh else "en-US"
    await node.add_user("med1", "mediator", name="王芳" if zh else "Wang Fang")
    filer = await open_page(node, "/mediate", locale=locale)
    case_id = await open_case(filer, "楼上漏水" if zh else "Water through the ceiling",
                              [("博先生" if zh else "Bo", "")])

    med = await open_page(node, "/mediate", locale=locale)
    await login(med, "med1")
    row = med.locator(f'[data-testid=case-row][data-case-id="{case_id}"]')
    # take_by is under two seconds after filing: the sweep marks it, the push brings the marker
    await expect(row.get_by_test_id("case-overdue")).to_be_visible(timeout=20_000)
    await expect(row.get_by_test_id("case-overdue")).to_have_text("⚠ 已超期" if zh else "⚠ Overdue")
    first = med.locator("[data-testid=case-row]").first
    assert await first.get_attribute("data-case-id") == case_id          # the overdue group comes first
    await expect(med.locator("h3.group").first).to_have_text(("已超期" if zh else "Overdue") + " (1)")
    await row.click()
    await expect(med.get_by_test_id("case-due").get_by_test_id("case-overdue")).to_be_visible()
    await expect(filer.get_by_test_id("case-due").get_by_test_id("case-overdue")).to_be_visible()
    await check(med, lang, "mediate-overdue")

    await med.get_by_test_id("take").click()
    await expect(med.get_by_test_id("case-status")).to_have_attribute("data-status", "in_mediation")
    await expect(row.get_by_test_id("case-overdue")).to_have_count(0)      # taken: in time again
    await expect(filer.get_by_test_id("feedback")).to_be_hidden()
    await med.locator("#tools > summary").click()          # the mediator's tools fold out
    await med.get_by_test_id("close-outcome").select_option("failed")
    await med.get_by_test_id("close-case").click()
    await med.get_by_test_id("close-case-confirm").click()
    await expect(med.get_by_test_id("case-status")).to_have_attribute("data-status", "failed")

    # the party is asked once; the mediator is not
    prompt = filer.get_by_test_id("feedback")
    await expect(prompt).to_be_visible()
    await expect(med.get_by_test_id("feedback")).to_be_hidden()
    await check(filer, lang, "mediate-feedback")
    await filer.get_by_test_id("feedback-send").click()                  # nothing chosen yet: told so
    await expect(prompt.locator(".local-msg")).to_be_visible()
    await filer.get_by_test_id("feedback-score-4").click()
    await expect(filer.get_by_test_id("feedback-score-4")).to_have_attribute("aria-pressed", "true")
    await filer.get_by_test_id("feedback-comment").fill("耐心" if zh else "Patient and fair")
    await filer.get_by_test_id("feedback-send").click()
    given = filer.get_by_test_id("feedback-given")
    await expect(given).to_be_visible()
    await expect(given).to_contain_text("4")
    await expect(prompt).to_be_hidden()
    await filer.reload()
    await expect(filer.get_by_test_id("feedback-given")).to_be_visible()     # stays answered after a reload
    await expect(filer.get_by_test_id("feedback")).to_be_hidden()
    await check(filer, lang, "mediate-feedback-given")
