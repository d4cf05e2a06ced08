"""Per-subscriber queues and the fan-out that fills them; shared by every bus.

Theory of operation
-------------------
Each :class:`Subscription` owns a bounded queue. Publishing never waits for a subscriber: the
fan-out appends the event to every queue and returns. The policy for a subscriber that falls
behind is **drop the oldest, then tell it**:

- When a queue is full, its oldest item is discarded and counted.
- Before the subscriber receives anything newer, it receives one :class:`Lagged` marker with the
  number discarded since the previous marker. All discarded items are older than everything still
  queued, so the marker sits exactly where the gap is.
- A bus that may have lost events it never saw (the PostgreSQL listener reconnected) puts a
  ``Lagged(reason="reconnect")`` marker in every queue, in order, once it listens again.

Events are notifications, not state (see :mod:`lychgate.events.types`), so on a ``Lagged`` marker
a subscriber re-reads what it cares about from the store. Memory per subscriber is thus bounded
by ``maxsize`` small frozen objects, however slow the subscriber is.

A subscription has one consumer: iterate it from a single task. Iteration ends once the
subscription is closed (the ``subscribe()`` block exited or the bus closed) and what was already
queued has been drained.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from lychgate.errors import UsageError
from lychgate.events.types import Event

DEFAULT_QUEUE_SIZE: Final = 256


@dataclass(frozen=True, slots=True)
class Lagged:
    """Marker: this subscriber may have missed events; re-read state from the store.

    ``reason`` is ``overflow`` when this subscriber's queue was full (``dropped`` then counts
    the events discarded since the previous marker; a reconnect marker discarded for space is
    folded into it) and ``reconnect`` when the bus itself stopped listening for a while
    (``dropped`` is 0: nobody can know how many events went by).
    """

    reason: Literal["overflow", "reconnect"]
    dropped: int = 0


Received: TypeAlias = Event | Lagged
"""What iterating a subscription yields."""


class Subscription:
    """A bounded queue of events for one subscriber; an async iterator of :data:`Received`."""

    __slots__ = (
        "_closed",
        "_dropped",
        "_items",
        "_maxsize",
        "_owe_marker",
        "_pending_drops",
        "_wakeup",
    )

    def __init__(self, maxsize: int = DEFAULT_QUEUE_SIZE) -> None:
        if maxsize < 1:
            raise UsageError("a subscription queue holds at least one event", field="maxsize")
        self._maxsize = maxsize
        self._items: deque[Received] = deque()
        self._owe_marker = False
        self._pending_drops = 0
        self._closed = False
        self._wakeup = asyncio.Event()
        self._dropped = 0

    @property
    def dropped(self) -> int:
        """Total events discarded for this subscriber because its queue was full."""
        return self._dropped

    @property
    def closed(self) -> bool:
        """True once nothing more will be queued (iteration still drains what is queued)."""
        return self._closed

    def put(self, item: Received) -> None:
        """Queue ``item`` without waiting, discarding the oldest item if the queue is full."""
        if self._closed:
            return
        if len(self._items) >= self._maxsize:
            old = self._items.popleft()
            self._owe_marker = True
            if isinstance(old, Lagged):
                # A discarded marker is not lost: the pending overflow marker stands in for it.
                self._pending_drops += old.dropped
            else:
                self._pending_drops += 1
                self._dropped += 1
        self._items.append(item)
        self._wakeup.set()

    def close(self) -> None:
        """Stop queueing; wake the consumer so that it drains the queue and stops."""
        self._closed = True
        self._wakeup.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Received:
        while True:
            if self._owe_marker:
                dropped, self._pending_drops, self._owe_marker = self._pending_drops, 0, False
                return Lagged("overflow", dropped)
            if self._items:
                return self._items.popleft()
            if self._closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()


class Fanout:
    """The set of live subscriptions of one bus; delivers each item to all of them."""

    __slots__ = ("_closed", "_queue_size", "_subs")

    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        if queue_size < 1:
            raise UsageError("a subscription queue holds at least one event", field="queue_size")
        self._queue_size = queue_size
        self._subs: set[Subscription] = set()
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran: no new subscriptions, every old one ended."""
        return self._closed

    def __len__(self) -> int:
        return len(self._subs)

    def deliver(self, item: Received) -> None:
        """Queue ``item`` for every current subscriber; never waits."""
        for sub in self._subs:
            sub.put(item)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        """Register a subscription for the duration of the ``async with`` block."""
        if self._closed:
            raise UsageError("the event bus is closed", field="bus")
        sub = Subscription(self._queue_size)
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)
            sub.close()

    def end_current(self) -> None:
        """End every subscription open now; later ones are taken as before."""
        for sub in self._subs:
            sub.close()
        self._subs.clear()

    def close(self) -> None:
        """End every subscription; later ``subscribe`` calls fail."""
        self._closed = True
        self.end_current()
