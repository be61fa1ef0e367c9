"""The layers hold, and a backwards import fails them: import-linter run on this tree and on a copy
of it with one import planted the wrong way (a domain importing an edge, a domain importing another)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("server", "handlers", "dispatch", "mediation", "sms", "push", "reports", "grids", "infra")
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (pip install -e '.[test]')")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=120)


def copy_tree(dest: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.sql"))
    shutil.copy(REPO / "pyproject.toml", dest / "pyproject.toml")
    return dest


def test_the_tree_keeps_its_layers():
    run = lint(REPO)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


@pytest.mark.parametrize("module,planted,broken", [
    ("dispatch/service.py", "import handlers.ws", "dispatch is not allowed to import handlers"),
    ("mediation/store.py", "import dispatch.store", "mediation is not allowed to import dispatch"),
    ("infra/db.py", "import server.app", "infra is not allowed to import server"),
    ("dispatch/lifecycle.py", "import asyncpg", "dispatch.lifecycle is not allowed to import asyncpg"),
])
def test_a_planted_backwards_import_breaks_the_contract(tmp_path, module, planted, broken):
    root = copy_tree(tmp_path)
    target = root / module
    target.write_text(target.read_text() + f"\n{planted}  # planted by the test\n")
    run = lint(root)
    assert run.returncode != 0
    assert broken in run.stdout, run.stdout
