"""handlers/ws.py Admission: at most `limit` commands at once, a bounded line behind them, FIFO hand-over."""
from __future__ import annotations

import asyncio

import pytest

from handlers.admission import Admission
from infra.errors import Unavailable


async def test_limit_line_and_shedding():
    adm = Admission(limit=2, max_waiting=2)
    order: list[int] = []
    gates = [asyncio.Event() for _ in range(4)]

    async def cmd(i: int) -> None:
        async with adm:
            order.append(i)
            await gates[i].wait()

    tasks = [asyncio.create_task(cmd(i)) for i in range(4)]
    await asyncio.sleep(0.01)
    assert (adm.running, adm.waiting, order) == (2, 2, [0, 1])
    with pytest.raises(Unavailable):           # a fifth finds the line full: answered at once
        async with adm:
            pass
    gates[1].set()
    await asyncio.sleep(0.01)
    assert order == [0, 1, 2]                   # first come, first served
    for g in gates:
        g.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3] and (adm.running, adm.waiting) == (0, 0)


async def test_a_cancelled_waiter_gives_up_its_place_and_never_leaks_a_slot():
    adm = Admission(limit=1, max_waiting=5)
    hold = asyncio.Event()

    async def holder() -> None:
        async with adm:
            await hold.wait()

    async def waiter() -> None:
        async with adm:
            pass

    h = asyncio.create_task(holder())
    await asyncio.sleep(0)
    w1, w2 = asyncio.create_task(waiter()), asyncio.create_task(waiter())
    await asyncio.sleep(0.01)
    assert adm.waiting == 2
    w1.cancel()
    await asyncio.sleep(0.01)
    assert adm.waiting == 1
    hold.set()
    await asyncio.gather(h, w2)
    assert w1.cancelled() and (adm.running, adm.waiting) == (0, 0)
