"""Open TCP connections, capped per client address and per node, before any HTTP is parsed.

Every connection holds a file descriptor from accept() on, whatever it later sends; idle ones
and slow ones are closed by aiohttp's keep-alive deadline (server.keepalive_timeout_s, which
also bounds how long request headers may take), but within that deadline one address could
still open enough of them to exhaust the process's descriptors, and then nobody, /healthz
included, is accepted. aiohttp offers no cap on connections, so this wraps its protocol
factory: a connection past the cap per address is aborted (RST) at once, having cost one accept().

At the node's cap (server.max_open_connections, or what the descriptor limit allows: server/cli.py
works it out, below the limit so that accept() never fails with EMFILE) a newcomer is not refused:
it takes the place of an *idle* connection — one with no request being handled (never sent one,
headers or body still arriving, or between keep-alive requests) or a WebSocket still waiting for
its hello — from the address holding the most connections, the least recently busy of them. So
whoever holds the node's whole quota of idle sockets (from many addresses, or from an address the
per-address cap spares) only makes their own sockets churn: /healthz and new clients get in. A
request being handled and a WebSocket with a session are never evicted; those are bounded by
their own deadlines and by server.max_connections_per_node.

The app says which connections are busy (`set_busy`, from the HTTP middleware and the /ws
handler); the transport knows nothing of HTTP.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

log = logging.getLogger(__name__)


class _Counter(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class ConnectionCaps:
    """Counts of open connections by client address; `admit` says whether one more may stay, making
    room at the node's cap by evicting an idle connection."""

    def __init__(self, per_address: int, total: int,
                 exempt: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
                 evicted: _Counter | None = None, refused: _Counter | None = None) -> None:
        self.per_address, self.total = per_address, total     # 0: no cap
        self.exempt = tuple(exempt)
        self._spared: dict[str, bool] = {}
        self.by_address: dict[str, int] = {}
        self.open = 0
        self.refused = 0
        self.evicted = 0
        self._evicted_metric, self._refused_metric = evicted, refused
        # idle connections by address, least recently busy first (a dict keeps insertion order)
        self._idle: dict[str, dict[_Capped, None]] = {}
        # addresses with an idle connection, by how many connections each holds; _top: the highest
        # such count (maybe stale upwards: emptied buckets are skipped when looked at)
        self._holders: dict[int, dict[str, None]] = {}
        self._top = 0

    def spared(self, address: str) -> bool:
        """Whether the address is in an exempt network (remembered: a handful of addresses ask)."""
        got = self._spared.get(address)
        if got is None:
            try:
                ip = ipaddress.ip_address(address)
                got = any(ip in net for net in self.exempt)
            except ValueError:
                got = False
            if len(self._spared) < 10_000:
                self._spared[address] = got
        return got

    def admit(self, address: str) -> bool:
        n = self.by_address.get(address, 0)
        over_address = self.per_address and n >= self.per_address and not (self.exempt and self.spared(address))
        if over_address or (self.total and self.open >= self.total and not self._evict_one()):
            self.refused += 1
            if self._refused_metric is not None:
                self._refused_metric.inc()
            if self.refused in (1, 100) or self.refused % 10_000 == 0:
                log.warning("refusing connections past the cap (%d refused; %s holds %d, %d open on this node)",
                            self.refused, address, n, self.open)
            return False
        n = self.by_address.get(address, 0)     # the eviction may have been of this address
        self._unlist(address)
        self.by_address[address] = n + 1
        self.open += 1
        self._list(address)
        return True

    def release(self, address: str) -> None:
        self._unlist(address)
        self.open -= 1
        n = self.by_address.get(address, 0) - 1
        if n > 0:
            self.by_address[address] = n
        else:
            self.by_address.pop(address, None)
        self._list(address)

    def idle(self, conn: _Capped) -> None:
        """`conn` may be evicted at the cap (it joins the end of its address's line)."""
        address = conn.address
        assert address is not None
        self._unlist(address)
        line = self._idle.setdefault(address, {})
        line.pop(conn, None)
        line[conn] = None
        self._list(address)

    def busy(self, conn: _Capped) -> None:
        """`conn` is never evicted until `idle` is called again."""
        address = conn.address
        line = self._idle.get(address) if address is not None else None
        if line is None or conn not in line:
            return
        assert address is not None
        self._unlist(address)
        del line[conn]
        if not line:
            del self._idle[address]
        self._list(address)

    def _unlist(self, address: str) -> None:
        if address in self._idle:
            n = self.by_address.get(address, 0)
            bucket = self._holders.get(n)
            if bucket is not None:
                bucket.pop(address, None)
                if not bucket:      # not kept empty: one address's thousands of sockets made one per count
                    del self._holders[n]

    def _list(self, address: str) -> None:
        if address in self._idle:
            n = self.by_address.get(address, 0)
            self._holders.setdefault(n, {})[address] = None
            self._top = max(self._top, n)

    def _evict_one(self) -> bool:
        """Abort the least recently busy idle connection of the address holding the most connections."""
        while self._top > 0 and not self._holders.get(self._top):
            self._holders.pop(self._top, None)
            self._top -= 1
        bucket = self._holders.get(self._top)
        if not bucket:
            return False
        address = next(iter(bucket))
        victim = next(iter(self._idle[address]))
        victim.evict()
        self.evicted += 1
        if self._evicted_metric is not None:
            self._evicted_metric.inc()
        if self.evicted in (1, 100) or self.evicted % 10_000 == 0:
            log.warning("at the cap of %d connections: evicting idle ones (%d so far; %s holds %d)",
                        self.total, self.evicted, address, self.by_address.get(address, 0))
        return True

    def wrap(self, factory: Callable[[], Any]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for loop.create_server: `factory`'s protocols, behind the caps."""
        return lambda: _Capped(self, factory())


class _Capped(asyncio.Protocol):
    """Passes every event to the wrapped protocol, once its connection is admitted."""

    __slots__ = ("caps", "inner", "address", "transport", "counted")

    def __init__(self, caps: ConnectionCaps, inner: asyncio.Protocol) -> None:
        self.caps, self.inner = caps, inner
        self.address: str | None = None        # set once admitted
        self.transport: asyncio.Transport | None = None
        self.counted = False                   # holds a place in the caps' counts

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        # interned: every connection of an address shares one string (the caps' keys, `address` here)
        address = sys.intern(str(peer[0])) if isinstance(peer, (tuple, list)) and peer else "-"
        if not self.caps.admit(address):
            cast(asyncio.Transport, transport).abort()
            return
        self.address, self.transport, self.counted = address, cast(asyncio.Transport, transport), True
        self.caps.idle(self)
        self.inner.connection_made(transport)

    def evict(self) -> None:
        """Give up this connection's place now (the socket is reset; aiohttp hears connection_lost)."""
        self._uncount()
        if self.transport is not None:
            self.transport.abort()

    def set_busy(self, busy: bool) -> None:
        if not self.counted:
            return
        if busy:
            self.caps.busy(self)
        else:
            self.caps.idle(self)

    def _uncount(self) -> None:
        if self.counted:
            assert self.address is not None
            self.caps.busy(self)
            self.caps.release(self.address)
            self.counted = False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.address is None:
            return              # refused: the wrapped protocol never saw it
        self._uncount()
        self.transport = None
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


def http_headroom(per_node: int, total: int) -> int:
    """TCP places the node keeps from WebSockets for plain HTTP (/healthz, POST /api/help, the upgrades
    themselves): a twentieth of the smaller cap, at least one."""
    return max(1, min(per_node, total) // 20)


def socket_cap(per_node: int, total: int) -> int:
    """WebSockets (with a session or waiting for hello) the node takes: server.max_connections_per_node,
    lowered if need be to leave `http_headroom` of the node's TCP cap `total` (0: none) to plain HTTP.
    Sessions are never evicted, so without this they alone could fill the node and lock /healthz out."""
    if not total:
        return per_node
    return max(1, min(per_node, total - http_headroom(per_node, total)))


def set_busy(transport: asyncio.BaseTransport | None, busy: bool) -> None:
    """Mark the connection of `transport` busy (a request is being handled, a WebSocket has its
    session: never evicted) or idle (evictable at the node's cap). Nothing for connections not made
    through ConnectionCaps.wrap (in-process tests)."""
    proto = transport.get_protocol() if transport is not None else None
    if isinstance(proto, _Capped):
        proto.set_busy(busy)
