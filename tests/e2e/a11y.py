"""axe-core (vendored from npm: tests/e2e/vendor/axe-core, MPL-2.0) run in a page the test reached.

The script is evaluated through the DevTools protocol, which the pages' Content-Security-Policy
does not govern, so the pages keep `script-src 'self'` and the check sees them as served.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
_source: str | None = None

RUN = """async () => {
  const r = await window.axe.run(document, {resultTypes: ['violations']});
  return r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ') + ' :: ' + (n.failureSummary || '').slice(0, 200))}));
}"""


async def axe_violations(page: Any) -> list[dict[str, Any]]:
    global _source
    if _source is None:
        _source = AXE.read_text(encoding="utf-8")
    if not await page.evaluate("() => !!window.axe"):
        await page.evaluate(_source)
    result: list[dict[str, Any]] = await page.evaluate(RUN)
    return result


async def assert_accessible(page: Any, where: str) -> None:
    """No axe violation of any impact in the page as it is now."""
    found = await axe_violations(page)
    assert not found, f"{where}: axe violations\n" + json.dumps(found, indent=1, ensure_ascii=False)
