"""Holding a gateway worker's current snapshot, and telling listeners when it changes.

:mod:`.snapshot` offers these names too (where every caller has found them); this module
names :class:`~.snapshot.ConfigSnapshot` only in annotations, so that it can.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from lychgate.ids import SessionId

if TYPE_CHECKING:  # the snapshot module imports this one
    from lychgate.gateway.snapshot import ConfigSnapshot

log = logging.getLogger(__name__)

Listener: TypeAlias = "Callable[[ConfigSnapshot | None, ConfigSnapshot], None]"


class SnapshotHolder:
    """The current snapshot of one gateway worker, and when the feed last vouched for it.

    ``replace`` swaps the snapshot and calls the listeners (``old, new``) in order, e.g. to close
    the tunnels of sessions that ``new`` revokes. A listener that raises is logged and skipped;
    it cannot stop the swap or the other listeners. One event loop, no threads.
    """

    __slots__ = ("_clock", "_current", "_last_updated", "_listeners")

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._current: ConfigSnapshot | None = None
        self._last_updated: float | None = None
        self._listeners: list[Listener] = []

    @property
    def current(self) -> ConfigSnapshot | None:
        return self._current

    @property
    def clock(self) -> Callable[[], float]:
        """The monotonic clock the feed's confirmations (and so the snapshot's age) are on."""
        return self._clock

    @property
    def last_updated(self) -> float | None:
        """Monotonic time of the last snapshot or heartbeat that confirmed it; None if never."""
        return self._last_updated

    def age(self) -> float | None:
        """Seconds since the feed last confirmed the current snapshot; None with no snapshot."""
        if self._last_updated is None:
            return None
        return max(0.0, self._clock() - self._last_updated)

    def is_stale(self, max_age: float) -> bool:
        """True with no snapshot, or when the feed has not confirmed it for ``max_age`` s."""
        age = self.age()
        return age is None or age > max_age

    def replace(self, snapshot: ConfigSnapshot) -> None:
        """Make ``snapshot`` current, then tell the listeners."""
        old = self._current
        self._current = snapshot
        self._last_updated = self._clock()
        for listener in tuple(self._listeners):
            try:
                listener(old, snapshot)
            except Exception:
                log.exception("snapshot listener failed")

    def confirm(self, serial: int) -> bool:
        """A heartbeat says ``serial`` is still authz's latest: refresh the age if it is ours."""
        if self._current is None or self._current.serial != serial:
            return False
        self._last_updated = self._clock()
        return True

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(old, new)`` on every replace; returns a function that removes it."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove


def newly_revoked(old: ConfigSnapshot | None, new: ConfigSnapshot) -> frozenset[SessionId]:
    """Sessions that ``new`` revokes and ``old`` did not (all of them when there was no old)."""
    if old is None:
        return new.revoked_sessions
    return new.revoked_sessions - old.revoked_sessions
