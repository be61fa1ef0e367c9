"""The pages' pure JavaScript modules, tested with Node's own test runner (web/tests/*.test.mjs).

These modules hold the pages' rules without a page (web/static/js/mediate-state.js: case copies,
room sequence numbers and holes, the outbox; dispatch-state.js: the console's bookkeeping;
status.js: the status words), so they run under `node --test` with no browser. Skipped when
`node` (20 or later) is not on PATH.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "web" / "static" / "js"
TESTS = ROOT / "web" / "tests"
# modules that must stay importable and testable without a browser
PURE = ("mediate-state.js", "status.js", "dispatch-state.js", "alarm-state.js", "job-facts.js", "grid-state.js")
BROWSER_ONLY = re.compile(r"\b(document|window|localStorage|navigator|WebSocket|fetch|setTimeout|location)\b")


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH: the web modules' tests (web/tests/*.test.mjs) need Node 20 or later")
    return node


def test_node_test_runner_passes_web_tests() -> None:
    node = _node()
    files = sorted(TESTS.glob("*.test.mjs"))
    assert files, f"no *.test.mjs in {TESTS}"
    proc = subprocess.run(
        [node, "--test", "--test-reporter=tap", *[str(f) for f in files]],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    passed = re.search(r"^# pass (\d+)$", proc.stdout, re.MULTILINE)
    failed = re.search(r"^# fail (\d+)$", proc.stdout, re.MULTILINE)
    assert passed and failed, out
    assert int(failed.group(1)) == 0, out
    assert int(passed.group(1)) > 0, out


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_touch_no_browser(name: str) -> None:
    """No DOM, socket, storage or timers; imports only other pure modules."""
    code = "\n".join(line for line in (JS / name).read_text(encoding="utf-8").splitlines()
                     if not line.lstrip().startswith("//"))
    assert not BROWSER_ONLY.findall(code), (name, sorted(set(BROWSER_ONLY.findall(code))))
    imports = re.findall(r"^import .* from '\./([\w.-]+)';$", code, re.MULTILINE)
    assert set(imports) <= set(PURE), (name, imports)
