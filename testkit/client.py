"""WebSocket clients of the contract (hello, then commands by ref and pushes), and plain HTTP.

One connection core reads every frame: an `ok`/`error` whose ref is awaited answers
that command, anything else is a push. Two faces on it:

    Client    for tests: pushes kept in order, to be awaited and consumed by type
              (`push`, `no_push`), answers checked (`ok`, `error`)
    WSClient  for load: pushes handed to a callback with their arrival time, commands
              sent without waiting (`send` returns the send time and a future of the
              answer and its arrival time), connected by the thousand (`connect_many`)
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import aiohttp
import msgspec
import websockets

from testkit.runtime import log

_decode = msgspec.json.decode
Answer = tuple[float, dict[str, Any]]     # (perf_counter when it arrived, the ok or error)


class ProtocolError(AssertionError):
    pass


async def http(method: str, url: str, token: str | None = None, **kw: Any) -> tuple[int, Any]:
    headers = kw.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as s, s.request(method, url, headers=headers, **kw) as r:
        raw = await r.read()
        try:
            text = raw.decode(r.charset or "utf-8")
        except UnicodeDecodeError:      # a binary answer (the agreement PDF): the bytes
            return r.status, raw
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text


async def _hello(ws: Any, token: str, timeout: float) -> dict[str, Any]:
    try:
        await ws.send(json.dumps({"type": "hello", "token": token}))
        welcome: dict[str, Any] = _decode(await asyncio.wait_for(ws.recv(), timeout))
    except BaseException:
        await ws.close()
        raise
    if welcome.get("type") != "welcome":
        await ws.close()
        raise ProtocolError(f"hello answered {welcome}")
    return welcome


class Connection:
    """The reader and the ref bookkeeping both faces share; `_pushed` is what a face does with a push."""

    _refs = itertools.count(1)
    separators: ClassVar[tuple[str, str]] = (", ", ": ")
    call_timeout: ClassVar[float] = 10

    def __init__(self, ws: Any, welcome: dict[str, Any]) -> None:
        self.ws, self.welcome = ws, welcome
        self.waiting: dict[str, asyncio.Future[Answer]] = {}
        self.closed = False
        self.close_reason: BaseException | None = None
        self.close_code: int | None = None
        self.reader = asyncio.create_task(self._read())

    @property
    def account_id(self) -> str:
        account_id: str = self.welcome["account"]["id"]
        return account_id

    def _pushed(self, msg: dict[str, Any], t: float) -> None:
        raise NotImplementedError

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                t = time.perf_counter()
                msg = _decode(raw)
                if msg.get("type") in ("ok", "error"):
                    fut = self.waiting.pop(msg.get("ref"), None)
                    if fut is not None:
                        if not fut.done():
                            fut.set_result((t, msg))
                        continue
                self._pushed(msg, t)
        except Exception as e:
            self.close_reason = e
        finally:
            self.close_code = self.ws.close_code
            if self.close_reason is None:
                self.close_reason = ConnectionError("closed")
            self.closed = True
            for fut in self.waiting.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("closed"))
                    fut.exception()  # nobody may be waiting any more: do not log "never retrieved"
            self.waiting.clear()
            self._ended()

    def _ended(self) -> None:
        pass

    async def send(self, type_: str, **fields: Any) -> tuple[float, asyncio.Future[Answer]]:
        """Send a command; (time sent, future of (time answered, answer))."""
        ref = f"r{next(self._refs)}"
        fut: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.waiting[ref] = fut
        t = time.perf_counter()
        await self.ws.send(json.dumps({"type": type_, "ref": ref, **fields}, separators=self.separators))
        return t, fut

    async def call(self, type_: str, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        _, fut = await self.send(type_, **fields)
        return (await asyncio.wait_for(fut, self.call_timeout if timeout is None else timeout))[1]

    async def ok(self, type_: str, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        msg = await self.call(type_, timeout, **fields)
        if msg.get("type") != "ok":
            raise ProtocolError(f"{type_} {fields} answered {msg}")
        return msg

    async def close(self, timeout: float | None = None) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), timeout)
        self.reader.cancel()
        with contextlib.suppress(BaseException):
            await self.reader


class Client(Connection):
    """A test's client: every push kept, in order, until a test consumes it."""

    def __init__(self, ws: Any, welcome: dict[str, Any]) -> None:
        self.pushes: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        super().__init__(ws, welcome)

    @classmethod
    async def connect(cls, ws_url: str, token: str, **kw: Any) -> Client:
        ws = await websockets.connect(ws_url, max_size=None, open_timeout=10, **kw)
        return cls(ws, await _hello(ws, token, 10))

    def _pushed(self, msg: dict[str, Any], t: float) -> None:
        self.pushes.append(msg)
        self.changed.set()

    def _ended(self) -> None:
        self.changed.set()

    async def error(self, type_: str, code: str, **fields: Any) -> dict[str, Any]:
        msg = await self.call(type_, **fields)
        if msg.get("type") != "error" or msg.get("code") != code:
            raise ProtocolError(f"{type_} {fields}: expected error {code}, got {msg}")
        return msg

    async def push(self, type_: str, where: Callable[[dict[str, Any]], bool] = lambda m: True,
                   timeout: float = 10) -> dict[str, Any]:
        """The first push of that type that matches, consumed."""
        deadline = time.monotonic() + timeout
        while True:
            for i, m in enumerate(self.pushes):
                if m.get("type") == type_ and where(m):
                    return self.pushes.pop(i)
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                raise ProtocolError(f"no {type_} push within {timeout}s "
                                    f"(got {[p.get('type') for p in self.pushes][-8:]}, "
                                    f"closed={self.close_reason!r})")
            self.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)

    async def no_push(self, type_: str, where: Callable[[dict[str, Any]], bool] = lambda m: True,
                      wait: float = 0.5) -> None:
        await asyncio.sleep(wait)
        hits = [m for m in self.pushes if m.get("type") == type_ and where(m)]
        if hits:
            raise ProtocolError(f"unexpected {type_} push: {hits[0]}")


