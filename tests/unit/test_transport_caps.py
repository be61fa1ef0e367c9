"""The node's connection caps (handlers/transport.py) without sockets: who is evicted at the cap."""
from __future__ import annotations

import asyncio
from typing import Any

from handlers.transport import ConnectionCaps, set_busy


class FakeTransport(asyncio.Transport):
    def __init__(self, address: str) -> None:
        super().__init__()
        self.address, self.aborted = address, False
        self.protocol: asyncio.BaseProtocol | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self.address, 40000) if name == "peername" else default

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol

    def abort(self) -> None:
        self.aborted = True


class Inner(asyncio.Protocol):
    def __init__(self) -> None:
        self.made = self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


def connect(caps: ConnectionCaps, address: str) -> tuple[FakeTransport, Inner]:
    inner = Inner()
    proto = caps.wrap(lambda: inner)()
    t = FakeTransport(address)
    t.set_protocol(proto)
    proto.connection_made(t)
    return t, inner


def lose(t: FakeTransport) -> None:
    t.get_protocol().connection_lost(None)


def test_at_the_cap_a_newcomer_evicts_an_idle_connection_of_the_biggest_holder() -> None:
    caps = ConnectionCaps(per_address=0, total=5)
    early, _ = connect(caps, "10.0.0.9")                     # the oldest idle connection, but a small holder
    flood = [connect(caps, "10.0.0.1")[0] for _ in range(4)]
    t, inner = connect(caps, "10.0.0.2")
    assert inner.made and not t.aborted
    assert [f.aborted for f in flood] == [True, False, False, False] and not early.aborted
    assert caps.open == 5 and caps.by_address == {"10.0.0.9": 1, "10.0.0.1": 3, "10.0.0.2": 1}
    lose(flood[0])                                           # the abort's connection_lost: counted once
    assert caps.open == 5 and caps.evicted == 1


def test_busy_connections_are_never_evicted_and_idle_ones_go_least_recently_busy_first() -> None:
    caps = ConnectionCaps(per_address=0, total=3)
    a, _ = connect(caps, "10.0.0.1")
    b, _ = connect(caps, "10.0.0.1")
    c, _ = connect(caps, "10.0.0.1")
    set_busy(a, True)
    set_busy(b, True)
    set_busy(b, False)                                       # b was busy after c: c is evicted first
    d, _ = connect(caps, "10.0.0.2")
    assert (a.aborted, b.aborted, c.aborted, d.aborted) == (False, False, True, False)
    set_busy(b, True)
    set_busy(d, True)
    e, inner = connect(caps, "10.0.0.3")                     # all busy: refused, nothing evicted
    assert e.aborted and not inner.made and caps.refused == 1
    lose(e)
    assert caps.open == 3
    set_busy(d, False)
    f, _ = connect(caps, "10.0.0.3")
    assert d.aborted and not f.aborted


def test_the_cap_per_address_refuses_and_does_not_evict() -> None:
    caps = ConnectionCaps(per_address=2, total=10)
    held = [connect(caps, "10.0.0.1")[0] for _ in range(2)]
    t, _ = connect(caps, "10.0.0.1")
    assert t.aborted and not any(h.aborted for h in held) and caps.open == 2


def test_counts_stay_consistent_through_churn() -> None:
    caps = ConnectionCaps(per_address=0, total=50)
    live: list[FakeTransport] = []
    for i in range(2000):
        t, _ = connect(caps, f"10.0.{i % 7}.{i % 3}")
        if i % 5 == 0:
            set_busy(t, True)
        live.append(t)
        if i % 11 == 0:
            lose(live.pop(0))
        for x in [x for x in live if x.aborted]:
            lose(x)
            live.remove(x)
    assert caps.open == len(live) == sum(caps.by_address.values()) <= 50


def test_websockets_always_leave_room_for_plain_http() -> None:
    from handlers.transport import socket_cap

    assert socket_cap(20000, 0) == 20000                   # no TCP cap known: the configured one
    assert socket_cap(20000, 40000) == 20000
    assert socket_cap(20000, 20000) == 19000               # a twentieth of the node for HTTP
    assert socket_cap(1000, 40) == 38
    assert socket_cap(4, 40) == 4
    assert socket_cap(1000, 1) == 1


def test_one_address_with_thousands_of_sessions_leaves_no_empty_buckets_behind() -> None:
    """Every count an address passes through had a bucket of its own that stayed, empty (issue 18: one per
    connection); emptied ones are dropped, and eviction still finds the biggest holder's idle connection."""
    caps = ConnectionCaps(per_address=0, total=3001)
    sessions = []
    for _ in range(3000):
        t, _ = connect(caps, "10.0.0.1")
        set_busy(t, True)                                   # a WebSocket with its session
        sessions.append(t)
    assert len(caps._holders) == 0 and caps.open == 3000
    idle, _ = connect(caps, "10.0.0.1")                      # one idle (no hello yet) among them
    assert list(caps._holders) == [3001]
    t, inner = connect(caps, "10.0.0.2")                     # at the cap: that idle one goes
    assert idle.aborted and inner.made and not any(s.aborted for s in sessions)
    lose(idle)
    assert all(caps._holders.values()) and caps.open == 3001
