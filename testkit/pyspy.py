"""Where a node spends its time: py-spy recording one process, and a summary of what it recorded."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from testkit.runtime import REPO


def summarize_collapsed(path: str, top: int = 20) -> str:
    """Where a py-spy `--format raw` (collapsed stacks) profile spends its samples.

    With uvloop the loop's own C code (including its epoll wait, which py-spy cannot
    always tell from work) shows as self time of asyncio/runners.py:Runner.run; the
    shares below are given of all samples and of the samples outside that frame
    ("busy")."""
    self_n: dict[str, int] = {}
    incl: dict[str, int] = {}
    pkg: dict[str, int] = {}
    total = 0
    with open(path) as f:
        for line in f:
            line = line.rstrip()
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            try:
                n = int(count)
            except ValueError:
                continue
            total += n
            keys = [_frame_key(fr) for fr in stack.split(";")]
            for key in set(keys):
                incl[key] = incl.get(key, 0) + n
            self_n[keys[-1]] = self_n.get(keys[-1], 0) + n
            pkg[_package(keys)] = pkg.get(_package(keys), 0) + n
    if not total:
        return "no samples"
    loop_self = self_n.get("asyncio/runners.py:Runner.run", 0)
    busy = max(1, total - loop_self)
    lines = [
        f"{total} samples; {loop_self} ({100 * loop_self / total:.0f}%) in the event loop's own frame "
        f"(uvloop C code and its wait); shares below: % of busy samples ({busy})"
    ]
    lines.append("busy samples by where the leaf frame is:")
    for k, v in sorted(pkg.items(), key=lambda kv: -kv[1]):
        if k != "event loop (uvloop)":
            lines.append(f"  {100 * v / busy:5.1f}%  {k}")
    lines.append("top functions by self time:")
    for k, v in sorted(self_n.items(), key=lambda kv: -kv[1])[:top]:
        if k != "asyncio/runners.py:Runner.run":
            lines.append(f"  {100 * v / busy:5.1f}%  {k}")
    lines.append("top helpline functions by inclusive time:")
    ours = [
        (k, v)
        for k, v in incl.items()
        if k.split("/")[0] in ("handlers", "dispatch", "server", "mediation")
        and not k.startswith("server/cli.py")
    ]
    for k, v in sorted(ours, key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * v / busy:5.1f}%  {k}")
    return "\n".join(lines)


def _package(keys: list[str]) -> str:
    leaf = keys[-1]
    if leaf == "asyncio/runners.py:Runner.run":
        return "event loop (uvloop)"
    for prefix, name in (
        ("asyncpg/", "asyncpg (PostgreSQL driver)"),
        ("redis/", "redis-py"),
        ("aiohttp/_websocket/", "aiohttp WebSocket frames (incl. deflate)"),
        ("aiohttp/compression", "aiohttp WebSocket frames (incl. deflate)"),
        ("aiohttp/", "aiohttp (HTTP/WS plumbing)"),
        ("json/", "json (stdlib)"),
        ("msgspec", "msgspec"),
        ("jose/", "python-jose (JWT)"),
        ("prometheus_client/", "prometheus_client"),
        ("asyncio/", "asyncio (Python parts)"),
        ("logging/", "logging"),
    ):
        if leaf.startswith(prefix):
            return name
    top = leaf.split("/")[0]
    if top in ("handlers", "dispatch", "server", "mediation"):
        return f"helpline {top}/"
    return "other: " + top


def _frame_key(fr: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"; drop the line number
    fr = fr.strip()
    if fr.endswith(")") and "(" in fr:
        fn, _, loc = fr[:-1].rpartition(" (")
        path = loc.rsplit(":", 1)[0]
        for marker in ("site-packages/", str(REPO) + "/", "lib/python3.11/"):
            if marker in path:
                path = path.split(marker, 1)[1]
                break
        return f"{path}:{fn}"
    return fr


class PySpy:
    """py-spy record of one process into a collapsed-stack file, non-blocking sampling."""

    def __init__(self, pid: int, out: str, rate: int = 100) -> None:
        self.pid, self.out, self.rate = pid, out, rate
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = Path(sys.executable).with_name("py-spy")
        if not exe.exists():
            raise RuntimeError("py-spy not installed in the venv: .venv/bin/pip install py-spy")
        self.proc = subprocess.Popen(
            [
                str(exe),
                "record",
                "--pid",
                str(self.pid),
                "--rate",
                str(self.rate),
                "--format",
                "raw",
                "--nonblocking",
                "-o",
                self.out,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def stop(self) -> str:
        if self.proc is None:
            return ""
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return summarize_collapsed(self.out) if os.path.exists(self.out) else "py-spy wrote nothing"
