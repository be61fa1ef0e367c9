"""What the browser tests share: positions, and the steps a person takes on the pages."""
from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from testkit.accounts import PASSWORD

if TYPE_CHECKING:
    from playwright.async_api import expect as expect  # re-exported for the browser tests
else:
    try:
        from playwright.async_api import expect
    except ImportError:  # the `browser` fixture skips every browser test then
        expect = None

# the city centre of the shipped config.yaml, and a responder a few hundred metres away
CITY = {"latitude": 31.2304, "longitude": 121.4737, "accuracy": 15}
NEARBY = {"latitude": 31.2330, "longitude": 121.4760, "accuracy": 10}
SHOTS = "/tmp/shots"

OpenPage = Callable[..., Awaitable[Any]]

WS_REFUSED = ("WebSocket connection to", "Failed to load resource", "ERR_CONNECTION_REFUSED")


async def login(page: Any, username: str) -> None:
    await page.get_by_test_id("username").fill(username)
    await page.get_by_test_id("password").fill(PASSWORD)
    await page.get_by_test_id("login").click()
    await expect(page.locator(".conn")).to_have_attribute("data-state", "live")


async def go_on_duty(page: Any) -> None:
    toggle = page.get_by_test_id("duty-toggle")
    await expect(toggle).to_be_enabled()
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-pressed", "true")


async def ask_for_help(page: Any, category: str = "medical", note: str = "") -> str:
    """Press help; returns the reference number the page shows."""
    await page.get_by_test_id("category").select_option(category)
    if note:
        await page.get_by_test_id("note").fill(note)
    await page.get_by_test_id("help-button").click()
    ref = page.get_by_test_id("incident-ref")
    await expect(ref).to_have_text(re.compile(r"\w+-?\d+"))
    return (await ref.text_content() or "").strip()


async def record_statuses(page: Any) -> None:
    """Log every data-status an incident row takes, to prove the page moved without reloading."""
    await page.evaluate("""() => {
        window.__seen = [];
        const note = () => document.querySelectorAll('[data-testid=incident-row]').forEach((r) => {
            const s = r.dataset.status;
            if (window.__seen[window.__seen.length - 1] !== s) window.__seen.push(s);
        });
        new MutationObserver(note).observe(document.body, {subtree: true, childList: true, attributes: true});
        note();
    }""")


# A page script that lets a test cut a page's WebSocket and keep it from reconnecting for a while:
#   window.__wsCut(true)   close every open socket; new ones fail (the page backs off and retries)
#   window.__wsCut(false)  let the next attempt through
WS_CONTROL = """(() => {
  const Real = window.WebSocket;
  const open = new Set();
  let held = false;
  function Controlled(url, protocols) {
    const ws = new Real(held ? url.replace(/\\/\\/[^/]+/, '//127.0.0.1:9') : url, protocols);
    open.add(ws);
    ws.addEventListener('close', () => open.delete(ws));
    return ws;
  }
  Controlled.prototype = Real.prototype;
  for (const k of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']) Controlled[k] = Real[k];
  window.WebSocket = Controlled;
  window.__wsCut = (on) => {
    held = on;
    if (on) for (const ws of open) ws.close();
  };
})();"""


async def open_case(page: Any, summary: str, others: list[tuple[str, str]], *, my_name: str = "",
                    category: str = "neighbour") -> str:
    """A resident opens a case on /mediate; returns its id (the page then shows the case)."""
    await page.get_by_test_id("case-category").select_option(category)
    await page.get_by_test_id("case-summary").fill(summary)
    if my_name:
        await page.get_by_test_id("my-name").fill(my_name)
    for i, (name, phone) in enumerate(others):
        if i:
            await page.get_by_test_id("add-party").click()
        await page.get_by_test_id("party-name").nth(i).fill(name)
        if phone:
            await page.get_by_test_id("party-phone").nth(i).fill(phone)
    await page.get_by_test_id("open-case").click()
    row = page.locator("[data-testid=case-row].selected")
    await expect(row).to_have_count(1)
    return await row.get_attribute("data-case-id") or ""


async def send_message(page: Any, text: str) -> None:
    await page.get_by_test_id("message-input").fill(text)
    await page.get_by_test_id("send").click()
    await expect(page.get_by_test_id("message").filter(has_text=text)).to_have_count(1)
