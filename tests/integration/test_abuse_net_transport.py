"""Issue 20 #3, descriptor exhaustion, against a real `helpline serve` (the transport options are
the CLI's): the header and keep-alive deadline, the cap per address, sockets without a hello
counted by the node's cap, /healthz at the cap, and the descriptor limit checked at start.
At the node's cap on open TCP connections an idle one is evicted for a newcomer: /healthz and new
clients get in past a flood of idle sockets from an address the per-address cap spares."""
from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import subprocess
import sys
import time

import pytest
import websockets

from server.cli import fd_budget
from testkit.client import http
from testkit.runtime import REPO

pytestmark = pytest.mark.config(server_keepalive_timeout_s=2, server_max_connections_per_address=12,
                                server_max_connections_per_node=4, server_connection_cap_exempt="")


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the server closes the connection (EOF or reset) within `seconds`."""
    try:
        while True:
            if not await asyncio.wait_for(reader.read(4096), seconds):
                return True
    except TimeoutError:        # first: TimeoutError is an OSError too
        return False
    except (ConnectionError, OSError):
        return True


async def test_slowloris_and_idle_connections_are_closed(node):
    host, port = "127.0.0.1", node.port
    # one header line every second: cut off at the deadline (2 s here, 15 s by default), not served
    r, w = await asyncio.open_connection(host, port)
    w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    t0 = time.monotonic()
    closed = False
    for i in range(8):
        with contextlib.suppress(ConnectionError, OSError):
            w.write(f"X-Slow-{i}: 1\r\n".encode())
            await w.drain()
        if await closed_within(r, 1):
            closed = True
            break
    assert closed and time.monotonic() - t0 < 4
    w.close()
    # a connection that never sends anything
    r, w = await asyncio.open_connection(host, port)
    assert await closed_within(r, 4)
    w.close()
    # an idle keep-alive connection after a request
    r, w = await asyncio.open_connection(host, port)
    w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200")
    assert await closed_within(r, 4)
    w.close()


async def test_connections_are_capped_per_address_and_healthz_still_answers(node):
    held = [await asyncio.open_connection("127.0.0.1", node.port) for _ in range(12)]
    r, w = await asyncio.open_connection("127.0.0.1", node.port)
    assert await closed_within(r, 1), "a 13th connection from one address was kept"
    w.close()
    # another address is not held back by this one
    st, _ = await asyncio.wait_for(_healthz_from(node.port, "127.0.0.2"), 5)
    assert st == 200
    for _, hw in held:
        hw.close()


async def _healthz_from(port: int, address: str) -> tuple[int, bytes]:
    r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))
    w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = await r.read()
    w.close()
    return int(data.split(b" ", 2)[1]), data


async def test_sockets_waiting_for_hello_count_against_the_node_cap(node):
    waiting = [await websockets.connect(node.ws_url) for _ in range(4)]     # upgraded, no hello
    with pytest.raises(websockets.InvalidStatus) as e:
        await websockets.connect(node.ws_url)
    assert e.value.response.status_code == 503
    st, body = await http("GET", node.base + "/healthz")                   # the node at its cap still answers
    assert st == 200 and body == {"status": "ok"}
    for ws in waiting:
        await ws.close()
    await asyncio.sleep(0.3)
    token = await node.device_token()
    client = await node.connect(token)                                       # room again once they left
    await client.ok("ping")


async def _metric(port: int, name: str) -> float:
    _, data = await _healthz_path(port, "127.0.0.1", "/metrics")
    for line in data.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def _healthz_path(port: int, address: str, path: str) -> tuple[int, bytes]:
    r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))
    w.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = await asyncio.wait_for(r.read(), 10)
    w.close()
    return int(data.split(b" ", 2)[1]), data


@pytest.mark.config(server_keepalive_timeout_s=120, server_max_open_connections=40,
                    server_max_connections_per_node=4)
async def test_at_the_nodes_cap_idle_sockets_make_room_for_healthz_and_new_clients(node):
    """A flood of idle sockets from the loopback address (which the per-address cap spares), far
    past the node's cap of 40 and within the keep-alive deadline: the flood churns, everyone else
    gets in; a WebSocket session and a smaller holder's idle keep-alive connection are kept."""
    port = node.port
    # a bystander's keep-alive connection from another address, idle and older than the flood
    br, bw = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.3", 0))
    bw.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await asyncio.wait_for(br.readuntil(b"\r\n\r\n"), 5)).startswith(b"HTTP/1.1 200")
    await asyncio.wait_for(br.readexactly(len(b'{"status": "ok"}')), 5)
    session = await node.connect(await node.device_token())
    flood = []
    for i in range(150):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        if i % 3 == 1:
            w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")      # headers never finished (slowloris)
        elif i % 3 == 2:
            w.write(b"POST /api/help HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{")  # body never ends
        flood.append((r, w))
    # every flood socket was accepted before this request's, so the node has seen them all
    assert await _metric(port, "helpline_tcp_connections") <= 40
    assert await _metric(port, "helpline_tcp_evicted_total") >= 150 + 2 - 40

    st, body = await asyncio.wait_for(_healthz_from(port, "127.0.0.1"), 5)     # from the flood's own address
    assert st == 200 and body.endswith(b'{"status": "ok"}')
    st, _ = await asyncio.wait_for(_healthz_from(port, "127.0.0.4"), 5)
    assert st == 200
    newcomer = await node.connect(await node.device_token())                    # connects and says hello
    await newcomer.ok("ping")
    await session.ok("ping")                                                    # a session is never evicted
    bw.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (await asyncio.wait_for(br.read(), 5)).startswith(b"HTTP/1.1 200")  # the smaller holder kept its place

    closed = await asyncio.gather(*(closed_within(r, 0.5) for r, _ in flood))
    still_open = closed.count(False)
    assert 0 < still_open <= 40 - 3, still_open      # the flood holds what is left: bounded by the cap
    for _, w in flood:
        w.close()
    bw.close()


