"""A cheap, re-armable deadline for the hot path.

Keep-alive and read timeouts move on every request or read. Cancelling and re-creating a
``TimerHandle`` each time is measurable at tens of thousands of requests a second, so a
:class:`Deadline` keeps at most one handle: moving the deadline later only stores a number, and
the handle, when it fires early, re-arms itself for the stored deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    """What :class:`Deadline` needs of a scheduled call (``asyncio.TimerHandle``)."""

    def when(self) -> float: ...

    def cancel(self) -> None: ...


class Clock(Protocol):
    """What :class:`Deadline` needs of its loop: the running event loop, or a fake in tests."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object], /) -> TimerHandle: ...


def _spent() -> None:
    """The callback of a deadline cancelled for good."""


class Deadline:
    """Calls ``callback`` once the deadline set by :meth:`set` passes, unless cleared first."""

    __slots__ = ("_callback", "_handle", "_loop", "_when")

    def __init__(self, loop: Clock, callback: Callable[[], object]) -> None:
        self._loop = loop
        self._callback = callback
        self._handle: TimerHandle | None = None
        self._when: float | None = None

    def set(self, delay: float) -> None:
        """Fire ``delay`` seconds from now (replacing any earlier setting)."""
        when = self._loop.time() + delay
        self._when = when
        handle = self._handle
        if handle is not None and handle.when() <= when:
            return  # it fires first and re-arms for ``when``
        if handle is not None:
            handle.cancel()
        self._handle = self._loop.call_at(when, self._fire)

    def clear(self) -> None:
        """Disarm; a pending handle stays and does nothing when it fires."""
        self._when = None

    def cancel(self) -> None:
        """Disarm for good (on connection close): drop the handle, and the callback, which
        refers back to its owner (a reference cycle that only the cyclic garbage collector
        would free: see :mod:`lychgate.gateway.collector`)."""
        self._when = None
        self._callback = _spent
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    @property
    def armed(self) -> bool:
        return self._when is not None

    def left(self) -> float | None:
        """Seconds until it fires (negative once overdue); None while disarmed."""
        return None if self._when is None else self._when - self._loop.time()

    def _fire(self) -> None:
        self._handle = None
        when = self._when
        if when is None:
            return
        if self._loop.time() < when:
            self._handle = self._loop.call_at(when, self._fire)
            return
        self._when = None
        self._callback()
