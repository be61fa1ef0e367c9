"""Behind a reverse proxy (server.trusted_proxies, docs/deployment.md): the client's address is the one the
trusted proxy saw, for HTTP requests and WebSocket connections alike (the audit log, the limits per address
and the sessions list read it); from a peer that is not a trusted proxy, X-Forwarded-For is ignored, and a
client cannot choose its address by writing hops to the left of the proxy's."""
from __future__ import annotations

import uuid
from typing import Any

import pytest

from handlers.http import client_address
from infra import config as config_mod
from testkit.client import Client, http
from testkit.geo import near
from testkit.stack import query

NETS = config_mod._networks("10.0.0.0/8,::1")


@pytest.mark.parametrize(("peer", "hops", "want"), [
    ("203.0.113.5", ["198.51.100.1"], "203.0.113.5"),              # not a proxy: its header is its own words
    ("10.1.1.1", ["198.51.100.1"], "198.51.100.1"),                # through one proxy
    ("10.1.1.1", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),       # a spoofed hop left of the real one
    ("10.1.1.1", ["198.51.100.1, 10.2.2.2"], "198.51.100.1"),      # through two proxies
    ("10.1.1.1", ["198.51.100.1", "10.2.2.2"], "198.51.100.1"),    # the header given twice: one list
    ("10.1.1.1", ["10.3.3.3, 10.2.2.2"], "10.3.3.3"),              # all proxies: the farthest
    ("10.1.1.1", ["junk, 198.51.100.1"], "198.51.100.1"),
    ("10.1.1.1", ["198.51.100.1, junk"], "10.1.1.1"),              # a malformed last hop: the proxy itself
    ("::1", [" 2001:db8::7 "], "2001:db8::7"),
    ("not-an-address", ["198.51.100.1"], "not-an-address"),
])
def test_the_client_address_is_the_nearest_hop_that_is_not_a_trusted_proxy(peer: str, hops: list[str],
                                                                           want: str) -> None:
    assert client_address(peer, hops, NETS) == want
    assert client_address(peer, hops, []) == peer                # no trusted proxies: always the peer


def test_a_bad_network_in_trusted_proxies_is_refused_by_name() -> None:
    with pytest.raises(config_mod.ConfigError, match="server.trusted_proxies"):
        config_mod.load(env={"HELPLINE_SERVER_TRUSTED_PROXIES": "10.0.0.0/8,nonsense"})
    cfg = config_mod.load(env={"HELPLINE_SERVER_TRUSTED_PROXIES": "10.0.0.0/8"})
    assert [str(n) for n in config_mod.exempt_networks(cfg)] == ["127.0.0.0/8", "::1/128", "10.0.0.0/8"]


async def _addresses(hl: Any, headers: dict[str, str]) -> tuple[str, str]:
    """The address the audit log records for a dispatcher's read over HTTP and one over WebSocket, each sent
    with these headers."""
    resident = await hl.resident()
    inc = (await resident.ok("help.request", request_id=uuid.uuid4().hex, category="other", **near(0)))["incident"]
    name = f"disp-{uuid.uuid4().hex[:8]}"
    did = await hl.add_user(name, "dispatcher")
    token = await hl.login(name)
    st, _ = await http("GET", f"{hl.base}/api/incidents/{inc['id']}", token=token, headers=dict(headers))
    assert st == 200
    over_http = await query(hl, "SELECT address FROM audit_log WHERE actor_id = $1 ORDER BY id DESC LIMIT 1",
                            uuid.UUID(did))
    ws = await Client.connect(hl.ws_url, token, additional_headers=headers)
    try:
        await ws.ok("incident.events", incident_id=inc["id"])
    finally:
        await ws.close()
    over_ws = await query(hl, "SELECT address FROM audit_log WHERE actor_id = $1 ORDER BY id DESC LIMIT 1",
                          uuid.UUID(did))
    return str(over_http[0]["address"]), str(over_ws[0]["address"])


@pytest.mark.config(server_trusted_proxies="127.0.0.0/8")
async def test_through_a_trusted_proxy_the_audit_log_names_the_client_over_http_and_websocket(hl):
    assert await _addresses(hl, {"X-Forwarded-For": "6.6.6.6, 198.51.100.23"}) == ("198.51.100.23",) * 2


async def test_without_trusted_proxies_x_forwarded_for_changes_nothing(hl):
    assert await _addresses(hl, {"X-Forwarded-For": "198.51.100.23"}) == ("127.0.0.1",) * 2
