"""The lazy deadline (lychgate.gateway.http.timer)."""

from __future__ import annotations

import asyncio

from lychgate.gateway.http.timer import Deadline


async def test_fires_once_after_the_delay() -> None:
    fired: list[float] = []
    loop = asyncio.get_running_loop()
    d = Deadline(loop, lambda: fired.append(loop.time()))
    t0 = loop.time()
    d.set(0.05)
    assert d.armed
    await asyncio.sleep(0.15)
    assert len(fired) == 1
    assert fired[0] - t0 >= 0.04
    assert not d.armed


async def test_moving_later_rearms_and_clear_disarms() -> None:
    fired: list[float] = []
    loop = asyncio.get_running_loop()
    d = Deadline(loop, lambda: fired.append(loop.time()))
    t0 = loop.time()
    d.set(0.05)
    await asyncio.sleep(0.03)
    d.set(0.1)  # later: the first handle fires early and re-arms
    await asyncio.sleep(0.05)
    assert not fired
    await asyncio.sleep(0.1)
    assert len(fired) == 1
    assert fired[0] - t0 >= 0.12
    d.set(0.02)
    d.clear()
    await asyncio.sleep(0.05)
    assert len(fired) == 1


async def test_moving_earlier_replaces_the_handle_and_cancel_stops_it() -> None:
    fired: list[str] = []
    loop = asyncio.get_running_loop()
    d = Deadline(loop, lambda: fired.append("x"))
    d.set(10)
    d.set(0.01)
    await asyncio.sleep(0.05)
    assert fired == ["x"]
    d.set(0.01)
    d.cancel()
    await asyncio.sleep(0.05)
    assert fired == ["x"]
