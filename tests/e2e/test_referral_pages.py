"""A dispute referred into mediation from the dispatch console (issue 15), in both languages: the incident
panel's "Refer to mediation" form, the case it names afterwards, the reporter told on their stream, and the
mediation page's case view naming the incident. Screenshots under /tmp/shots."""
from __future__ import annotations

import uuid
from typing import Any

import pytest

from testkit.geo import near
from tests.e2e.helpers import OpenPage, expect, login
from tests.e2e.test_screens import check

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_a_dispatcher_refers_a_dispute_and_both_pages_link_the_records(node: Any, open_page: OpenPage,
                                                                             lang: str) -> None:
    zh = lang == "zh"
    locale = "zh-CN" if zh else "en-US"
    await node.add_user("disp-r", "dispatcher", name="调度员张" if zh else "Ops Zhang")
    await node.add_user("med-r", "mediator", name="调解员周" if zh else "Mediator Zhou")
    resident = await node.resident()
    inc = (await resident.ok("help.request", request_id=uuid.uuid4().hex, category="dispute",
                             note="邻居吵架" if zh else "neighbours quarrelling", **near(0)))["incident"]

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

    told = await resident.push("incident.referred", lambda m: m["incident_id"] == inc["id"])
    case_ref = told["case_ref"]
    await expect(disp.get_by_test_id("incident-case")).to_contain_text(case_ref)
    await expect(form).to_be_hidden()                          # closed `referred`: nothing more to refer
    await check(disp, lang, "dispatch-referred")

    med = await open_page(node, "/mediate", locale=locale)
    await login(med, "med-r")
    await med.locator(f'[data-testid=case-row][data-case-id="{told["case_id"]}"]').click()
    await expect(med.get_by_test_id("case-incident")).to_have_text(inc["ref_no"])
    await expect(med.locator("#c-parties")).to_contain_text("刘伟" if zh else "Liu Wei")
    await check(med, lang, "mediate-referred-case")
