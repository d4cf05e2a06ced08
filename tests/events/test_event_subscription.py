"""The bounded queue behind every subscription: drop the oldest, then say so."""

from __future__ import annotations

import asyncio

import pytest

from events.helpers import drain, next_item, take
from lychgate.errors import UsageError
from lychgate.events import ConfigChanged, Lagged, Subscription
from lychgate.events.subscription import Fanout


def config(n: int) -> ConfigChanged:
    return ConfigChanged(f"change-{n}")


async def test_queue_within_bounds_keeps_everything() -> None:
    sub = Subscription(maxsize=3)
    for i in range(3):
        sub.put(config(i))
    assert await take(sub, 3) == [config(0), config(1), config(2)]
    assert sub.dropped == 0


async def test_overflow_drops_oldest_and_marks_the_gap() -> None:
    sub = Subscription(maxsize=3)
    for i in range(8):
        sub.put(config(i))
    assert await take(sub, 4) == [Lagged("overflow", 5), config(5), config(6), config(7)]
    assert sub.dropped == 5


async def test_marker_counts_only_since_the_previous_marker() -> None:
    sub = Subscription(maxsize=1)
    sub.put(config(0))
    sub.put(config(1))
    assert await take(sub, 2) == [Lagged("overflow", 1), config(1)]
    for i in range(2, 5):
        sub.put(config(i))
    assert await take(sub, 2) == [Lagged("overflow", 2), config(4)]
    assert sub.dropped == 3


async def test_a_reconnect_marker_squeezed_out_still_warns() -> None:
    sub = Subscription(maxsize=2)
    sub.put(Lagged("reconnect"))
    sub.put(config(0))
    sub.put(config(1))  # pushes the reconnect marker out
    assert await take(sub, 3) == [Lagged("overflow", 0), config(0), config(1)]
    assert sub.dropped == 0  # no event was lost to overflow, only the marker was folded


async def test_reconnect_marker_keeps_its_place() -> None:
    sub = Subscription(maxsize=4)
    sub.put(config(0))
    sub.put(Lagged("reconnect"))
    sub.put(config(1))
    assert await take(sub, 3) == [config(0), Lagged("reconnect"), config(1)]


async def test_waiting_consumer_is_woken_by_put() -> None:
    sub = Subscription()
    async with asyncio.TaskGroup() as tg:
        waiter = tg.create_task(next_item(sub))
        await asyncio.sleep(0)
        assert not waiter.done()
        sub.put(config(1))
    assert waiter.result() == config(1)


async def test_close_drains_then_stops_and_ignores_later_puts() -> None:
    sub = Subscription()
    sub.put(config(1))
    sub.close()
    sub.put(config(2))
    assert sub.closed
    assert await drain(sub) == [config(1)]
    assert await drain(sub) == []


async def test_close_wakes_a_waiting_consumer() -> None:
    sub = Subscription()
    async with asyncio.TaskGroup() as tg:
        waiter = tg.create_task(drain(sub))
        await asyncio.sleep(0)
        sub.close()
    assert waiter.result() == []


@pytest.mark.parametrize("size", [0, -1])
def test_queue_must_hold_something(size: int) -> None:
    with pytest.raises(UsageError):
        Subscription(maxsize=size)
    with pytest.raises(UsageError):
        Fanout(queue_size=size)


async def test_fanout_counts_subscriptions() -> None:
    fanout = Fanout()
    async with fanout.subscribe(), fanout.subscribe():
        assert len(fanout) == 2
    assert len(fanout) == 0


async def test_fanout_subscription_ended_by_an_error_is_removed() -> None:
    fanout = Fanout()
    with pytest.raises(RuntimeError):
        async with fanout.subscribe() as sub:
            raise RuntimeError("handler failed")
    assert len(fanout) == 0
    assert sub.closed
