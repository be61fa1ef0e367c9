"""How times and phone numbers are written on the wire, in texts and in logs: one place for each."""
from __future__ import annotations

from datetime import datetime


def iso(t: datetime | None) -> str | None:
    """A UTC timestamp as ISO 8601 with `Z` (what every wire object carries), or None."""
    return t.isoformat().replace("+00:00", "Z") if t else None


def mask_phone(phone: str | None) -> str | None:
    """`+8613812341234` → `+86*******1234`: the country code and the last four digits.

    What staff who may not see a phone, and every log line, get instead of the number."""
    if not phone:
        return None
    head = 3 if phone.startswith("+") else 0
    if len(phone) <= head + 4:
        return "*" * len(phone)
    return phone[:head] + "*" * (len(phone) - head - 4) + phone[-4:]
