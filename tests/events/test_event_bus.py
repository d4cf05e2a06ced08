"""The delivery contract (lychgate.events.bus), run against every bus implementation."""

from __future__ import annotations

import asyncio

import pytest

from events.helpers import SAMPLES, WAIT, BusFactory, drain, next_item, take
from lychgate.errors import UsageError
from lychgate.events import MAX_PAYLOAD_BYTES, ConfigChanged, Event, Lagged, OpenApp
from lychgate.ids import SessionId


def config(n: int) -> ConfigChanged:
    return ConfigChanged(f"change-{n}")


async def test_subscriber_receives_each_kind_of_event(bus_factory: BusFactory) -> None:
    bus = await bus_factory()
    async with bus.subscribe() as sub:
        for event in SAMPLES:
            await bus.publish(event)
        assert await take(sub, len(SAMPLES)) == list(SAMPLES)


async def test_every_subscriber_gets_every_event(bus_factory: BusFactory) -> None:
    bus = await bus_factory()
    async with bus.subscribe() as a, bus.subscribe() as b, bus.subscribe() as c:
        for event in SAMPLES:
            await bus.publish(event)
        for sub in (a, b, c):
            assert await take(sub, len(SAMPLES)) == list(SAMPLES)


async def test_events_arrive_in_publish_order(bus_factory: BusFactory) -> None:
    bus = await bus_factory()
    events = [config(i) for i in range(200)]
    async with bus.subscribe() as sub:
        for event in events:
            await bus.publish(event)
        assert await take(sub, len(events)) == events


async def test_concurrent_publishers_each_keep_their_order(bus_factory: BusFactory) -> None:
    bus = await bus_factory()
    per_task = 30

    async def publish_run(prefix: str) -> None:
        for i in range(per_task):
            await bus.publish(ConfigChanged(f"{prefix}-{i}"))

    async with bus.subscribe() as sub:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(publish_run("a"))
            tg.create_task(publish_run("b"))
        got = await take(sub, 2 * per_task)
    for prefix in ("a", "b"):
        mine = [e.what for e in got if isinstance(e, ConfigChanged) and e.what.startswith(prefix)]
        assert mine == [f"{prefix}-{i}" for i in range(per_task)]


async def test_events_published_before_subscribing_are_not_delivered(
    bus_factory: BusFactory,
) -> None:
    bus = await bus_factory()
    async with bus.subscribe() as early:
        await bus.publish(config(1))
        # Once an existing subscriber has it, the bus has finished delivering it everywhere.
        assert await next_item(early) == config(1)
        async with bus.subscribe() as late:
            await bus.publish(config(2))
            assert await next_item(late) == config(2)
            assert await next_item(early) == config(2)


async def test_leaving_the_block_unsubscribes(bus_factory: BusFactory) -> None:
    bus = await bus_factory()
    async with bus.subscribe() as stays:
        async with bus.subscribe() as leaves:
            await bus.publish(config(1))
            assert await next_item(leaves) == config(1)
        assert leaves.closed
        await bus.publish(config(2))
        assert await next_item(stays) == config(1)
        assert await next_item(stays) == config(2)
        # The departed subscription ends instead of growing or blocking.
        assert await drain(leaves) == []


async def test_unsubscribed_queue_drains_then_ends(bus_factory: BusFactory) -> None:
    bus = await bus_factory()
    async with bus.subscribe() as witness:
        async with bus.subscribe() as sub:
            await bus.publish(config(1))
            await bus.publish(config(2))
            assert await take(witness, 2) == [config(1), config(2)]
        # Already queued when the block ended: still handed over, then the iterator stops.
        assert await drain(sub) == [config(1), config(2)]


async def test_close_ends_a_waiting_subscriber(bus_factory: BusFactory) -> None:
    bus = await bus_factory()
    received: list[object] = []

    async with bus.subscribe() as sub:

        async def consume() -> None:
            async for item in sub:
                received.append(item)

        async with asyncio.timeout(WAIT), asyncio.TaskGroup() as tg:
            consumer = tg.create_task(consume())
            await bus.publish(config(1))
            while not received:
                await asyncio.sleep(0.01)
            await bus.close()
        assert consumer.done()
    assert received == [config(1)]


async def test_closed_bus_refuses_publish_and_subscribe(bus_factory: BusFactory) -> None:
    bus = await bus_factory()
    await bus.close()
    await bus.close()  # idempotent
    with pytest.raises(UsageError):
        await bus.publish(config(1))
    with pytest.raises(UsageError):
        async with bus.subscribe():
            pass


async def test_ending_subscriptions_keeps_the_bus_open(bus_factory: BusFactory) -> None:
    # authz winding down under serve: its pages' streams end, while a sign-out in the gateway's
    # drain still publishes, and a subscription taken after still works.
    bus = await bus_factory()
    async with bus.subscribe() as old:
        await bus.publish(config(1))
        assert await next_item(old) == config(1)
        bus.end_subscriptions()
        bus.end_subscriptions()  # idempotent
        assert await drain(old) == []
        async with bus.subscribe() as new:
            await bus.publish(config(2))
            assert await next_item(new) == config(2)
        assert await drain(old) == []  # an ended subscription takes nothing more


async def test_oversize_event_is_rejected_and_the_bus_keeps_working(
    bus_factory: BusFactory,
) -> None:
    bus = await bus_factory()
    huge = OpenApp(SessionId("s_1"), "https://a.example/" + "x" * MAX_PAYLOAD_BYTES)
    async with bus.subscribe() as sub:
        with pytest.raises(UsageError, match="limit"):
            await bus.publish(huge)
        await bus.publish(config(1))
        assert await next_item(sub) == config(1)


async def test_empty_field_is_rejected_by_every_bus(bus_factory: BusFactory) -> None:
    bus = await bus_factory()
    with pytest.raises(UsageError) as info:
        await bus.publish(ConfigChanged(""))
    assert info.value.field == "what"


async def test_slow_subscriber_loses_oldest_and_is_told(bus_factory: BusFactory) -> None:
    bus = await bus_factory(queue_size=4)
    events: list[Event] = [config(i) for i in range(10)]
    async with bus.subscribe() as slow, bus.subscribe() as fast:
        for event in events:
            await bus.publish(event)
            # Keeping pace with ``fast`` proves each event was fanned out before the next.
            assert await next_item(fast) == event
        assert await take(slow, 5) == [Lagged("overflow", 6), *events[6:]]
        assert slow.dropped == 6
        assert fast.dropped == 0


async def test_subscriber_catches_up_after_lagging(bus_factory: BusFactory) -> None:
    bus = await bus_factory(queue_size=2)
    async with bus.subscribe() as slow, bus.subscribe() as fast:
        for i in range(5):
            await bus.publish(config(i))
            await next_item(fast)
        assert await take(slow, 3) == [Lagged("overflow", 3), config(3), config(4)]
        await bus.publish(config(5))
        assert await next_item(slow) == config(5)
