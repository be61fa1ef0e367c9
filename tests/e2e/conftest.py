"""Browser fixtures: Debian's Chromium driven by Playwright, one browser per test.

    browser   a headless Chromium (the test is skipped when /usr/bin/chromium is missing)
    open_page open_page(node, path, locale=..., position=...) -> a Page whose console
              errors and uncaught exceptions fail the test at teardown (a CSP violation
              shows up there as a console error)
"""
from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.e2e.helpers import CITY

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(autouse=True)
def _need_chromium() -> None:
    """Skip before any server is started when there is no browser to drive."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium fonts-noto-cjk)")
    pytest.importorskip("playwright.async_api")


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    playwright_api = pytest.importorskip("playwright.async_api")
    async with playwright_api.async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def open_page(browser: Any) -> AsyncIterator[Any]:
    contexts: list[Any] = []
    problems: list[str] = []

    async def _open(node: Any, path: str = "/", *, locale: str = "en-US", position: dict[str, float] | None = CITY,
                    viewport: dict[str, int] | None = None, ignore: tuple[str, ...] = (),
                    init: str | None = None) -> Any:
        """ignore: substrings of console errors this page is expected to log (e.g. a refused WebSocket);
        init: a script run in the page before its own scripts (e.g. helpers.WS_CONTROL)."""
        kw: dict[str, Any] = {"locale": locale, "viewport": viewport or {"width": 1280, "height": 900}}
        if position is not None:
            kw.update(geolocation=position, permissions=["geolocation"])
        ctx = await browser.new_context(**kw)
        ctx.set_default_timeout(15000)
        contexts.append(ctx)
        page = await ctx.new_page()
        if init:
            await page.add_init_script(init)
        def on_console(m: Any) -> None:
            if m.type == "error" and not any(s in m.text for s in ignore):
                problems.append(f"{path} console.{m.type}: {m.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda e: problems.append(f"{path} uncaught: {e}"))
        await page.goto(node.base + path)
        return page

    yield _open
    for ctx in contexts:
        await ctx.close()
    assert not problems, "\n".join(problems)
