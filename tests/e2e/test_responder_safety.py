"""The responder page tried on a phone as a hurried responder would (issue 19): the accidental
resolve, the silent offer, the stale message, signing out mid-job. Both languages; axe-core on
every state reached.
"""
from __future__ import annotations

import os
import re
from typing import Any

import pytest

from testkit.client import http
from tests.e2e.a11y import assert_accessible
from tests.e2e.helpers import CITY, NEARBY, SHOTS, OpenPage, ask_for_help, expect, go_on_duty, login

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

PHONE = {"width": 390, "height": 844}
LOCALES = {"en": "en-US", "zh": "zh-CN"}
# records what the page asks of the Screen Wake Lock API (headless Chromium has no screen to keep on)
WAKE_LOCK_SPY = """(() => {
  window.__locks = [];
  const fake = {request: async (type) => {
    window.__locks.push(type);
    const l = new EventTarget();
    l.release = async () => { window.__locks.push('released'); };
    return l;
  }};
  Object.defineProperty(Navigator.prototype, 'wakeLock', {get: () => fake, configurable: true});
})();"""


@pytest.mark.config(dispatch_offer_timeout_s=60)
@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_only_the_next_step_and_resolve_asks_first(node: Any, open_page: OpenPage, lang: str) -> None:
    await node.add_user("medic1", "responder", name="Li Wei", skills=["medical"])
    resp = await open_page(node, "/responder", locale=LOCALES[lang], position=NEARBY, viewport=PHONE,
                           init=WAKE_LOCK_SPY)
    await login(resp, "medic1")
    await assert_accessible(resp, f"responder off duty {lang}")
    await go_on_duty(resp)
    assert "screen" in await resp.evaluate("window.__locks")  # the screen stays on while on duty

    res = await open_page(node, "/", locale=LOCALES[lang])
    await ask_for_help(res, "medical")
    banner = resp.get_by_test_id("alert-banner")
    await expect(banner).to_be_visible()  # seen ...
    await expect(banner).to_have_attribute("data-chimes", "1")  # ... and heard
    await assert_accessible(resp, f"responder offer {lang}")
    await resp.get_by_test_id("accept").click()
    await expect(banner).to_be_hidden()

    status = resp.get_by_test_id("incident-status")
    rstatus = res.get_by_test_id("incident-status")
    await expect(status).to_have_attribute("data-status", "assigned")
    # right after accepting, "Resolved" is not there to be tapped; only the next step is
    await expect(resp.get_by_test_id("progress-resolved")).to_be_hidden()
    await expect(resp.get_by_test_id("progress-on_scene")).to_be_hidden()
    await assert_accessible(resp, f"responder job {lang}")
    await resp.get_by_test_id("progress-en_route").click()
    await expect(status).to_have_attribute("data-status", "en_route")
    await expect(resp.get_by_test_id("progress-en_route")).to_be_hidden()
    await expect(resp.get_by_test_id("progress-resolved")).to_be_hidden()
    await resp.get_by_test_id("progress-on_scene").click()
    await expect(status).to_have_attribute("data-status", "on_scene")

    # resolve asks; "not yet" keeps the job open
    await resp.get_by_test_id("progress-resolved").click()
    await expect(resp.get_by_test_id("resolve-confirm")).to_be_visible()
    await assert_accessible(resp, f"responder resolve question {lang}")
    await resp.get_by_test_id("resolve-keep").click()
    await resp.wait_for_timeout(300)
    await expect(rstatus).to_have_attribute("data-status", "on_scene")
    await resp.get_by_test_id("progress-resolved").click()
    await resp.get_by_test_id("resolve-confirm").click()
    await expect(rstatus).to_have_attribute("data-status", "resolved")

    await resp.get_by_test_id("duty-toggle").click()
    await expect(resp.get_by_test_id("duty-toggle")).to_have_attribute("aria-pressed", "false")
    assert (await resp.evaluate("window.__locks"))[-1] == "released"


