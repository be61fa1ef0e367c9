"""The installed dependencies meet the minimum versions that carry the known security fixes.

pip-audit cannot reach a vulnerability database from these machines (only the package
registries are reachable), so the floor is pinned in pyproject.toml and checked here.
"""
from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
# the security floors issue 7 asks for; pyproject must not go below them
FLOORS = {"aiohttp": "3.14.3", "python-jose": "3.5.0", "twilio": "9.13", "redis": "8.1", "asyncpg": "0.32"}


def requirements() -> list[Requirement]:
    data = tomllib.loads(PYPROJECT.read_text())
    return [Requirement(r) for r in data["project"]["dependencies"]]


def test_installed_versions_satisfy_pyproject():
    for req in requirements():
        if req.marker is not None and not req.marker.evaluate():
            continue
        installed = metadata.version(req.name)
        assert req.specifier.contains(installed, prereleases=True), f"{req.name} {installed} does not meet {req}"


def test_pyproject_pins_the_security_floors():
    pins = {r.name.lower(): r.specifier for r in requirements()}
    for name, floor in FLOORS.items():
        lows = [Version(s.version) for s in pins[name] if s.operator in (">=", "==", "~=", ">")]
        assert lows and max(lows) >= Version(floor), f"{name} {pins[name]} admits versions below {floor}"


def test_jose_has_the_cryptography_backend():
    from jose.backends import RSAKey

    assert RSAKey.__module__ == "jose.backends.cryptography_backend"
