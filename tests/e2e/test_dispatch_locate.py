"""A dispatcher gives an incident without a usable position its place from the console
(incident.locate): matching runs again and a nearby responder is offered it. The responder's
progress steps carry an optional note that the dispatcher reads in the timeline."""
from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.helpers import CITY, NEARBY, OpenPage, ask_for_help, expect, go_on_duty, login
from tests.e2e.test_screens import check

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

FAR = {**CITY, "latitude": CITY["latitude"] + 0.45}


@pytest.mark.config(dispatch_offer_timeout_s=30)
async def test_dispatcher_locates_an_incident_and_a_nearby_responder_gets_it(node: Any, open_page: OpenPage) -> None:
    await node.add_user("medic9", "responder", name="Li Wei", skills=["medical"])
    await node.add_user("disp9", "dispatcher", name="Zhang Min")
    resp = await open_page(node, "/responder", position=NEARBY)
    await login(resp, "medic9")
    await go_on_duty(resp)
    disp = await open_page(node, "/dispatch")
    await login(disp, "disp9")
    await expect(disp.get_by_test_id("responder-row")).to_have_attribute("data-status", "available")

    # the phone reports a wrong place, 50 km out of town: nobody is near it, it escalates
    res = await open_page(node, "/", position=FAR)
    ref = await ask_for_help(res, "medical")
    row = disp.locator(f'[data-testid=incident-row]:has-text("{ref}")')
    await expect(row).to_have_attribute("data-status", "escalated")
    await expect(resp.get_by_test_id("offer")).to_be_hidden()

    await row.locator("button.ref").click()
    await expect(disp.get_by_test_id("locate")).to_be_visible()
    # "pick on map" fills the fields from a click on the map
    await disp.get_by_test_id("locate-lat").fill("")
    await disp.get_by_test_id("locate-pick").click()
    await expect(disp.get_by_test_id("locate-pick")).to_have_attribute("aria-pressed", "true")
    await disp.locator("#map").click(position={"x": 260, "y": 200})
    await expect(disp.get_by_test_id("locate-lat")).to_have_value(re.compile(r"^-?\d+\.\d{6}$"))
    await expect(disp.get_by_test_id("locate-pick")).to_have_attribute("aria-pressed", "false")
    await check(disp, "en", "dispatch-locate")
    # nonsense is refused on the page
    await disp.get_by_test_id("locate-lat").fill("north")
    await disp.get_by_test_id("locate").click()
    await expect(disp.locator("#locate-msg")).to_have_attribute("data-kind", "error")
    # the exact place, typed in
    await disp.get_by_test_id("locate-lat").fill(str(CITY["latitude"]))
    await disp.get_by_test_id("locate-lon").fill(str(CITY["longitude"]))
    await disp.get_by_test_id("locate").click()

    await expect(resp.get_by_test_id("offer")).to_be_visible()
    await expect(row).to_have_attribute("data-status", "offered")
    await expect(disp.get_by_test_id("locate")).to_be_hidden()  # only queued/escalated incidents are relocated
    await expect(disp.locator("#d-location")).to_contain_text(f'{CITY["latitude"]:.5f}')
    await expect(disp.locator("#timeline")).to_contain_text("position updated")

    await resp.get_by_test_id("accept").click()
    await expect(res.get_by_test_id("incident-status")).to_have_attribute("data-status", "assigned")

    # a progress step with a note for the dispatcher
    await resp.get_by_test_id("progress-note").fill("Gate code 4321 <b>side door</b>")
    await check(resp, "en", "responder-progress-note")
    await resp.get_by_test_id("progress-en_route").click()
    await expect(resp.get_by_test_id("incident-status")).to_have_attribute("data-status", "en_route")
    await expect(resp.get_by_test_id("progress-note")).to_have_value("")
    await expect(row).to_have_attribute("data-status", "en_route")
    await expect(disp.locator("#timeline")).to_contain_text("Gate code 4321 <b>side door</b>")
    await resp.get_by_test_id("progress-on_scene").click()  # and without one
    await expect(row).to_have_attribute("data-status", "on_scene")


@pytest.mark.config(dispatch_offer_timeout_s=30)
async def test_located_incident_that_had_no_position_is_offered(node: Any, open_page: OpenPage) -> None:
    await node.add_user("medic8", "responder", name="Li Wei", skills=["medical"])
    await node.add_user("disp8", "dispatcher", name="Zhang Min")
    resp = await open_page(node, "/responder", position=NEARBY)
    await login(resp, "medic8")
    await go_on_duty(resp)
    disp = await open_page(node, "/dispatch")
    await login(disp, "disp8")
    res = await open_page(node, "/", position=None)  # the browser refuses the location
    ref = await ask_for_help(res, "medical")
    row = disp.locator(f'[data-testid=incident-row]:has-text("{ref}")')
    await expect(row).to_have_attribute("data-status", "escalated")
    await row.locator("button.ref").click()
    await disp.get_by_test_id("locate-lat").fill(str(CITY["latitude"]))
    await disp.get_by_test_id("locate-lon").fill(str(CITY["longitude"]))
    await disp.get_by_test_id("locate").click()
    await expect(resp.get_by_test_id("offer")).to_be_visible()