@pytest.mark.config(server_max_open_connections=40, server_max_connections_per_node=1000)
async def test_websocket_sessions_cannot_fill_the_node(node):
    """Sessions are never evicted, so the node takes at most 38 WebSockets of its 40 connections
    (server.max_connections_per_node is 1000 here): past them /ws answers 503 and /healthz, a report over
    HTTP and (once a session leaves) a new session still get in."""
    token = await node.device_token()
    held = []
    while True:
        try:
            held.append(await websockets.connect(node.ws_url))
        except websockets.InvalidStatus as e:
            assert e.response.status_code == 503
            break
        assert len(held) <= 40
    assert len(held) == 38
    for ws in held[:-1]:                                 # 37 sessions and one socket still without its hello
        await ws.send(json.dumps({"type": "hello", "token": token}))
        assert json.loads(await ws.recv())["type"] == "welcome"
    st, body = await asyncio.wait_for(_healthz_from(node.port, "127.0.0.2"), 5)
    assert st == 200
    st, body = await http("POST", node.base + "/api/help", token=token,
                          json={"request_id": "over-http", "category": "other", "lat": 31.23, "lon": 121.47})
    assert st == 201, body
    await held.pop().close()
    await asyncio.sleep(0.3)
    client = await node.connect(token)
    await client.ok("ping")
    for ws in held:
        await ws.close()


def test_descriptor_limit_is_checked_against_the_caps(cluster):
    from infra import config as config_mod

    cfg = config_mod.load({"HELPLINE_SERVER_MAX_CONNECTIONS_PER_NODE": "20000",
                           "HELPLINE_AUTH_JWT_SECRET": "s" * 40})
    max_open, problem = fd_budget(cfg, 4096)
    assert problem is not None and "server.max_connections_per_node=20000" in problem and 0 < max_open < 4096
    assert fd_budget(cfg, 40000)[1] is None

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

    env = dict(cluster.env, HELPLINE_SERVER_PRODUCTION="true", HELPLINE_SERVER_MAX_CONNECTIONS_PER_NODE="20000")
    r = subprocess.run([sys.executable, "-m", "server.cli", "serve"], env=env, cwd=REPO, capture_output=True,
                       text=True, timeout=60, preexec_fn=low_limit)
    assert r.returncode == 2 and "open-file limit is 1024" in r.stderr, (r.returncode, r.stderr[-2000:])