def incident_is(iid: str, *statuses: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: (m.get("incident", {}).get("id") == iid
                      and (not statuses or m["incident"]["status"] in statuses))


PushHandler = Callable[["WSClient", dict[str, Any], float], None]


class WSClient(Connection):
    """A load client: pushes counted and handed to `on_push(client, push, arrival time)`."""

    separators = (",", ":")
    call_timeout = 30

    def __init__(self, ws: Any, welcome: dict[str, Any], on_push: PushHandler | None,
                 tag: Any = None) -> None:
        self.on_push, self.tag = on_push, tag
        self.pushes = 0
        super().__init__(ws, welcome)

    @classmethod
    async def connect(cls, url: str, token: str, on_push: PushHandler | None = None, tag: Any = None,
                      compression: str | None = "deflate", timeout: float = 60,
                      forwarded_for: str | None = None) -> WSClient:
        """`forwarded_for`: the client address a trusted proxy in front of the node would name
        (X-Forwarded-For; believed only by a node with server.trusted_proxies covering this client)."""
        ws = await websockets.connect(url, ping_interval=None, max_size=2**20, compression=compression,
                                      open_timeout=timeout, close_timeout=2, max_queue=64,
                                      additional_headers={"X-Forwarded-For": forwarded_for} if forwarded_for else None)
        return cls(ws, await _hello(ws, token, timeout), on_push, tag)

    def _pushed(self, msg: dict[str, Any], t: float) -> None:
        self.pushes += 1
        if self.on_push is not None:
            try:
                self.on_push(self, msg, t)
            except Exception as e:  # a bench bug should be loud but not kill the reader
                log(f"push handler failed: {e!r}")

    async def close(self, timeout: float | None = 3) -> None:
        await super().close(timeout)


async def connect_many(urls: list[str], tokens: list[str], on_push: PushHandler | None = None,
                       concurrency: int = 100, compression: str | None = "deflate",
                       attempts: int = 3, forwarded_for: list[str] | None = None
                       ) -> tuple[list[WSClient | None], int]:
    """Connect token i to urls[i % len(urls)]; (clients, failures). A failed one is None.
    `forwarded_for[i]`: the address token i's connection says it comes from (WSClient.connect)."""
    sem = asyncio.Semaphore(concurrency)
    out: list[WSClient | None] = [None] * len(tokens)
    failures = 0

    async def one(i: int) -> None:
        nonlocal failures
        async with sem:
            for a in range(attempts):
                try:
                    out[i] = await WSClient.connect(urls[i % len(urls)], tokens[i], on_push, tag=i,
                                                    compression=compression,
                                                    forwarded_for=forwarded_for[i] if forwarded_for else None)
                    return
                except Exception as e:
                    if a == attempts - 1:
                        failures += 1
                        if failures <= 5:
                            log(f"connect {i} failed: {e!r}")
                    else:
                        await asyncio.sleep(0.2 * (a + 1))

    await asyncio.gather(*(one(i) for i in range(len(tokens))))
    return out, failures


async def close_all(clients: Iterable[WSClient | None]) -> None:
    cs = [c for c in clients if c is not None]
    for i in range(0, len(cs), 500):
        await asyncio.gather(*(c.close() for c in cs[i : i + 500]), return_exceptions=True)