@pytest.mark.config(dispatch_offer_timeout_s=4, dispatch_max_offers=1)
async def test_stale_message_cleared_and_true_wording(node: Any, open_page: OpenPage) -> None:
    await node.add_user("medic1", "responder", name="Li Wei", skills=["medical"])
    resp = await open_page(node, "/responder", position=NEARBY, viewport=PHONE)
    await login(resp, "medic1")
    await go_on_duty(resp)

    res = await open_page(node, "/")
    await ask_for_help(res, "medical")
    await expect(resp.get_by_test_id("offer")).to_be_visible()
    # unanswered: it escalates; the page does not claim someone else took it
    await expect(res.get_by_test_id("incident-status")).to_have_attribute("data-status", "escalated", timeout=15000)
    msg = resp.locator("#msg")
    await expect(msg).to_contain_text("ran out")
    await expect(msg).not_to_contain_text("someone else")

    res2 = await open_page(node, "/")
    await ask_for_help(res2, "medical")
    await expect(resp.get_by_test_id("offer")).to_be_visible()
    await expect(msg).to_be_hidden()  # the old message is not left under the new call
    banner = resp.get_by_test_id("alert-banner")
    await expect(banner).to_be_visible()
    # the banner and message sit at the top of the page, above the offer card
    top = await banner.bounding_box()
    offer = await resp.get_by_test_id("offer").bounding_box()
    assert top and offer and top["y"] < offer["y"]


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_dispatcher_assignment_is_announced_and_sign_out_mid_job_warns(
        node: Any, open_page: OpenPage, lang: str) -> None:
    await node.add_user("fire1", "responder", name="Chen Jie", skills=["fire"])
    await node.add_user("disp", "dispatcher", name="Wu Fang")
    resp = await open_page(node, "/responder", locale=LOCALES[lang], position=NEARBY, viewport=PHONE)
    await login(resp, "fire1")
    await go_on_duty(resp)
    res = await open_page(node, "/", locale=LOCALES[lang])
    ref = await ask_for_help(res, "medical")  # nobody has the skill: escalated
    disp = await open_page(node, "/dispatch", locale=LOCALES[lang])
    await login(disp, "disp")
    row = disp.locator(f'[data-testid=incident-row]:has-text("{ref}")')
    await expect(row.get_by_test_id("assign")).to_be_enabled()
    await row.get_by_test_id("assign").click()

    banner = resp.get_by_test_id("alert-banner")
    await expect(banner).to_contain_text(ref)
    await expect(banner).to_have_attribute("data-chimes", "1")
    await expect(resp.get_by_test_id("incident-status")).to_have_attribute("data-status", "assigned")

    # signing out mid-job warns; staying keeps the responder signed in and on the job
    await resp.locator("#logout").click()
    warning = resp.get_by_test_id("logout-warning")
    await expect(warning).to_be_visible()
    await assert_accessible(resp, f"responder sign-out warning {lang}")
    await resp.get_by_test_id("logout-stay").click()
    await expect(warning).to_be_hidden()
    await expect(resp.get_by_test_id("incident-status")).to_have_attribute("data-status", "assigned")
    await expect(resp.get_by_test_id("username")).to_be_hidden()
    await resp.locator("#logout").click()
    await resp.get_by_test_id("logout-anyway").click()
    await expect(resp.get_by_test_id("username")).to_be_visible()
    await expect(res.get_by_test_id("incident-status")).to_have_attribute("data-status", re.compile(r"\w+"))


# ---- issue 19 leftovers: something to navigate by, leaving mid-job, true wording --------------------------

SMS_PHONE = "+8613800138000"
DESKTOP = {"width": 1280, "height": 800}


async def sms(node: Any, body: str, phone: str = SMS_PHONE) -> None:
    """A text to the service, as Twilio would deliver it (the console provider's loopback simulator)."""
    st, _ = await http("POST", node.base + "/sms/simulate", json={"from": phone, "body": body})
    assert st == 200


