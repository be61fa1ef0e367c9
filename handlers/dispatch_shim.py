"""TEMPORARY (remove when the dispatch rewrite lands): the new dispatch API over the old one.

The SMS edge is written against DispatchService's new interface:
    on_change(hook, channels)         hook(conn, incident_view, actor_id, via) in the change's transaction
    request_help(..., also=InTxn)     cancel(who, id, *, via, also)     add_note(actor, id, text, *, via, also)
This branch's dispatch still has `change_hooks` / `hooked_channels` and no `also`; this adapter maps
the one onto the other (with a ContextVar of its own that dies with it). `new_api(dispatch)` returns
dispatch itself once it has `on_change`.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from infra.db import Conn
from infra.identity import Account

InTxn = Callable[[Conn], Awaitable[None]]
Hook = Callable[[Conn, dict[str, Any], "str | None", str], Awaitable[None]]


@dataclass
class _Call:
    actor_id: str | None
    via: str
    also: InTxn | None


_call: ContextVar[_Call | None] = ContextVar("dispatch_shim_call", default=None)


class DispatchShim:
    def __init__(self, dispatch: Any) -> None:
        self.d = dispatch
        self.hooks: list[tuple[Hook, frozenset[str]]] = []
        dispatch.change_hooks.append(self._run)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.d, name)

    def on_change(self, hook: Hook, channels: frozenset[str]) -> None:
        self.hooks.append((hook, channels))
        self.d.hooked_channels.update(channels)

    def close(self) -> None:
        if self._run in self.d.change_hooks:
            self.d.change_hooks.remove(self._run)

    async def _run(self, conn: Conn, inc: dict[str, Any]) -> None:
        call = _call.get()
        if call is not None and call.also is not None:
            also, call.also = call.also, None
            await also(conn)
        actor, via = (call.actor_id, call.via) if call is not None else (None, "system")
        for hook, channels in self.hooks:
            if inc.get("channel") in channels:
                await hook(conn, inc, actor, via)

    async def _with(self, call: _Call, fn: Callable[[], Awaitable[Any]]) -> Any:
        token = _call.set(call)
        try:
            return await fn()
        finally:
            _call.reset(token)

    async def request_help(self, who: Account, *, also: InTxn | None = None, **kw: Any) -> Any:
        return await self._with(_Call(who.id, kw["channel"], also), lambda: self.d.request_help(who, **kw))

    async def cancel(self, who: Account, incident_id: str, *, via: str = "ws", also: InTxn | None = None) -> Any:
        return await self._with(_Call(who.id, via, also), lambda: self.d.cancel(who, incident_id))

    async def add_note(self, actor_id: str | None, incident_id: str, text: str, *, via: str,
                       also: InTxn | None = None) -> Any:
        return await self._with(_Call(actor_id, via, also), lambda: self.d.add_note(actor_id, incident_id, text, via))


def new_api(dispatch: Any) -> Any:
    return dispatch if hasattr(dispatch, "on_change") else DispatchShim(dispatch)
