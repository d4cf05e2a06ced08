"""The event bus port: what authz needs from a bus, whichever one runs underneath.

Two implementations share one test suite (``tests/events/``):

- :class:`~lychgate.events.inprocess.InProcessBus`: asyncio only, for a single authz (SQLite).
- :class:`~lychgate.events.postgres.PostgresBus`: PostgreSQL LISTEN/NOTIFY, so that a browser
  waiting on replica A is woken by an approval sent to replica B.

Delivery contract, common to both:

- Every subscriber receives every event published (by anyone on the bus) after its
  ``subscribe()`` block was entered, in publish order for any one publisher, until it leaves the
  block or the bus closes. PostgreSQL also delivers a replica's own events back to it.
- Delivery is at most once. A subscriber that falls behind, or a bus that lost its connection,
  yields a :class:`~lychgate.events.subscription.Lagged` marker where events may be missing; the
  subscriber then re-reads the store (events are notifications, the store is the truth).
- ``publish`` never waits for subscribers; it raises
  :class:`~lychgate.errors.UsageError` for an event that cannot be encoded or is too large
  (:data:`~lychgate.events.codec.MAX_PAYLOAD_BYTES`, enforced by both buses alike), and
  :class:`~lychgate.errors.StoreError` when the database cannot take it.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from lychgate.events.subscription import Subscription
from lychgate.events.types import Event


class EventBus(Protocol):
    """Publish events to, and subscribe to events from, every authz sharing this bus."""

    async def publish(self, event: Event) -> None:
        """Send ``event`` to every current subscriber of the bus (on every replica)."""
        ...

    def subscribe(self) -> AbstractAsyncContextManager[Subscription]:
        """Subscribe for the duration of an ``async with`` block, which yields the iterator."""
        ...

    def end_subscriptions(self) -> None:
        """End every subscription open now (the streams that follow them end too) and keep
        publishing: authz winding down while its gateways still drain. Idempotent."""
        ...

    async def close(self) -> None:
        """Stop the bus: end every subscription and release connections. Idempotent."""
        ...
