"""Open TCP connections, capped per client address and per node, before any HTTP is parsed.

Every connection holds a file descriptor from accept() on, whatever it later sends; idle ones
and slow ones are closed by aiohttp's keep-alive deadline (server.keepalive_timeout_s, which
also bounds how long request headers may take), but within that deadline one address could
still open enough of them to exhaust the process's descriptors, and then nobody, /healthz
included, is accepted. aiohttp offers no cap on connections, so this wraps its protocol
factory: a connection past a cap is aborted (RST) at once, having cost one accept().

The node-wide cap sits below the process's descriptor limit (server/cli.py works it out), so
that accept() never fails with EMFILE and the node keeps answering.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Sequence
from typing import Any, cast

log = logging.getLogger(__name__)


class ConnectionCaps:
    """Counts of open connections by client address; `admit` says whether one more may stay."""

    def __init__(self, per_address: int, total: int,
                 exempt: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = ()) -> None:
        self.per_address, self.total = per_address, total     # 0: no cap
        self.exempt = tuple(exempt)
        self._spared: dict[str, bool] = {}
        self.by_address: dict[str, int] = {}
        self.open = 0
        self.refused = 0

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
        if over_address or (self.total and self.open >= self.total):
            self.refused += 1
            if self.refused in (1, 100) or self.refused % 10_000 == 0:
                log.warning("refusing connections past the cap (%d refused; %s holds %d, %d open on this node)",
                            self.refused, address, n, self.open)
            return False
        self.by_address[address] = n + 1
        self.open += 1
        return True

    def release(self, address: str) -> None:
        self.open -= 1
        n = self.by_address.get(address, 0) - 1
        if n > 0:
            self.by_address[address] = n
        else:
            self.by_address.pop(address, None)

    def wrap(self, factory: Callable[[], Any]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for loop.create_server: `factory`'s protocols, behind the caps."""
        return lambda: _Capped(self, factory())


class _Capped(asyncio.Protocol):
    """Passes every event to the wrapped protocol, once its connection is admitted."""

    __slots__ = ("caps", "inner", "address")

    def __init__(self, caps: ConnectionCaps, inner: asyncio.Protocol) -> None:
        self.caps, self.inner = caps, inner
        self.address: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, (tuple, list)) and peer else "-"
        if not self.caps.admit(address):
            cast(asyncio.Transport, transport).abort()
            return
        self.address = address
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.address is None:
            return              # refused: the wrapped protocol never saw it
        self.caps.release(self.address)
        self.address = None
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()
