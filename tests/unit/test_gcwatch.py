"""server/gcwatch.py: collections are timed and long ones are reported; thresholds come from config."""
from __future__ import annotations

import gc
import logging

import pytest

from infra import config as config_mod
from server import gcwatch


def test_every_collection_is_timed_and_a_slow_one_is_logged(monkeypatch, caplog):
    seen = []
    stop = gcwatch.watch(lambda gen, took: seen.append((gen, took)))
    try:
        gc.collect(0)
        gc.collect(2)
        assert [g for g, _ in seen][-2:] == [0, 2] and all(t >= 0 for _, t in seen)
        monkeypatch.setattr(gcwatch, "SLOW_S", 0.0)      # every collection counts as slow now
        with caplog.at_level(logging.WARNING, logger="server.gcwatch"):
            gc.collect(1)
        assert "generation 1 held the loop" in caplog.text
    finally:
        stop()
    n = len(seen)
    gc.collect()
    assert len(seen) == n                                 # stopped: no more callbacks


def test_thresholds_are_applied_and_checked(monkeypatch):
    before = gc.get_threshold()
    try:
        gcwatch.tune("50000,50,100")
        assert gc.get_threshold() == (50000, 50, 100)
    finally:
        gc.set_threshold(*before)
    for bad in ("1,2", "a,b,c", "0,10,10"):
        with pytest.raises(config_mod.ConfigError, match="gc_thresholds"):
            config_mod.load({"HELPLINE_SERVER_GC_THRESHOLDS": bad})
