"""The mediation page (/mediate) in a real browser: residents open and join cases, a mediator
works one to a signed agreement, an agency sees the joint room only, reconnects lose nothing."""
from __future__ import annotations

import hashlib
import io
import re
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pypdf
import pytest

from tests.e2e.helpers import WS_CONTROL, WS_REFUSED, OpenPage, expect, login, open_case, send_message
from tests.e2e.test_screens import PHONE, check

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def row(page: Any, case_id: str) -> Any:
    return page.locator(f'[data-testid=case-row][data-case-id="{case_id}"]')


def tab(page: Any, room: str) -> Any:
    return page.locator(f'[data-testid=room-tab][data-room="{room}"]')


async def messages(page: Any) -> list[str]:
    return [(await m.locator(".body").text_content() or "") for m in await page.get_by_test_id("message").all()]


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_case_to_settlement_with_two_residents_a_mediator_and_an_agency(
        node: Any, open_page: OpenPage, lang: str) -> None:
    zh = lang == "zh"
    locale = "zh-CN" if zh else "en-US"
    await node.add_user("med1", "mediator", name="王芳" if zh else "Wang Fang")
    court = await node.add_user("court1", "agency", name="区人民法院" if zh else "District Court")
    ann, bo = ("安女士", "博先生") if zh else ("Ann", "Bo")
    summary = "楼上每晚午夜后噪音<b>很大</b>" if zh else "Noise after midnight <b>every</b> night"

    # a resident opens a case and is shown the code to pass on
    filer = await open_page(node, "/mediate", locale=locale)
    await check(filer, lang, "mediate-start")
    case_id = await open_case(filer, summary, [(bo, "")], my_name=ann)
    await expect(filer.get_by_test_id("case-status")).to_have_attribute("data-status", "filed")
    await expect(filer.locator("#c-summary")).to_have_text(summary)  # as text, never as HTML
    code_item = filer.get_by_test_id("invite-code")
    await expect(code_item).to_have_count(1)
    code = await code_item.get_attribute("data-code") or ""
    assert re.fullmatch(r"[2-9A-Z]{10}", code), code     # 10 since issue 20
    await expect(filer.get_by_test_id("room-tab")).to_have_count(2)  # joint + their own caucus
    await check(filer, lang, "mediate-filed")
    # the page sent case.open with a request_id, so a re-send after a lost answer cannot open it twice
    conn = await asyncpg.connect(node.database_url)
    try:
        assert await conn.fetchval("SELECT request_id FROM cases WHERE id = $1", uuid.UUID(case_id))
    finally:
        await conn.close()

    # the other resident joins with the code, in another browser context
    other = await open_page(node, "/mediate", locale=locale)
    await other.get_by_test_id("join-code").fill(code.lower())  # case and dashes are forgiven
    await other.get_by_test_id("join").click()
    await expect(other.get_by_test_id("case-status")).to_have_attribute("data-status", "filed")
    await expect(other.get_by_test_id("join-codes")).to_be_hidden()  # only the filer sees codes
    await expect(filer.get_by_test_id("join-codes")).to_be_hidden()  # everyone named has joined
    await expect(filer.locator("#c-parties li")).to_have_count(2)

    # a mediator sees it live, takes it
    med = await open_page(node, "/mediate", locale=locale)
    await login(med, "med1")
    await row(med, case_id).click()
    await expect(med.locator("#take")).to_be_visible()
    await med.get_by_test_id("take").click()
    await expect(med.get_by_test_id("case-status")).to_have_attribute("data-status", "in_mediation")
    await expect(filer.get_by_test_id("case-status")).to_have_attribute("data-status", "in_mediation")
    await expect(other.get_by_test_id("case-status")).to_have_attribute("data-status", "in_mediation")
    await expect(med.get_by_test_id("room-tab")).to_have_count(3)  # joint + one caucus per party
    caucus_ann = await med.locator('[data-testid=room-tab][data-room^="caucus:"]').first.get_attribute("data-room")
    caucus_bo = await med.locator('[data-testid=room-tab][data-room^="caucus:"]').nth(1).get_attribute("data-room")

    # joint room: everyone, live
    await send_message(med, "Welcome, both of you.")
    for page in (filer, other):
        await expect(page.get_by_test_id("message").filter(has_text="Welcome, both of you.")).to_have_count(1)
    await send_message(other, "Thank you.")
    await expect(med.get_by_test_id("message").filter(has_text="Thank you.")).to_have_count(1)

    # caucus with the filer: nobody else
    await tab(med, caucus_ann).click()
    await send_message(med, "Ann, what would you accept?")
    await expect(tab(filer, caucus_ann)).to_contain_text("1")  # an unread count on the tab
    await tab(filer, caucus_ann).click()
    await expect(filer.get_by_test_id("message").filter(has_text="what would you accept")).to_have_count(1)
    await send_message(filer, "Quiet after 22:00.")
    await expect(med.get_by_test_id("message").filter(has_text="Quiet after 22:00.")).to_have_count(1)
    assert await tab(other, caucus_ann).count() == 0
    await tab(other, caucus_bo).click()
    await expect(other.locator("#messages-empty")).to_be_visible()
    await tab(other, "joint").click()
    assert not any("accept" in m or "22:00" in m for m in await messages(other))

    # an agency, invited by account id, sees the joint room only
    await med.locator("#tools summary").click()
    await med.get_by_test_id("agency-id").fill(court)
    await med.get_by_test_id("invite").click()
    await expect(med.locator("#c-agencies")).to_contain_text("区人民法院" if zh else "District Court")
    agency = await open_page(node, "/mediate", locale=locale)
    await login(agency, "court1")
    await row(agency, case_id).click()
    await expect(agency.get_by_test_id("room-tab")).to_have_count(1)
    await expect(agency.get_by_test_id("room-tab")).to_have_attribute("data-room", "joint")
    await expect(agency.get_by_test_id("message").filter(has_text="Welcome, both of you.")).to_have_count(1)
    assert not any("accept" in m or "22:00" in m for m in await messages(agency))
    await expect(agency.get_by_test_id("propose")).to_be_hidden()
    await expect(agency.get_by_test_id("sign")).to_be_hidden()

    # the agreement: proposed, both sign, settled everywhere
    text = "1. 工作日 22:00 后保持安静。\n2. 周末 23:00 后保持安静。" if zh else \
        "1. Quiet after 22:00 on weekdays.\n2. Quiet after 23:00 at weekends."
    await tab(med, "joint").click()
    await med.get_by_test_id("agreement-text").fill(text)
    await med.get_by_test_id("propose").click()
    for page in (filer, other, agency):
        await expect(page.get_by_test_id("case-status")).to_have_attribute("data-status", "agreement_proposed")
        await expect(page.get_by_test_id("agreement-shown")).to_have_text(text)
    await filer.get_by_test_id("sign").click()
    await filer.get_by_test_id("sign-confirm").click()  # signing asks first
    await expect(filer.get_by_test_id("sign")).to_be_hidden()
    await expect(med.get_by_test_id("signatures").locator("li.signed")).to_have_count(1)
    await check(med, lang, "mediate-mediator-proposed")
    await check(other, lang, "mediate-party-proposed")
    await other.get_by_test_id("sign").click()
    await other.get_by_test_id("sign-confirm").click()

    sha = hashlib.sha256(text.encode()).hexdigest()
    for page in (filer, other, med, agency):
        await expect(page.get_by_test_id("case-status")).to_have_attribute("data-status", "settled")
        settlement = page.get_by_test_id("settlement")
        await expect(settlement).to_be_visible()
        await expect(settlement.locator("#st-text")).to_have_text(text)
        await expect(settlement.locator("#st-signers li")).to_have_count(2)
        await expect(settlement.locator("#st-signers")).to_contain_text(ann)
        await expect(settlement.locator("#st-signers")).to_contain_text(bo)
        await expect(page.get_by_test_id("settled-sha256")).to_have_text(sha)
        await expect(page.get_by_test_id("message-input")).to_be_hidden()  # a final case takes no messages
    await expect(row(med, case_id)).to_have_attribute("data-status", "settled")
    # the agreement as a PDF (issue 15): the button in the page's language; the file holds the signed text
    for page in (filer, med):
        button = page.get_by_test_id("agreement-pdf")
        await expect(button).to_have_text("下载协议书（PDF）" if zh else "Download agreement (PDF)")
        async with page.expect_download() as dl:
            await button.click()
        download = await dl.value
        assert download.suggested_filename.endswith(".pdf")
        body = Path(await download.path()).read_bytes()
        back = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(body)).pages)
        back = re.sub(r"[\s\x00]+", "", back)
        assert re.sub(r"\s+", "", text) in back and sha in back
    await check(med, lang, "mediate-mediator-settled")
    await check(filer, lang, "mediate-party-settled")
    await check(agency, lang, "mediate-agency-settled")

    # a reload brings the resident back to their cases, with the settled one on screen
    await other.reload()
    await expect(other.get_by_test_id("case-status")).to_have_attribute("data-status", "settled")
    await expect(other.get_by_test_id("settled-sha256")).to_have_text(sha)
    await other.set_viewport_size(PHONE)
    await check(other, lang, "mediate-party-settled-phone")


