"""The call-taker's flow (issue 13), keyboard only: N opens the form, a digit picks the category, the
address box finds the place in the gazetteer as one types, Enter sends; a responder near the place gets
the offer and the caller's phone the status SMS (through the Twilio stand-in). A second call from the
same phone lists the first as a possible duplicate, and one key attaches it. Both languages, axe-clean,
screenshots on a phone and a desktop."""
from __future__ import annotations

from typing import Any

import pytest

from testkit.runtime import until
from tests.e2e.helpers import CITY, NEARBY, OpenPage, expect, go_on_duty, login
from tests.e2e.test_screens import both_sizes

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

CALLER = "+8613800138333"
PLACES = f"""name,address,lat,lon,aliases
和平医院,静安区和平路12号 (12 Heping Road),{CITY['latitude']},{CITY['longitude']},Heping Hospital
和平公园,静安区和平路80号 (80 Heping Road),{CITY['latitude'] + 0.01},{CITY['longitude']},Heping Park
"""


@pytest.mark.config(dispatch_offer_timeout_s=60)
@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_call_taker_keyboard_only(cluster: Any, fake: Any, open_page: OpenPage, lang: str,
                                        tmp_path: Any) -> None:
    for k, v in fake.config().items():
        cluster.env["HELPLINE_" + k.upper()] = v
    node = await cluster.start_node()
    gazetteer = tmp_path / "places.csv"
    gazetteer.write_text(PLACES, encoding="utf-8")
    assert cluster.cli("places", "import", str(gazetteer)).returncode == 0
    locale = "zh-CN" if lang == "zh" else "en-US"
    await node.add_user("medic", "responder", name="Li Wei", skills=["medical"])
    await node.add_user("taker", "dispatcher", name="Zhang Min")
    resp = await open_page(node, "/responder", position=NEARBY)
    await login(resp, "medic")
    await go_on_duty(resp)
    disp = await open_page(node, "/dispatch", locale=locale)
    await login(disp, "taker")
    await expect(disp.get_by_test_id("responder-row")).to_have_attribute("data-status", "available")

    kb = disp.keyboard
    await kb.press("n")
    form = disp.get_by_test_id("newcall")
    await expect(form).to_be_visible()
    await kb.press("1")                                   # medical
    await expect(disp.get_by_test_id("newcall-name")).to_be_focused()
    await kb.type("Zhao Lan")
    await kb.press("Enter")
    await kb.type("138 0013 8333")
    await kb.press("Enter")
    await expect(disp.get_by_test_id("newcall-address")).to_be_focused()
    await kb.type("heping hosp" if lang == "en" else "和平医")
    option = disp.get_by_test_id("newcall-place-option").first
    await expect(option).to_contain_text("和平医院")
    await expect(option).to_have_attribute("aria-selected", "true")
    await both_sizes(disp, lang, "newcall-form")
    await disp.set_viewport_size({"width": 1280, "height": 800})
    await disp.get_by_test_id("newcall-address").focus()
    await kb.press("Enter")                               # picks the highlighted place
    await expect(disp.get_by_test_id("newcall-note")).to_be_focused()
    await expect(disp.get_by_test_id("newcall-address")).to_have_value("和平医院")
    await kb.type("fell in the garden, conscious")
    await kb.press("Enter")                               # sends

    created = disp.get_by_test_id("newcall-created")
    await expect(created).to_be_visible()
    iid = await created.get_attribute("data-incident-id")
    await expect(resp.get_by_test_id("offer")).to_be_visible()
    await expect(resp.get_by_test_id("offer")).to_contain_text("fell in the garden")
    texts = await until(lambda: fake.to(CALLER), what="the caller's status SMS")
    assert "求助H-" in texts[0]["Body"]                  # +86: in Chinese, with the reference
    await expect(disp.get_by_test_id("newcall-done")).to_be_focused()
    await kb.press("Enter")
    await expect(form).to_be_hidden()
    row = disp.locator(f'[data-testid=incident-row][data-incident-id="{iid}"]')
    await expect(row).to_have_attribute("data-status", "offered")

    # the same phone calls again: the first call is offered as a duplicate; key 1 attaches it
    await kb.press("N")
    await kb.press("1")
    await kb.press("Enter")
    await kb.type("13800138333")
    await kb.press("Enter")
    await kb.type("the garden of the hospital")
    await kb.press("Enter")                               # no place picked: the words are the address
    await kb.type("again")
    await kb.press("Enter")
    dup = disp.get_by_test_id("newcall-duplicate")
    await expect(dup).to_have_count(1)
    await expect(dup).to_have_attribute("data-incident-id", iid or "")
    await both_sizes(disp, lang, "newcall-duplicates")
    await disp.set_viewport_size({"width": 1280, "height": 800})
    await disp.get_by_test_id("newcall-done").focus()
    await kb.press("1")
    await expect(disp.get_by_test_id("newcall-linked")).to_be_visible()
    await expect(disp.get_by_test_id("newcall-linked")).to_have_attribute("data-incident-id", iid or "")
    await kb.press("Escape")
    await expect(form).to_be_hidden()
    # the incident's panel names the caller and the call-taker, never the caller's phone
    await row.click()
    reporter = disp.locator("#d-reporter")
    await expect(reporter).to_contain_text("Zhao Lan")
    await expect(reporter).to_contain_text("Zhang Min")
    await expect(reporter).to_contain_text("call taken by" if lang == "en" else "接警登记")
    assert "8333" not in (await reporter.text_content() or "")
