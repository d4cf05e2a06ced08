"""In-memory rate limits for authz (login creation per IP, approvals per device, failed
enrollment attempts per IP).

A sliding-window counter per key: at most ``limit`` events in any ``window`` seconds. Keys
are bounded (oldest evicted), so a flood of distinct keys cannot exhaust memory. Limits are
per authz process; a cluster multiplies them by its replicas, which is acceptable for abuse
control (the one-time, short-lived requests are the real protection).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable

from lychgate.errors import RateLimited


class RateLimiter:
    def __init__(
        self,
        *,
        limit: int,
        window: float,
        clock: Callable[[], float],
        max_keys: int = 100_000,
        what: str = "requests",
    ) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._max_keys = max_keys
        self._what = what
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    @property
    def tracked_keys(self) -> int:
        """How many keys have events counted now (at most ``max_keys``)."""
        return len(self._hits)

    def hit(self, key: str) -> None:
        """Count one event for ``key``; raise :class:`RateLimited` when over the limit."""
        now = self._clock()
        hits = self._hits.get(key)
        if hits is None:
            hits = deque()
            self._hits[key] = hits
            if len(self._hits) > self._max_keys:
                self._hits.popitem(last=False)
        else:
            self._hits.move_to_end(key)
        while hits and hits[0] <= now - self._window:
            hits.popleft()
        if len(hits) >= self._limit:
            retry = max(1, math.ceil(hits[0] + self._window - now))
            raise RateLimited(f"too many {self._what}; try again in {retry} s", retry_after=retry)
        hits.append(now)

    def refund(self, key: str) -> None:
        """Take back the newest event counted for ``key``: for limits on failures, count an
        attempt with :meth:`hit` before trying it (so concurrent tries cannot overshoot), and
        refund it when it succeeds."""
        hits = self._hits.get(key)
        if hits:
            hits.pop()
