"""The WebSocket command table: type → (message struct, roles allowed, handler).

A module adds its commands with the `command` decorator at import time;
handlers/ws.py looks them up. A handler gets the connection and the decoded,
validated message, and returns the fields of the `ok` answer (or None).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

Handler = Callable[[Any, Any], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True)
class Command:
    type: str
    roles: frozenset[str]
    fn: Handler
    decoder: msgspec.json.Decoder


COMMANDS: dict[str, Command] = {}


def command(type_: str, struct: type[msgspec.Struct], roles: set[str] | frozenset[str]) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        if type_ in COMMANDS:
            raise RuntimeError(f"command {type_} registered twice")
        COMMANDS[type_] = Command(type_, frozenset(roles), fn, msgspec.json.Decoder(struct))
        return fn
    return register
