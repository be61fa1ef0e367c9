"""/mediate for a mediator who belongs to grids (issue 14): the waiting cases of their area come first,
each marked "Your area", with the case's grid on its row; live, too. Both languages; axe-core; screenshots
on a phone and a desktop in /tmp/shots."""
from __future__ import annotations

from typing import Any

import pytest

from testkit.gridsql import belong, insert_city
from tests.e2e.helpers import OpenPage, expect, login
from tests.e2e.test_screens import both_sizes

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

VISITORS = [{"name": "Wang Fang"}, {"name": "Zhao Lei"}]


@pytest.mark.config(mediation_area_first_s=0)
@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_a_mediator_sees_their_area_first(node: Any, open_page: OpenPage, lang: str) -> None:
    zh = lang == "zh"
    await insert_city(node.database_url)
    clerk = await node.user("clerk", name="Desk Qian")

    async def walk_in(summary: str, grid: str | None) -> str:
        r = await clerk.ok("case.open", category="neighbour", summary=summary, parties=VISITORS,
                           **({"grid": grid} if grid else {}))
        return str(r["case"]["id"])

    pine = await walk_in("Parking in Pine", "G21")
    lotus = await walk_in("Noise in Lotus", "G12")
    nowhere = await walk_in("A fence somewhere", None)
    me = await node.add_user("med1", "mediator", name="孙调解" if zh else "Sun Mediator")
    await belong(node.database_url, me, "G11")            # a grid of Lotus: all of Lotus is their area

    page = await open_page(node, "/mediate", locale="zh-CN" if zh else "en-US")
    await login(page, "med1")
    case_rows = page.get_by_test_id("case-row")
    await expect(case_rows).to_have_count(3)
    # the first group is their area, its case marked; the others follow without the mark
    first_group = page.locator("#cases h3.group").first
    await expect(first_group).to_have_text(("本辖区：等待受理" if zh else "Your area: waiting for a mediator") + " (1)")
    await expect(case_rows.first).to_have_attribute("data-case-id", lotus)
    await expect(case_rows.first.get_by_test_id("in-area")).to_have_text("本辖区" if zh else "Your area")
    await expect(case_rows.first.get_by_test_id("case-grid")).to_contain_text("Lotus 2")
    assert [await r.get_attribute("data-case-id") for r in await case_rows.all()][1:] == [pine, nowhere]
    await expect(page.get_by_test_id("in-area")).to_have_count(1)

    # live: a new case in Lotus joins their area's group
    fresh = await walk_in("Dog in Lotus", "C1")
    await expect(page.get_by_test_id("in-area")).to_have_count(2)
    await expect(case_rows.nth(1)).to_have_attribute("data-case-id", fresh)
    await both_sizes(page, lang, "mediate-area")
