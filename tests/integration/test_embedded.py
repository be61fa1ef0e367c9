"""The embedded default: `helpline serve` with no database or Redis URL."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import psutil
import pytest

from testkit.accounts import SECRET
from testkit.geo import near
from testkit.nodes import NodeProcess
from testkit.runtime import REPO

pytestmark = pytest.mark.cluster


def embedded_servers(data_dir: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if data_dir in cmd and p.info["name"] in ("postgres", "redis-server"):
            found.append(p)
    return found


async def test_embedded_default_keeps_data_across_restarts_and_stops_cleanly():
    work = tempfile.mkdtemp(prefix="hl-embedded-")
    data_dir = os.path.join(work, "var")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPLINE_")}
    env.update(HELPLINE_DATA_DIR=data_dir, HELPLINE_AUTH_JWT_SECRET=SECRET, HELPLINE_SMS_PROVIDER="console",
               HELPLINE_REDIS_KEY_PREFIX="hl-embedded-test:")

    def cli(*args: str) -> str:
        r = subprocess.run([sys.executable, "-m", "server.cli", *args], env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    # the CLI works on the embedded data without a running server, and stops what it started
    medic_id = cli("user", "add", "emb-medic", "--role", "responder", "--password", "Pw-123456!",
                   "--skills", "medical", "--name", "Embedded Medic")
    assert embedded_servers(data_dir) == []

    node = NodeProcess(env, "", work)
    await node.start(timeout=90)
    try:
        medic = await node.connect(await node.login("emb-medic"))
        assert medic.account_id == medic_id
        await medic.ok("duty.start", **near(0.001))
        resident = await node.connect(await node.device_token("embedded-device-1"))
        inc = (await resident.ok("help.request", request_id="e", category="medical", **near(0)))["incident"]
        offer = await medic.push("offer")
        await medic.ok("offer.accept", offer_id=offer["offer_id"])
        # and while it runs, the CLI uses the same data
        cli("user", "add", "emb-disp", "--role", "dispatcher", "--password", "Pw-123456!")
        disp = await node.connect(await node.login("emb-disp"))
        snap = await disp.ok("queue.watch")
        assert [i["id"] for i in snap["incidents"]] == [inc["id"]]
    finally:
        await node.stop()
    assert node.proc is not None and node.proc.returncode == 0, node.tail()
    assert embedded_servers(data_dir) == [], "embedded servers left running after serve exited"

    node2 = NodeProcess(env, "", work)
    await node2.start(timeout=90)
    try:
        again = await node2.connect(await node2.device_token("embedded-device-1"))
        (mine,) = again.welcome["open_incidents"]
        assert mine["id"] == inc["id"] and mine["status"] == "assigned"
    finally:
        await node2.stop()
    assert embedded_servers(data_dir) == []
