"""Inviting an agency from the directory on /mediate (issue 15), in both languages: the type filter, the
search box and the list (those covering the case's area first), used with the keyboard alone; an agency
already in the case cannot be picked again. Screenshots under /tmp/shots."""
from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from testkit.stack import query as sql
from tests.e2e.helpers import OpenPage, expect, login, open_case
from tests.e2e.test_screens import check

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SQUARE = json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]})


def option(page: Any, agency_id: str) -> Any:
    return page.locator(f'[data-testid=agency-option][data-agency-id="{agency_id}"]')


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_a_mediator_invites_an_agency_picked_from_the_directory(node: Any, open_page: OpenPage,
                                                                      lang: str) -> None:
    zh = lang == "zh"
    locale = "zh-CN" if zh else "en-US"
    await node.add_user("med-a", "mediator", name="调解员周" if zh else "Mediator Zhou")
    names = {"court": "滨江人民法庭" if zh else "Riverside People's Court",
             "police": "滨江派出所" if zh else "Riverside Police Station",
             "justice": "山顶司法所" if zh else "Hilltop Justice Office"}
    ids = {kind: await node.add_user(f"{kind}-a", "agency", name=name) for kind, name in names.items()}
    for kind, aid in ids.items():
        await sql(node, "UPDATE accounts SET agency_type = $2 WHERE id = $1", uuid.UUID(aid), kind)
    # the justice office covers the community the case is in; the others cover nothing here
    await sql(node, "INSERT INTO grids (code, name, level, parent, path, geometry, bbox) VALUES"
                    " ('C9', 'C9', 'community', NULL, ARRAY['C9'], $1::jsonb, box(point(0,0), point(1,1)))", SQUARE)
    await sql(node, "INSERT INTO account_grids (account_id, code) VALUES ($1, 'C9')", uuid.UUID(ids["justice"]))

    filer = await open_page(node, "/mediate", locale=locale)
    case_id = await open_case(filer, "楼道堆物" if zh else "Boxes in the stairwell", [("Bo", "")], my_name="Ann")
    await sql(node, "UPDATE cases SET grid_code = 'C9' WHERE id = $1", uuid.UUID(case_id))

    med = await open_page(node, "/mediate", locale=locale)
    await login(med, "med-a")
    await med.locator(f'[data-testid=case-row][data-case-id="{case_id}"]').click()
    await med.get_by_test_id("take").click()
    await expect(med.get_by_test_id("case-status")).to_have_attribute("data-status", "in_mediation")
    await expect(med.get_by_test_id("agency-id")).to_have_count(0)        # the UUID box is gone

    await med.locator("#tools summary").click()
    options = med.get_by_test_id("agency-option")
    await expect(options).to_have_count(3)
    # the one covering the case's area first, then by name
    got = [await o.get_attribute("data-agency-id") for o in await options.all()]
    assert got[0] == ids["justice"], got
    await expect(options.first).to_contain_text("负责本案区域" if zh else "covers this case's area")
    await expect(options.first).to_contain_text("司法所" if zh else "Justice office")

    # the type filter, then the search box (any case)
    await med.get_by_test_id("agency-type").select_option("police")
    await expect(options).to_have_count(1)
    await expect(option(med, ids["police"])).to_be_visible()
    await med.get_by_test_id("agency-type").select_option("")
    await med.get_by_test_id("agency-search").fill("滨江" if zh else "RIVERSIDE")
    await expect(options).to_have_count(2)
    await med.get_by_test_id("agency-search").fill("nobody")
    await expect(med.get_by_test_id("agency-none")).to_be_visible()

    # nothing picked: said beside the button
    await med.get_by_test_id("agency-search").fill("")
    await expect(options).to_have_count(3)
    await med.get_by_test_id("invite").click()
    await expect(med.locator("#invite-form .local-msg")).to_contain_text("请先从列表中选择" if zh else "Pick an agency")
    await check(med, lang, "mediate-agency-directory")

    # the keyboard alone: into the search box, type, Tab into the list, Space picks, Tab to the button, Enter
    await med.get_by_test_id("agency-search").focus()
    await med.keyboard.type("法庭" if zh else "court")
    await expect(options).to_have_count(1)
    await med.keyboard.press("Tab")
    await med.keyboard.press("Space")
    await expect(option(med, ids["court"]).locator("input")).to_be_checked()
    await med.keyboard.press("Tab")
    await expect(med.get_by_test_id("invite")).to_be_focused()
    await med.keyboard.press("Enter")
    await expect(med.locator("#c-agencies")).to_contain_text(names["court"])
    await expect(med.locator("#invite-form .local-msg")).to_contain_text("已邀请" if zh else "was invited")
    # invited: shown as such, not choosable again
    await expect(option(med, ids["court"]).locator("input")).to_be_disabled()
    await expect(option(med, ids["court"])).to_contain_text("已邀请" if zh else "already invited")
    await check(med, lang, "mediate-agency-invited")
    rows = await sql(node, "SELECT account_id FROM case_agencies WHERE case_id = $1", uuid.UUID(case_id))
    assert [str(r["account_id"]) for r in rows] == [ids["court"]]

    # closed `referred` to the police station, picked from the directory: it reads the joint room, nothing more
    await med.get_by_test_id("close-outcome").select_option("referred")
    await expect(med.get_by_test_id("referred-agency").locator(f'option[value="{ids["police"]}"]')).to_have_count(1)
    await med.get_by_test_id("referred-agency").select_option(ids["police"])
    await expect(med.get_by_test_id("referred-name")).to_be_hidden()
    await check(med, lang, "mediate-close-referred")
    await med.get_by_test_id("close-case").click()
    await med.get_by_test_id("close-case-confirm").click()
    await expect(med.get_by_test_id("case-status")).to_have_attribute("data-status", "referred")
    await expect(med.get_by_test_id("case-referred-to")).to_contain_text(names["police"])
    await check(med, lang, "mediate-referred-to")
    police = await open_page(node, "/mediate", locale=locale)
    await login(police, "police-a")
    await police.locator(f'[data-testid=case-row][data-case-id="{case_id}"]').click()
    await expect(police.get_by_test_id("room-tab")).to_have_count(1)
    await expect(police.get_by_test_id("room-tab")).to_have_attribute("data-room", "joint")
    await expect(police.get_by_test_id("send")).to_be_hidden()