async def test_mediator_sees_new_cases_live_and_the_filer_withdraws(node: Any, open_page: OpenPage) -> None:
    await node.add_user("med2", "mediator", name="Wang Fang")
    med = await open_page(node, "/mediate")
    await login(med, "med2")
    await expect(med.locator("#cases-empty")).to_be_visible()

    filer = await open_page(node, "/mediate", viewport=PHONE)
    await check(filer, "en", "mediate-start-phone")
    case_id = await open_case(filer, "Unpaid wages for March", [("Boss Li", "13800138000"), ("Foreman Wu", "")],
                              category="labour")
    await expect(filer.get_by_test_id("invite-code")).to_have_count(2)
    await expect(row(med, case_id)).to_have_attribute("data-status", "filed")  # pushed, no reload
    await row(med, case_id).click()
    await expect(med.locator("#c-parties")).to_contain_text("Boss Li")
    await expect(med.locator("#c-parties")).to_contain_text("*")  # a watching mediator sees phones masked
    await expect(med.get_by_test_id("room-tab")).to_have_count(0)  # not a participant before taking it

    await check(filer, "en", "mediate-filed-phone")
    await filer.get_by_test_id("withdraw").click()
    await filer.get_by_test_id("withdraw-confirm").click()
    await expect(filer.get_by_test_id("case-status")).to_have_attribute("data-status", "withdrawn")
    await expect(filer.get_by_test_id("withdraw")).to_be_hidden()
    await expect(filer.get_by_test_id("join-codes")).to_be_hidden()
    await expect(med.get_by_test_id("case-status")).to_have_attribute("data-status", "withdrawn")
    await expect(row(med, case_id)).to_have_count(0)  # no longer open, and never theirs


