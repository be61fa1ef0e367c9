"""Decoding untrusted JSON, once, for every edge: WebSocket frames and HTTP bodies alike.

What the typed structs cannot say is refused here, before any field reaches a domain:

- a NUL character in any string (a value or a key): PostgreSQL refuses it in `text`, so it
  would surface deep inside a command as an unexpected database error; one check here
  covers every text field of every command, present and future;
- nesting deeper than the decoder's recursion limit (msgspec raises RecursionError rather
  than a DecodeError, even inside fields a struct ignores).

Both become `BadRequest`, so the WebSocket answers `bad_request` and stays open and HTTP
answers 400, whatever the route.
"""
from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from infra.errors import BadRequest

T = TypeVar("T")
NUL_MESSAGE = "text must not contain NUL characters"
_generic = msgspec.json.Decoder()


def _holds_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "\x00" in v:
                return True
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def check_nul(raw: str | bytes) -> None:
    """BadRequest if a JSON document carries a NUL character in any of its strings.

    JSON can only carry NUL escaped (a raw control character is invalid JSON), so a document
    without the escape sequence is passed at the cost of one substring search; one that has it
    is decoded generically and walked, so that an escaped backslash before `u0000` is not refused.
    """
    marker: str | bytes = "\\u0000" if isinstance(raw, str) else b"\\u0000"
    if marker not in raw:           # type: ignore[operator]  # str in str, bytes in bytes
        return
    try:
        doc = _generic.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return                      # not JSON at all: the typed decode says why
    if _holds_nul(doc):
        raise BadRequest(NUL_MESSAGE)


def decode(decoder: msgspec.json.Decoder[T], raw: str | bytes, what: str = "frame") -> T:
    """`decoder.decode(raw)`, every failure a BadRequest (the NUL check is `check_nul`'s, done once)."""
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as e:
        raise BadRequest(str(e)) from None
    except msgspec.DecodeError as e:
        raise BadRequest(f"not a valid {what}: {e}") from None
    except RecursionError:
        raise BadRequest(f"{what} nested too deeply") from None

