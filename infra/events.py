"""Events collected inside a transaction and published on Redis only after it commits."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

_encode = msgspec.json.Encoder().encode


@dataclass
class Outbox:
    """Events collected inside a transaction, published after it commits."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, channel: str, message: dict[str, Any]) -> None:
        self.add_to([channel], message)

    def add_to(self, channels: list[str], message: dict[str, Any]) -> None:
        """One message for several channels, encoded once."""
        payload = _encode(message).decode()
        self.items.extend((channel, payload) for channel in channels)
