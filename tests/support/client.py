"""A WebSocket client of the contract: commands by ref, pushes collected in order."""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import websockets


class ProtocolError(AssertionError):
    pass


async def http(method: str, url: str, token: str | None = None, **kw: Any) -> tuple[int, Any]:
    headers = kw.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as s:
        async with s.request(method, url, headers=headers, **kw) as r:
            text = await r.text()
            try:
                return r.status, json.loads(text)
            except ValueError:
                return r.status, text


class Client:
    _refs = itertools.count(1)

    def __init__(self, ws: Any, welcome: dict[str, Any]) -> None:
        self.ws, self.welcome = ws, welcome
        self.pushes: list[dict[str, Any]] = []
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.changed = asyncio.Event()
        self.closed: BaseException | None = None
        self.close_code: int | None = None
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, ws_url: str, token: str, **kw: Any) -> "Client":
        ws = await websockets.connect(ws_url, max_size=None, open_timeout=10, **kw)
        await ws.send(json.dumps({"type": "hello", "token": token}))
        welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if welcome.get("type") != "welcome":
            raise ProtocolError(f"hello answered {welcome}")
        return cls(ws, welcome)

    @property
    def account_id(self) -> str:
        return self.welcome["account"]["id"]

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                ref = msg.get("ref")
                if msg.get("type") in ("ok", "error") and ref in self.waiting:
                    self.waiting.pop(ref).set_result(msg)
                else:
                    self.pushes.append(msg)
                    self.changed.set()
        except Exception as e:
            self.closed = e
        finally:
            self.close_code = self.ws.close_code
            if self.closed is None:
                self.closed = ConnectionError("closed")
            self.changed.set()
            for f in self.waiting.values():
                if not f.done():
                    f.set_exception(ConnectionError("closed"))

    async def call(self, type_: str, timeout: float = 10, **fields: Any) -> dict[str, Any]:
        ref = f"r{next(self._refs)}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[ref] = fut
        await self.ws.send(json.dumps({"type": type_, "ref": ref, **fields}))
        return await asyncio.wait_for(fut, timeout)

    async def ok(self, type_: str, **fields: Any) -> dict[str, Any]:
        msg = await self.call(type_, **fields)
        if msg.get("type") != "ok":
            raise ProtocolError(f"{type_} {fields} answered {msg}")
        return msg

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
                                    f"(got {[p.get('type') for p in self.pushes][-8:]}, closed={self.closed!r})")
            self.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)

    async def no_push(self, type_: str, where: Callable[[dict[str, Any]], bool] = lambda m: True,
                      wait: float = 0.5) -> None:
        await asyncio.sleep(wait)
        hits = [m for m in self.pushes if m.get("type") == type_ and where(m)]
        if hits:
            raise ProtocolError(f"unexpected {type_} push: {hits[0]}")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        self.reader.cancel()
        with contextlib.suppress(BaseException):
            await self.reader


def incident_is(iid: str, *statuses: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("incident", {}).get("id") == iid and (not statuses or m["incident"]["status"] in statuses)


HOME = (31.2304, 121.4737)


def near(dlat: float, dlon: float = 0.0) -> dict[str, float]:
    """A point about 110 m north per 0.001 of dlat from HOME."""
    return {"lat": round(HOME[0] + dlat, 6), "lon": round(HOME[1] + dlon, 6)}
