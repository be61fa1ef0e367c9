"""The WebSocket command table's building blocks: type → (message struct, roles allowed, handler).

The table itself is written out in one place, handlers/commands.py. A handler gets the
connection and the decoded, validated message, and returns the fields of the `ok` answer
(or None).
"""
from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from handlers.connection import Connection

Handler = Callable[["Connection", Any], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True)
class Command:
    type: str
    roles: frozenset[str]
    fn: Handler
    decoder: msgspec.json.Decoder[Any]
    struct: builtins.type[msgspec.Struct]    # what decoder decodes (the AsyncAPI document shows its schema)


def command(type_: str, struct: type[msgspec.Struct], roles: Iterable[str], fn: Handler) -> Command:
    return Command(type_, frozenset(roles), fn, msgspec.json.Decoder(struct), struct)


def table(*commands: Command) -> dict[str, Command]:
    out: dict[str, Command] = {}
    for c in commands:
        if c.type in out:
            raise RuntimeError(f"command {c.type} listed twice")
        out[c.type] = c
    return out
