"""Rate limits for authz (login creation per IP, approvals per device, failed enrollment
attempts per IP).

:class:`RateLimiter` counts in this process's memory: a sliding window per key, at most
``limit`` events in any ``window`` seconds. Keys are bounded (oldest evicted), so a flood of
distinct keys cannot exhaust memory.

:class:`SharedLimit` is what the routes use. On PostgreSQL, where authz runs as a cluster of
replicas, it also counts in the database, so that N replicas behind a load balancer allow
the limit once, not N times: each event is added to a counter per (scope, key, window) of
``window`` seconds, and the limit holds for the sliding estimate ``previous window x (the
share of it still inside the last window seconds) + this window``. The local limiter goes
first, and a key the shared count refused is refused in memory until the time its 429 gave:
a flood at one replica reaches the database about once per refusal, not with every request.
On SQLite (one authz process) the local count is the whole count.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from lychgate.errors import RateLimited, StoreError
from lychgate.store.coordination import RateCounts

log = logging.getLogger(__name__)
_ROUNDING = 1e-9  # an estimate that equals the limit but for float rounding is within it


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
        self.limit = limit
        self.window = window
        self.clock = clock  # monotonic seconds
        self.max_keys = max_keys
        self.what = what
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    @property
    def tracked_keys(self) -> int:
        """How many keys have events counted now (at most ``max_keys``)."""
        return len(self._hits)

    def hit(self, key: str) -> None:
        """Count one event for ``key``; raise :class:`RateLimited` when over the limit."""
        now = self.clock()
        hits = self._hits.get(key)
        if hits is None:
            hits = deque()
            self._hits[key] = hits
            if len(self._hits) > self.max_keys:
                self._hits.popitem(last=False)
        else:
            self._hits.move_to_end(key)
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            retry = max(1, math.ceil(hits[0] + self.window - now))
            raise RateLimited(f"too many {self.what}; try again in {retry} s", retry_after=retry)
        hits.append(now)

    def refund(self, key: str) -> None:
        """Take back the newest event counted for ``key``: for limits on failures, count an
        attempt with :meth:`hit` before trying it (so concurrent tries cannot overshoot), and
        refund it when it succeeds."""
        hits = self._hits.get(key)
        if hits:
            hits.pop()


class SharedLimit:
    """A :class:`RateLimiter`'s limit, counted across every process on the database too
    (see the module docstring). ``counts`` None: the local count alone."""

    __slots__ = ("_blocked", "_clock", "_counts", "_scope", "local")

    def __init__(
        self,
        local: RateLimiter,
        counts: RateCounts | None,
        *,
        scope: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.local = local
        self._counts = counts
        self._scope = scope
        self._clock = clock
        # Keys the shared count refused, and until when (the local clock): refused again in
        # memory until then, so a flood does not reach the database with every request.
        self._blocked: OrderedDict[str, float] = OrderedDict()

    async def hit(self, key: str) -> None:
        """Count one event for ``key``; raise :class:`RateLimited` when over the limit, here
        or across the cluster. Raises StoreError when the shared count fails (authz answers
        503: it fails closed)."""
        local = self.local
        counts = self._counts
        if counts is not None:
            self._refuse_if_blocked(key)
        local.hit(key)
        if counts is None:
            return
        start, elapsed = self._window_of(self._clock())
        digest = _digest(key)
        try:
            current = await counts.add(self._scope, digest, start, 1)
            before = start - timedelta(seconds=local.window)
            previous = await counts.get(self._scope, digest, before)
        except BaseException:
            local.refund(key)
            raise
        if previous * (1 - elapsed) + current > local.limit + _ROUNDING:
            local.refund(key)  # a refusal is no event, here or there
            with contextlib.suppress(StoreError):  # the 429 stands either way
                await counts.add(self._scope, digest, start, -1)
            retry = shared_retry_after(previous, current, local.limit, elapsed, local.window)
            self._block(key, local.clock() + retry)
            raise RateLimited(f"too many {local.what}; try again in {retry} s", retry_after=retry)

    def _refuse_if_blocked(self, key: str) -> None:
        """RateLimited while the shared count's last refusal of ``key`` holds (a flood used
        to cost three database round trips a request)."""
        until = self._blocked.get(key)
        if until is None:
            return
        now = self.local.clock()
        if until <= now:
            del self._blocked[key]
            return
        retry = max(1, math.ceil(until - now))
        what = self.local.what
        raise RateLimited(f"too many {what}; try again in {retry} s", retry_after=retry)

    def _block(self, key: str, until: float) -> None:
        blocked = self._blocked
        blocked[key] = until
        blocked.move_to_end(key)
        if len(blocked) > self.local.max_keys:  # bounded, as the local count's keys are
            blocked.popitem(last=False)

    async def refund(self, key: str) -> None:
        """Take back the newest event counted for ``key`` (see :meth:`RateLimiter.refund`);
        in the shared count, from the window of now. Called once what was counted succeeded,
        so a store failure here is logged, not raised: the success stands."""
        self.local.refund(key)
        if self._counts is not None:
            start, _ = self._window_of(self._clock())
            try:
                await self._counts.add(self._scope, _digest(key), start, -1)
            except StoreError as exc:
                log.warning("rate limit %r: could not take back an event: %s", self._scope, exc)

    def _window_of(self, now: datetime) -> tuple[datetime, float]:
        """The start of the fixed window ``now`` falls in, and how far into it (0 to 1)."""
        window = self.local.window
        at = now.timestamp()
        start = math.floor(at / window) * window
        return datetime.fromtimestamp(start, UTC), (at - start) / window


def shared_retry_after(
    previous: int, current: int, limit: int, elapsed: float, window: float
) -> int:
    """Seconds until the shared estimate counts an event it refused now: ``current`` events
    in this window (the refused one among them), ``previous`` in the one before, and
    ``elapsed`` (0 to 1) of this window gone. At least 1."""
    if current <= limit and previous:  # later in this window: the previous one slides out
        wait = 1 - (limit - current) / previous - elapsed
    else:  # in the next window, once enough of this one's events (the refused one taken
        wait = 1 - elapsed + 1 - (limit - 1) / (current - 1)  # back) have slid out
    return max(1, math.ceil(wait * window - _ROUNDING))


def _digest(key: str) -> str:
    """What the database keeps of a key (an IP, a device id): a one-way hash, 64 hex."""
    return hashlib.sha256(key.encode()).hexdigest()