async def shots(page: Any, name: str) -> None:
    """The page now, on a 390x844 phone and a 1280x800 desktop, for a person to look at."""
    os.makedirs(SHOTS, exist_ok=True)
    for size, suffix in ((PHONE, "phone"), (DESKTOP, "desktop")):
        await page.set_viewport_size(size)
        await page.wait_for_timeout(300)
        width = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], (name, suffix, width)  # no sideways scroll
        await assert_accessible(page, f"{name} {suffix}")
        await page.screenshot(path=f"{SHOTS}/{name}-{suffix}.png", full_page=True)
    await page.set_viewport_size(PHONE)


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_on_a_job_the_responder_can_call_the_resident_and_navigate(
        node: Any, open_page: OpenPage, lang: str) -> None:
    medic_id = await node.add_user("medic1", "responder", name="Li Wei", skills=["medical", "general"])
    resp = await open_page(node, "/responder", locale=LOCALES[lang], position=NEARBY, viewport=PHONE)
    await login(resp, "medic1")
    await go_on_duty(resp)
    disp = await node.user("dispatcher")
    await disp.ok("queue.watch")

    # 1. a text from a phone: no position, the words say where; a dispatcher sends the medic
    await sms(node, "HELP my father fell, 5 Elm Street, 3rd floor")
    inc = (await disp.push("incident.updated", lambda m: m["incident"]["channel"] == "sms"))["incident"]
    await disp.ok("incident.assign", incident_id=inc["id"], responder_id=medic_id)
    await expect(resp.get_by_test_id("alert-banner")).to_contain_text(inc["ref_no"])
    call = resp.get_by_test_id("call-resident")
    await expect(call).to_be_visible()
    await expect(call).to_have_attribute("href", f"tel:{SMS_PHONE}")
    await expect(call).to_contain_text("+86 138 0013 8000")
    await expect(resp.get_by_test_id("no-phone")).to_be_hidden()
    await expect(resp.get_by_test_id("job-note")).to_contain_text("5 Elm Street")
    await expect(resp.get_by_test_id("map-app")).to_be_hidden()          # nothing to put on a map
    await expect(resp.get_by_test_id("job-place")).to_contain_text(
        "No position" if lang == "en" else "没有收到位置")
    reporter = resp.get_by_test_id("job-reporter")
    await expect(reporter).to_have_text("Name not given" if lang == "en" else "未留姓名")  # not "Anonymous"
    await expect(reporter).not_to_contain_text("138")                      # never the number as a name
    await shots(resp, f"responder-job-call-{lang}")
    await resp.get_by_test_id("progress-en_route").click()
    await expect(resp.get_by_test_id("incident-status")).to_have_attribute("data-status", "en_route")
    await expect(call).to_be_visible()
    await resp.get_by_test_id("progress-on_scene").click()
    await resp.get_by_test_id("progress-resolved").click()
    await resp.get_by_test_id("resolve-confirm").click()
    await expect(resp.get_by_test_id("incident-status")).to_have_attribute("data-status", "resolved")
    await expect(call).to_be_hidden()                                      # the job is over: no number
    assert SMS_PHONE.lstrip("+") not in (await resp.locator("#job").inner_text()).replace(" ", "")
    await resp.locator("#job-dismiss").click()

    # 2. the app, with a position and no phone: map links that work on a phone, and no call link
    res = await open_page(node, "/", locale=LOCALES[lang])
    await ask_for_help(res, "medical", note="Blue door by the bakery")
    await resp.get_by_test_id("accept").click()
    await expect(resp.get_by_test_id("incident-status")).to_have_attribute("data-status", "assigned")
    await expect(call).to_be_hidden()
    await expect(resp.get_by_test_id("no-phone")).to_be_visible()
    await expect(resp.get_by_test_id("map-app")).to_have_attribute("href", re.compile(r"^geo:31\.2304\d*,121\.4737"))
    await expect(resp.get_by_test_id("map-web")).to_have_attribute(
        "href", re.compile(r"^https://www\.openstreetmap\.org/\?mlat=31\.2304\d*&mlon=121\.4737"))
    await expect(resp.get_by_test_id("job-place")).to_contain_text("31.23040, 121.47370")
    await expect(resp.get_by_test_id("job-note")).to_contain_text("Blue door")
    await shots(resp, f"responder-job-map-{lang}")


