"""The mediation page: a mediator takes a case and talks with a party who joined by code."""
from __future__ import annotations

import os
from typing import Any

import pytest

from tests.e2e.helpers import SHOTS, OpenPage, expect, login

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


async def test_mediator_and_party_talk_and_agree(node: Any, open_page: OpenPage) -> None:
    await node.add_user("med1", "mediator", name="Wang Fang")
    filer = await node.resident()
    summary = "Noise after midnight <b>every</b> night"
    case = (await filer.ok("case.open", category="neighbour", summary=summary,
                           other_parties=[{"name": "Mr Zhao"}]))["case"]

    med = await open_page(node, "/mediate")
    await login(med, "med1")
    await med.locator(f'[data-testid=case-row][data-case-id="{case["id"]}"]').click()
    await expect(med.locator("#c-summary")).to_have_text(summary)  # shown as text
    await med.locator("#take").click()
    await expect(med.locator("#take")).to_be_hidden()
    await expect(med.get_by_test_id("room-tab")).to_have_count(2)  # joint + the filer's caucus
    await med.get_by_test_id("message-input").fill("Hello, both of you.")
    await med.get_by_test_id("send").click()
    await expect(med.get_by_test_id("message")).to_contain_text("Hello, both of you.")

    party = await open_page(node, "/mediate")
    await party.get_by_test_id("join-code").fill(case["join_code"])
    await party.get_by_test_id("join").click()
    await expect(party.get_by_test_id("message")).to_contain_text("Hello, both of you.")
    await party.get_by_test_id("message-input").fill("Thank you.")
    await party.get_by_test_id("send").click()
    await expect(med.get_by_test_id("message").last).to_contain_text("Thank you.")  # pushed live

    await med.get_by_test_id("agreement-text").fill("Quiet after 22:00 on weekdays.")
    await med.get_by_test_id("propose").click()
    await expect(party.locator("#agreement-shown")).to_have_text("Quiet after 22:00 on weekdays.")
    await party.get_by_test_id("sign").click()
    await expect(party.get_by_test_id("sign")).to_be_hidden()
    await expect(med.locator("#c-parties")).to_contain_text("signed")
    os.makedirs(SHOTS, exist_ok=True)
    await med.screenshot(path=f"{SHOTS}/mediate-mediator-en.png", full_page=True)
    await party.screenshot(path=f"{SHOTS}/mediate-party-en.png", full_page=True)
