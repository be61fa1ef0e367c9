"""A node asked to stop stops: each shutdown step is bounded (server/app.py `_bounded`)."""
from __future__ import annotations

import asyncio

import pytest

from server import app as app_module


async def test_a_hung_step_is_left_behind_and_a_finished_one_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "STOP_STEP_S", 0.2)
    hung = asyncio.Event()
    assert await app_module._bounded("a hung part", hung.wait()) is False
    assert await app_module._bounded("a quick part", asyncio.sleep(0)) is True


async def test_a_cancelled_worker_ends_quietly_and_a_failing_step_is_logged_not_raised() -> None:
    worker = asyncio.create_task(asyncio.sleep(60))
    worker.cancel()
    assert await app_module._bounded("a worker", worker) is True

    async def fails() -> None:
        raise RuntimeError("boom")
    assert await app_module._bounded("a failing part", fails()) is True


async def test_the_shutdown_itself_can_still_be_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "STOP_STEP_S", 30)
    stopping = asyncio.create_task(app_module._bounded("a slow part", asyncio.sleep(30)))
    await asyncio.sleep(0.05)
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