@pytest.mark.config(dispatch_offer_timeout_s=60)
@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_signing_out_mid_job_hands_it_back_and_everyone_is_told(
        node: Any, open_page: OpenPage, lang: str) -> None:
    await node.add_user("medic1", "responder", name="Li Wei", skills=["medical"])
    await node.add_user("disp", "dispatcher", name="Wu Fang")
    resp = await open_page(node, "/responder", locale=LOCALES[lang], position=NEARBY, viewport=PHONE)
    await login(resp, "medic1")
    await go_on_duty(resp)
    disp = await open_page(node, "/dispatch", locale=LOCALES[lang])
    await login(disp, "disp")
    res = await open_page(node, "/", locale=LOCALES[lang], viewport=PHONE)
    ref = await ask_for_help(res, "medical")
    await resp.get_by_test_id("accept").click()
    await resp.get_by_test_id("progress-en_route").click()
    rstatus = res.get_by_test_id("incident-status")
    await expect(rstatus).to_have_attribute("data-status", "en_route")

    # going off duty with the job asks first, and "stay" keeps it
    toggle = resp.get_by_test_id("duty-toggle")
    await expect(toggle).to_be_enabled()
    await toggle.click()
    warning = resp.get_by_test_id("logout-warning")
    await expect(warning).to_be_visible()
    await expect(warning).to_contain_text("back to dispatch" if lang == "en" else "交还调度")
    await expect(resp.get_by_test_id("logout-stay")).to_have_text("Stay on duty" if lang == "en" else "继续值班")
    await assert_accessible(resp, f"responder off-duty warning {lang}")
    await resp.get_by_test_id("logout-stay").click()
    await expect(warning).to_be_hidden()
    await expect(rstatus).to_have_attribute("data-status", "en_route")

    # another responder comes on duty farther off; then the first signs out anyway
    medic2 = await node.user("responder", skills=["medical"])
    await medic2.ok("duty.start", lat=NEARBY["latitude"] + 0.01, lon=NEARBY["longitude"])
    await resp.locator("#logout").click()
    await expect(resp.get_by_test_id("logout-anyway")).to_have_text(
        "Sign out and hand the job back" if lang == "en" else "退出并交还任务")
    await resp.get_by_test_id("logout-anyway").click()
    await expect(resp.get_by_test_id("username")).to_be_visible()
    offer = await medic2.push("offer", lambda m: m["incident"]["ref_no"] == ref)

    # the resident is told the truth: no one is on the way now, someone else is being asked
    await expect(rstatus).to_have_attribute("data-status", "offered")
    await expect(rstatus).to_contain_text("handed your request back" if lang == "en" else "已将您的求助交还")
    await expect(res.get_by_test_id("responder-name")).to_be_hidden()
    await assert_accessible(res, f"resident handed back {lang}")
    # the dispatcher sees it on the queue and in the log
    row = disp.locator(f'[data-testid=incident-row]:has-text("{ref}")')
    await expect(row.get_by_test_id("handed-back")).to_be_visible()
    await row.locator("button.ref").click()
    await expect(disp.locator("#timeline")).to_contain_text(
        "handed the job back to dispatch" if lang == "en" else "将任务交还调度")
    await expect(disp.locator("#timeline")).to_contain_text(
        "the responder signed out" if lang == "en" else "救助人员退出登录")
    await assert_accessible(disp, f"dispatch handed back {lang}")
    await medic2.ok("offer.accept", offer_id=offer["offer_id"])
    await expect(rstatus).to_have_attribute("data-status", "assigned")
    await expect(rstatus).not_to_contain_text("handed" if lang == "en" else "交还")


