"""infra/logs.py without a server: the two formats, the context fields of a scope, phones masked."""
from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from infra import logs


@pytest.fixture
def captured() -> Iterator[dict[str, tuple[logging.Logger, io.StringIO]]]:
    out = {}
    for fmt in ("text", "json"):
        buf = io.StringIO()
        handler = logging.StreamHandler(buf)
        handler.setFormatter(logs.JsonFormatter() if fmt == "json" else logs.TextFormatter())
        handler.addFilter(logs.ContextFilter())
        lg = logging.getLogger(f"test.logs.{fmt}")
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
        lg.propagate = False
        out[fmt] = (lg, buf)
    yield out
    for lg, _ in out.values():
        lg.handlers.clear()


def test_a_scope_puts_its_ids_on_every_line_and_ends_with_it(captured):
    for lg, _ in captured.values():
        with logs.scope(request_id="r1", account_id="a1", case_id=None):
            logs.add(case_id="c1")
            with logs.scope(command="chat.send"):
                lg.info("inner")
            lg.info("texted %s", "+8613812341234")
        lg.info("outside")
    js = [json.loads(ln) for ln in captured["json"][1].getvalue().splitlines()]
    assert js[0]["command"] == "chat.send" and js[0]["case_id"] == "c1"
    assert js[1]["message"] == "texted +86*******1234"
    assert {k: js[1][k] for k in ("request_id", "account_id", "case_id")} == {"request_id": "r1", "account_id": "a1",
                                                                          "case_id": "c1"}
    assert "command" not in js[1] and "request_id" not in js[2]
    assert set(js[2]) == {"time", "level", "logger", "message"} and js[2]["time"].endswith("Z")
    text = captured["text"][1].getvalue().splitlines()
    assert text[1].endswith("texted +86*******1234 [request_id=r1 account_id=a1 case_id=c1]")
    assert text[2].endswith("outside")
    assert logs.current() == {}


def test_tracebacks_are_masked_too_and_only_ids_go_in_a_scope(captured):
    lg, buf = captured["json"]
    try:
        raise ValueError("duplicate key (phone)=(+8613812341234)")
    except ValueError:
        lg.exception("failed")
    rec = json.loads(buf.getvalue())
    assert "+8613812341234" not in rec["exc"] and "+86*******1234" in rec["exc"]
    with pytest.raises(ValueError, match="phone"), logs.scope(phone="+8613812341234"):
        pass
    with pytest.raises(ValueError):
        logs.setup("yaml")
