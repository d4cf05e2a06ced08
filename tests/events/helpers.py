"""Small helpers shared by the event bus tests."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from lychgate.events import (
    DEFAULT_QUEUE_SIZE,
    Backoff,
    ConfigChanged,
    Event,
    EventBus,
    LoginApproved,
    LoginDenied,
    OpenApp,
    PostgresBus,
    Received,
    SessionRevoked,
    Subscription,
)
from lychgate.ids import DeviceId, LoginRequestId, SessionId, UserId

# No bus test should take long; a bug must fail the test, never hang the suite.
WAIT: Final = 5.0

SAMPLES: Final[tuple[Event, ...]] = (
    LoginApproved(LoginRequestId("lr_1"), UserId("u_1"), DeviceId("d_1")),
    LoginDenied(LoginRequestId("lr_2")),
    SessionRevoked(SessionId("s_1"), UserId("u_1")),
    ConfigChanged("apps"),
    OpenApp(SessionId("s_2"), "https://wiki.example.com/start?x=1"),
)


async def next_item(sub: Subscription, timeout: float = WAIT) -> Received:
    """The next item of ``sub``, failing the test if none arrives within ``timeout``."""
    async with asyncio.timeout(timeout):
        return await anext(sub)


async def take(sub: Subscription, n: int, timeout: float = WAIT) -> list[Received]:
    """The next ``n`` items of ``sub``."""
    async with asyncio.timeout(timeout):
        return [await anext(sub) for _ in range(n)]


async def drain(sub: Subscription, timeout: float = WAIT) -> list[Received]:
    """Everything left in a closed ``sub``, up to its end."""
    async with asyncio.timeout(timeout):
        return [item async for item in sub]


# Fast enough that reconnection tests finish in well under a second.
TEST_BACKOFF = Backoff(initial=0.02, maximum=0.2)


def unique_channel() -> str:
    """A channel of its own for each test, so that parallel or leftover buses never cross."""
    return f"lychgate_test_{secrets.token_hex(8)}"


@dataclass
class BusFactory:
    """Makes buses of one kind. PostgreSQL buses from one factory share a channel, like replicas.

    Every bus made is closed when the test ends.
    """

    kind: str
    _make: Callable[[int], Awaitable[EventBus]]
    made: list[EventBus] = field(default_factory=list)

    async def __call__(self, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> EventBus:
        bus = await self._make(queue_size)
        self.made.append(bus)
        return bus

    async def close_all(self) -> None:
        async with asyncio.timeout(10):
            for bus in self.made:
                await bus.close()


class PgBuses:
    """Opens :class:`PostgresBus` replicas on one shared, fresh channel; closes them at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.channel = unique_channel()
        self._made: list[PostgresBus] = []

    async def open(self, url: str | None = None, **options: Any) -> PostgresBus:
        """A new replica on this test's channel (through ``url`` if given, e.g. a proxy)."""
        options.setdefault("backoff", TEST_BACKOFF)
        options.setdefault("health_interval", 0.5)
        options.setdefault("connect_timeout", 2.0)
        bus = await PostgresBus.connect(url or self.url, channel=self.channel, **options)
        self._made.append(bus)
        return bus

    async def close_all(self) -> None:
        async with asyncio.timeout(10):
            for bus in self._made:
                await bus.close()
