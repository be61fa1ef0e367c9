"""The three core pages in a real browser, against a `helpline serve` process.

Resident asks for help -> responder gets the offer and accepts -> resident sees who is
coming -> dispatcher's queue follows every status without a reload; an escalated incident
assigned from the console; a reload mid-incident; a resident's note shown as text.
"""
from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.helpers import (
    CITY,
    NEARBY,
    WS_REFUSED,
    OpenPage,
    ask_for_help,
    expect,
    go_on_duty,
    login,
    record_statuses,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@pytest.mark.config(dispatch_offer_timeout_s=30)
async def test_help_offer_accept_and_progress_seen_live_by_dispatch(node: Any, open_page: OpenPage) -> None:
    await node.add_user("medic1", "responder", name="Li Wei", skills=["medical"])
    await node.add_user("disp1", "dispatcher", name="Zhang Min")

    disp = await open_page(node, "/dispatch")
    await login(disp, "disp1")
    await record_statuses(disp)

    resp = await open_page(node, "/responder", position=NEARBY)
    await login(resp, "medic1")
    await go_on_duty(resp)
    await expect(disp.get_by_test_id("responder-row")).to_have_attribute("data-status", "available")

    res = await open_page(node, "/", position=CITY)
    ref = await ask_for_help(res, "medical")

    offer = resp.get_by_test_id("offer")
    await expect(offer).to_be_visible()
    await expect(resp.locator("#offer-countdown")).to_have_text(re.compile(r"\d+ s"))
    row = disp.locator(f'[data-testid=incident-row]:has-text("{ref}")')
    await expect(row).to_have_attribute("data-status", "offered")
    await expect(disp.get_by_test_id("responder-row")).to_have_attribute("data-status", "offered")

    await resp.get_by_test_id("accept").click()
    await expect(offer).to_be_hidden()
    status = res.get_by_test_id("incident-status")
    await expect(status).to_have_attribute("data-status", "assigned")
    await expect(res.get_by_test_id("responder-name")).to_have_text("Li Wei")
    await expect(status).to_contain_text("Li Wei")
    await expect(row).to_have_attribute("data-status", "assigned")
    await expect(row).to_contain_text("Li Wei")
    await expect(disp.get_by_test_id("responder-row")).to_have_attribute("data-status", "busy")

    for step in ("en_route", "on_scene"):
        await resp.get_by_test_id(f"progress-{step}").click()
        await expect(resp.get_by_test_id("incident-status")).to_have_attribute("data-status", step)
        await expect(status).to_have_attribute("data-status", step)
        await expect(row).to_have_attribute("data-status", step)

    await resp.get_by_test_id("progress-resolved").click()
    await resp.get_by_test_id("resolve-confirm").click()  # resolving asks first
    await expect(status).to_have_attribute("data-status", "resolved")
    await expect(res.get_by_test_id("cancel-button")).to_be_hidden()
    await expect(disp.get_by_test_id("incident-row")).to_have_count(0)  # the queue holds open incidents only
    await expect(disp.get_by_test_id("responder-row")).to_have_attribute("data-status", "available")

    seen = await disp.evaluate("window.__seen")  # still there: the page never reloaded
    assert [s for s in seen if s in ("offered", "assigned", "en_route", "on_scene")] == [
        "offered", "assigned", "en_route", "on_scene"], seen


async def test_escalated_incident_is_assigned_from_dispatch(node: Any, open_page: OpenPage) -> None:
    # the only responder has no medical skill: nobody is offered the call, it escalates
    await node.add_user("fire1", "responder", name="Chen Jie", skills=["fire"])
    await node.add_user("disp2", "dispatcher", name="Wu Fang")
    disp = await open_page(node, "/dispatch")
    await login(disp, "disp2")

    res = await open_page(node, "/")
    ref = await ask_for_help(res, "medical")
    await expect(res.get_by_test_id("incident-status")).to_have_attribute("data-status", "escalated")

    row = disp.locator(f'[data-testid=incident-row]:has-text("{ref}")')
    await expect(row).to_have_attribute("data-status", "escalated")
    await expect(row).to_have_class(re.compile("status-escalated"))
    await expect(row.get_by_test_id("assign")).to_be_disabled()  # nobody on duty yet

    resp = await open_page(node, "/responder", position=NEARBY)
    await login(resp, "fire1")
    await go_on_duty(resp)

    await expect(row.get_by_test_id("assign-responder")).to_contain_text("Chen Jie")
    await expect(row.get_by_test_id("assign")).to_be_enabled()
    await row.get_by_test_id("assign").click()

    await expect(row).to_have_attribute("data-status", "assigned")
    await expect(row.get_by_test_id("assign")).to_have_count(0)
    await expect(resp.get_by_test_id("incident-status")).to_have_attribute("data-status", "assigned")
    await expect(res.get_by_test_id("incident-status")).to_have_attribute("data-status", "assigned")
    await expect(res.get_by_test_id("responder-name")).to_have_text("Chen Jie")

    # the timeline of the incident, from its event log
    await row.locator("button.ref").click()
    await expect(disp.locator("#timeline li")).to_have_count(3)  # reported, escalated, assigned
    await expect(disp.locator("#timeline")).to_contain_text("Wu Fang")


async def test_resident_reload_mid_incident_shows_the_same_incident(node: Any, open_page: OpenPage) -> None:
    res = await open_page(node, "/")
    ref = await ask_for_help(res, "fire")
    status = res.get_by_test_id("incident-status")
    await expect(status).to_have_attribute("data-status", "escalated")

    await res.reload()
    await expect(res.get_by_test_id("incident-ref")).to_have_text(ref)
    await expect(status).to_have_attribute("data-status", "escalated")
    await expect(res.get_by_test_id("help-button")).to_be_hidden()
    await expect(res.get_by_test_id("cancel-button")).to_be_visible()

    # cancelling, then asking again, gives a new incident
    await res.get_by_test_id("cancel-button").click()
    await expect(status).not_to_have_attribute("data-status", "cancelled")  # it asks first
    await res.get_by_test_id("cancel-confirm").click()
    await expect(status).to_have_attribute("data-status", "cancelled")
    await res.locator("#again").click()
    assert await ask_for_help(res, "other") != ref


async def test_unacknowledged_request_is_resent_with_the_same_request_id(node: Any, open_page: OpenPage) -> None:
    res = await open_page(node, "/", ignore=WS_REFUSED)
    await expect(res.locator(".conn")).to_have_attribute("data-state", "live")
    # the request was stored but its answer never came (the tab died): on load it goes again
    pending = {"req": {"request_id": "req-e2e-1", "category": "police", "lat": CITY["latitude"],
                       "lon": CITY["longitude"], "accuracy_m": 20}, "located": True}
    await res.evaluate("p => localStorage.setItem('helpline.resident.pending', JSON.stringify(p))", pending)
    await res.reload()
    ref = res.get_by_test_id("incident-ref")
    await expect(ref).to_have_text(re.compile(r"\w+-?\d+"))
    first = await ref.text_content()
    assert await res.evaluate("localStorage.getItem('helpline.resident.pending')") is None

    await res.evaluate("p => localStorage.setItem('helpline.resident.pending', JSON.stringify(p))", pending)
    await res.reload()
    await expect(ref).to_have_text(first or "")
    await expect(res.get_by_test_id("incident-status")).to_have_attribute("data-status", "escalated")


async def test_note_with_markup_is_shown_as_text(node: Any, open_page: OpenPage) -> None:
    await node.add_user("disp3", "dispatcher", name="Dispatcher")
    note = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><b>bold</b>'
    res = await open_page(node, "/")
    ref = await ask_for_help(res, "dispute", note=note)
    await expect(res.get_by_test_id("incident-note")).to_have_text(note)
    assert await res.locator("[data-testid=incident-note] img, [data-testid=incident-note] b").count() == 0

    disp = await open_page(node, "/dispatch")
    await login(disp, "disp3")
    await disp.locator(f'[data-testid=incident-row]:has-text("{ref}") button.ref').click()
    await expect(disp.locator("#d-note")).to_have_text(note)
    assert await disp.locator("#d-note img, #d-note b").count() == 0
    for page in (res, disp):
        assert await page.evaluate("window.__pwned") is None


async def test_connection_indicator_and_resend_across_a_server_restart(node: Any, open_page: OpenPage) -> None:
    await node.add_user("disp4", "dispatcher", name="Dispatcher")
    disp = await open_page(node, "/dispatch", ignore=WS_REFUSED)
    await login(disp, "disp4")
    res = await open_page(node, "/", ignore=WS_REFUSED)
    await expect(res.locator(".conn")).to_have_attribute("data-state", "live")

    node.kill()
    for page in (disp, res):
        await expect(page.locator(".conn")).not_to_have_attribute("data-state", "live", timeout=10000)
    # pressed while the service is down: kept, and sent once it is back
    await res.get_by_test_id("help-button").click()
    await expect(res.get_by_test_id("incident-status")).to_have_text(re.compile("Sending"))
    assert await res.evaluate("localStorage.getItem('helpline.resident.pending')") is not None

    await node.start()
    for page in (disp, res):
        await expect(page.locator(".conn")).to_have_attribute("data-state", "live", timeout=30000)
    await expect(res.get_by_test_id("incident-ref")).to_have_text(re.compile(r"\w+-?\d+"), timeout=30000)
    await expect(disp.get_by_test_id("incident-row")).to_have_count(1)