async def test_a_dropped_connection_misses_nothing_and_resends_once(node: Any, open_page: OpenPage) -> None:
    await node.add_user("med3", "mediator", name="Wang Fang")
    filer = await open_page(node, "/mediate", init=WS_CONTROL, ignore=WS_REFUSED)
    case_id = await open_case(filer, "Shared wall is cracking", [("Neighbour Zhou", "")], category="property")
    med = await open_page(node, "/mediate")
    await login(med, "med3")
    await row(med, case_id).click()
    await med.get_by_test_id("take").click()
    await expect(med.get_by_test_id("room-tab")).to_have_count(2)
    for i in range(1, 4):
        await send_message(med, f"before {i}")
    await expect(filer.get_by_test_id("message")).to_have_count(3)

    # the resident's link drops; messages keep coming, and the resident writes one meanwhile
    await filer.evaluate("window.__wsCut(true)")
    await expect(filer.locator(".conn")).not_to_have_attribute("data-state", "live")
    for i in range(1, 4):
        await send_message(med, f"while away {i}")
    await filer.get_by_test_id("message-input").fill("written offline")
    await filer.get_by_test_id("send").click()
    await expect(filer.get_by_test_id("message-pending")).to_have_count(1)
    assert await filer.evaluate("Object.keys(localStorage).some(k => k.startsWith('helpline.mediate.outbox.') "
                                "&& localStorage.getItem(k).includes('written offline'))")

    await filer.evaluate("window.__wsCut(false)")
    await expect(filer.locator(".conn")).to_have_attribute("data-state", "live", timeout=30000)
    await expect(filer.get_by_test_id("message-pending")).to_have_count(0)
    await expect(filer.get_by_test_id("message")).to_have_count(7)
    await expect(med.get_by_test_id("message").filter(has_text="written offline")).to_have_count(1)
    seqs = await filer.eval_on_selector_all("[data-testid=message]", "els => els.map(e => Number(e.dataset.seq))")
    assert seqs == list(range(1, 8)), seqs  # in order, no hole, no duplicate

    # a reload: the history again from the start, still exactly once each
    await filer.reload()
    await expect(filer.get_by_test_id("message")).to_have_count(7)
    await send_message(med, "after the reload")
    await expect(filer.get_by_test_id("message")).to_have_count(8)
