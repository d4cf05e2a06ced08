"""The in-process event bus: one authz, asyncio only (the embedded SQLite deployment)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from lychgate.errors import UsageError
from lychgate.events.codec import encode
from lychgate.events.subscription import DEFAULT_QUEUE_SIZE, Fanout, Subscription
from lychgate.events.types import Event


class InProcessBus:
    """An :class:`~lychgate.events.bus.EventBus` whose subscribers all live in this process."""

    __slots__ = ("_fanout",)

    def __init__(self, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self._fanout = Fanout(queue_size)

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions are open (for metrics)."""
        return len(self._fanout)

    async def publish(self, event: Event) -> None:
        """Deliver ``event`` to every current subscriber, in call order, without waiting."""
        if self._fanout.closed:
            raise UsageError("the event bus is closed", field="bus")
        # Encode although nothing leaves the process: an event that cannot cross PostgreSQL
        # (unregistered, empty field, over the NOTIFY limit) must fail the same way here, or it
        # would only break once a site scales out.
        encode(event)
        self._fanout.deliver(event)

    def subscribe(self) -> AbstractAsyncContextManager[Subscription]:
        """Subscribe for the duration of an ``async with`` block."""
        return self._fanout.subscribe()

    def end_subscriptions(self) -> None:
        """End every subscription open now; the bus still publishes. Idempotent."""
        self._fanout.end_current()

    async def close(self) -> None:
        """End every subscription. Idempotent."""
        self._fanout.close()
