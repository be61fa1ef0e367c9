"""How times and phone numbers are written on the wire, in texts and in logs: one place for each."""
from __future__ import annotations

from datetime import UTC, datetime

from infra.errors import BadRequest


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


def seal(sha256: str | None) -> str | None:
    """A signed text's short reference for people: the first 8 hex digits of its SHA-256, `3F2A-9C1B`.

    What residents read (on the page, in the settlement text) instead of 64 hex characters; staff
    keep the full SHA-256 to prove a copy."""
    if not sha256:
        return None
    head = sha256[:8].upper()
    return f"{head[:4]}-{head[4:]}"


def instant(raw: str, field: str) -> datetime:
    """A date (2026-11-29, midnight UTC) or a time with its offset (2026-11-29T08:00:00+08:00); a bad one is
    refused naming the field (`helpline audit --since`, the admin console's audit filters)."""
    try:
        t = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{field}: a date (YYYY-MM-DD) or an ISO 8601 time, not {raw!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)
