"""A dispute referred into mediation from the dispatch console (issue 15), in both languages: the incident
panel's "Refer to mediation" form, the case it names afterwards, the reporter's page saying so and leading
into the case, and the mediation page's case view naming the incident. Screenshots under /tmp/shots."""
from __future__ import annotations

import uuid
from typing import Any

import pytest

from testkit.stack import query as sql
from tests.e2e.helpers import OpenPage, ask_for_help, expect, go_on_duty, login
from tests.e2e.test_screens import check

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_a_dispatcher_refers_a_dispute_and_both_pages_link_the_records(node: Any, open_page: OpenPage,
                                                                             lang: str) -> None:
    zh = lang == "zh"
    locale = "zh-CN" if zh else "en-US"
    await node.add_user("disp-r", "dispatcher", name="调度员张" if zh else "Ops Zhang")
    await node.add_user("med-r", "mediator", name="调解员周" if zh else "Mediator Zhou")
    reporter = await open_page(node, "/", locale=locale)
    ref = await ask_for_help(reporter, "dispute", "邻居吵架" if zh else "neighbours quarrelling")
    rows = await sql(node, "SELECT id FROM incidents WHERE ref_no = $1", ref)
    inc = {"id": str(rows[0]["id"]), "ref_no": ref}

    disp = await open_page(node, "/dispatch", locale=locale)
    await login(disp, "disp-r")
    await disp.locator(f'[data-testid=incident-row][data-incident-id="{inc["id"]}"]').click()
    form = disp.get_by_test_id("refer-form")
    await expect(form).to_be_visible()
    await disp.get_by_test_id("refer").click()                 # nothing typed: said beside the button
    await expect(form.locator(".msg")).to_contain_text("请简要说明" if zh else "in a few words")
    await disp.get_by_test_id("refer-summary").fill("楼上漏水" if zh else "Water through the ceiling")
    await disp.get_by_test_id("refer-other-name").fill("刘伟" if zh else "Liu Wei")
    await check(disp, lang, "dispatch-refer-form")
    await disp.get_by_test_id("refer-other-name").press("Enter")

    await expect(disp.get_by_test_id("incident-case")).to_contain_text("M-")
    case_row = (await sql(node, "SELECT id, ref_no FROM cases WHERE incident_id = $1", uuid.UUID(inc["id"])))[0]
    told = {"case_id": str(case_row["id"]), "case_ref": case_row["ref_no"]}
    case_ref = told["case_ref"]
    await expect(disp.get_by_test_id("incident-case")).to_contain_text(case_ref)
    # the reporter's page says so, and leads into the case, where they are a party already
    await expect(reporter.get_by_test_id("incident-case")).to_contain_text(case_ref)
    await check(reporter, lang, "resident-referred")
    await reporter.get_by_test_id("incident-case-link").click()
    await expect(reporter.get_by_test_id("case-status")).to_have_attribute("data-status", "filed")
    await expect(reporter.locator("#c-ref")).to_have_text(case_ref)
    await expect(reporter.get_by_test_id("room-tab")).to_have_count(2)       # joint and their own caucus
    await expect(form).to_be_hidden()                          # closed `referred`: nothing more to refer
    await check(disp, lang, "dispatch-referred")

    med = await open_page(node, "/mediate", locale=locale)
    await login(med, "med-r")
    await med.locator(f'[data-testid=case-row][data-case-id="{told["case_id"]}"]').click()
    await expect(med.get_by_test_id("case-incident")).to_have_text(inc["ref_no"])
    await expect(med.locator("#c-parties")).to_contain_text("刘伟" if zh else "Liu Wei")
    await check(med, lang, "mediate-referred-case")


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_the_responder_on_a_dispute_refers_it_from_the_job_card(node: Any, open_page: OpenPage,
                                                                     lang: str) -> None:
    zh = lang == "zh"
    locale = "zh-CN" if zh else "en-US"
    await node.add_user("grid-r", "responder", name="网格员李" if zh else "Grid worker Li", skills=["general"])
    page = await open_page(node, "/responder", locale=locale)
    await login(page, "grid-r")
    await go_on_duty(page)
    reporter = await open_page(node, "/", locale=locale)
    ref = await ask_for_help(reporter, "dispute", "邻居吵架" if zh else "neighbours quarrelling")
    await page.get_by_test_id("accept").click()
    await expect(page.get_by_test_id("incident-status")).to_have_attribute("data-status", "assigned")
    form = page.get_by_test_id("refer-form")
    await expect(form).to_be_visible()
    await page.get_by_test_id("refer-summary").fill("噪音" if zh else "Noise at night")
    await page.get_by_test_id("refer-other-name").fill("楼上住户" if zh else "Upstairs neighbour")
    await check(page, lang, "responder-refer-form")
    await page.get_by_test_id("refer").click()
    await expect(page.get_by_test_id("incident-case")).to_contain_text("M-")
    case_ref = (await sql(node, "SELECT c.ref_no FROM cases c JOIN incidents i ON i.id = c.incident_id"
                                " WHERE i.ref_no = $1", ref))
    assert case_ref and case_ref[0]["ref_no"] in (await page.get_by_test_id("incident-case").text_content() or "")
    await expect(form).to_be_hidden()
    await expect(page.get_by_test_id("incident-status")).to_have_attribute("data-status", "resolved")
    await expect(reporter.get_by_test_id("incident-case")).to_contain_text(case_ref[0]["ref_no"])
    await check(page, lang, "responder-referred")