@pytest.mark.config(dispatch_offer_timeout_s=60)
async def test_a_preempted_offer_is_said_truly_and_its_banner_cleared(node: Any, open_page: OpenPage) -> None:
    medic_id = await node.add_user("medic1", "responder", name="Li Wei", skills=["general"])
    resp = await open_page(node, "/responder", position=NEARBY, viewport=PHONE)
    await login(resp, "medic1")
    await go_on_duty(resp)
    disp = await node.user("dispatcher")
    urgent = (await (await node.resident()).ok(
        "help.request", request_id="u1", category="fire", lat=CITY["latitude"], lon=CITY["longitude"]))["incident"]
    assert urgent["status"] == "escalated"                   # nobody has the fire skill
    res = await open_page(node, "/")
    await ask_for_help(res, "dispute")                       # priority 3: offered to the medic
    banner = resp.get_by_test_id("alert-banner")
    await expect(resp.get_by_test_id("offer")).to_be_visible()
    await expect(banner).to_contain_text("Dispute")

    await disp.ok("incident.assign", incident_id=urgent["id"], responder_id=medic_id)
    msg = resp.locator("#msg")
    await expect(msg).to_contain_text("withdrawn: you are needed for a more urgent one")
    await expect(resp.get_by_test_id("offer")).to_be_hidden()
    await expect(banner).to_contain_text(urgent["ref_no"])   # the new job, not the old call
    await expect(banner).not_to_contain_text("Dispute")
    await expect(msg).to_be_visible()                        # why the first call went, beside the new one
    await expect(resp.get_by_test_id("incident-status")).to_have_attribute("data-status", "assigned")
    await assert_accessible(resp, "responder preempted")


@pytest.mark.config(dispatch_offer_timeout_s=60)
@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_escalation_wording_says_what_happened(node: Any, open_page: OpenPage, lang: str) -> None:
    await node.add_user("medic1", "responder", name="Li Wei", skills=["medical"])
    await node.add_user("disp", "dispatcher", name="Wu Fang")
    resp = await open_page(node, "/responder", locale=LOCALES[lang], position=NEARBY, viewport=PHONE)
    await login(resp, "medic1")
    await go_on_duty(resp)
    disp = await open_page(node, "/dispatch", locale=LOCALES[lang])
    await login(disp, "disp")

    res = await open_page(node, "/", locale=LOCALES[lang], viewport=PHONE)
    ref = await ask_for_help(res, "medical")
    await resp.get_by_test_id("decline").click()
    status = res.get_by_test_id("incident-status")
    await expect(status).to_have_attribute("data-status", "escalated")
    # a helper nearby was asked and said no: not "no helper nearby"
    await expect(status).to_contain_text("The helper we asked could not come" if lang == "en"
                                         else "我们联系的救助人员无法前来")
    await assert_accessible(res, f"resident escalated declined {lang}")
    why = disp.locator(f'[data-testid=incident-row]:has-text("{ref}")').get_by_test_id("escalation-reason")
    await expect(why).to_have_attribute("data-reason", "declined")
    await expect(why).to_contain_text("declined" if lang == "en" else "拒绝")
    await expect(why).not_to_contain_text("nobody was asked" if lang == "en" else "未联系任何人")

    res2 = await open_page(node, "/", locale=LOCALES[lang], viewport=PHONE)
    ref2 = await ask_for_help(res2, "fire")                  # nobody with the skill: nobody was asked
    status2 = res2.get_by_test_id("incident-status")
    await expect(status2).to_have_attribute("data-status", "escalated")
    await expect(status2).to_contain_text("No helper on duty near you is free" if lang == "en"
                                          else "您附近暂时没有空闲的值班救助人员")
    why2 = disp.locator(f'[data-testid=incident-row]:has-text("{ref2}")').get_by_test_id("escalation-reason")
    await expect(why2).to_have_attribute("data-reason", "no_candidate")
    await disp.locator(f'[data-testid=incident-row]:has-text("{ref}") button.ref').click()
    await expect(disp.locator("#timeline")).to_contain_text(
        "the responder asked declined" if lang == "en" else "被联系的救助人员拒绝")
    await assert_accessible(disp, f"dispatch escalation reasons {lang}")
