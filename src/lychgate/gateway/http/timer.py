"""A cheap, re-armable deadline for the hot path, and the wheel that times them.

Keep-alive and read timeouts move on every request or read. Cancelling and re-creating a
``TimerHandle`` each time is measurable at tens of thousands of requests a second, so a
:class:`Deadline` is lazy: moving it later only stores a number, and when its tick comes
early it files itself again for the stored deadline.

Theory of operation
-------------------
A loop timer of its own per deadline would cost every idle keep-alive connection about 650
bytes (uvloop's handle, its libuv timer, a bound method and a context), a quarter of what
the connection costs in all with it. So the deadlines of one event loop are filed on one
*wheel*, by the *tick* they fall in, and the loop runs one timer per tick that holds any: ten
thousand idle connections opened within a few seconds share a few dozen timers, and each
costs the wheel an entry in its tick's table. A tick's deadlines fire in the order they were
filed.

A tick is a power of two of seconds, at most 1/64 of the delay (so that the deadlines of
one delay share few ticks), at least 1/64 s and at most 1 s: a deadline fires when the first
tick at or after it comes, at most 1/64 of its delay late and never more than a second late,
never early. Ticks of every size are multiples of the smaller ones, so they share timers.

One wheel per event loop (:func:`wheel_of`), made with the loop's first deadline. The
registry refers to neither loop nor wheel, so a loop dropped with deadlines still filed is
freed with its wheel and them.
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Callable
from typing import Any, Final, Protocol

log = logging.getLogger(__name__)

#: A tick is at least this long (seconds), and at most MAX_TICK.
MIN_TICK: Final = 2.0**-6
MAX_TICK: Final = 1.0
#: A deadline ``delay`` away is filed in a tick of at most ``delay / TICKS_PER_DELAY``.
TICKS_PER_DELAY: Final = 64


class Clock(Protocol):
    """What deadlines need of their loop: the running event loop, or a fake in tests."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[..., object], /, *args: Any) -> object: ...


def tick_for(delay: float) -> float:
    """The tick that a deadline ``delay`` seconds away is filed in (see the module docstring)."""
    if delay <= MIN_TICK * TICKS_PER_DELAY:
        return MIN_TICK
    return min(MAX_TICK, math.ldexp(1.0, math.frexp(delay / TICKS_PER_DELAY)[1] - 1))


def _spent() -> None:
    """The callback of a deadline cancelled for good."""


class Wheel:
    """The deadlines of one event loop, by the tick they wait for (see the module docstring)."""

    __slots__ = ("__weakref__", "_ticks")

    def __init__(self) -> None:
        # Per tick, its deadlines in the order filed (a dict used as an ordered set).
        self._ticks: dict[float, dict[Deadline, None]] = {}

    @property
    def ticks(self) -> int:
        """How many ticks have deadlines filed (one loop timer each, or one more at most)."""
        return len(self._ticks)

    def file(self, deadline: Deadline, loop: Clock, when: float, now: float) -> float:
        """File ``deadline``, due at ``when``, in its tick; returns the tick's time."""
        tick = tick_for(when - now)
        at = math.ceil(when / tick) * tick
        due = self._ticks.get(at)
        if due is None:
            self._ticks[at] = {deadline: None}
            loop.call_at(at, self._reached, at, loop)
        else:
            due[deadline] = None
        return at

    def unfile(self, deadline: Deadline, at: float) -> None:
        """Take ``deadline`` out of the tick ``at`` (its timer stays: it finds one fewer)."""
        due = self._ticks.get(at)
        if due is not None:
            due.pop(deadline, None)

    def _reached(self, at: float, loop: Clock) -> None:
        due = self._ticks.pop(at, None)
        if not due:
            return
        now = loop.time()
        for deadline in due:
            try:
                deadline.reached(at, now)
            except Exception:  # the others must still fire: a slowloris client is one of them
                log.exception("a timeout's callback failed")


# Weak both ways: a wheel lives as long as a deadline or a pending timer of its loop refers to
# it, and what it holds refers to its loop, so a loop dropped with deadlines still filed (a
# test's) is freed with them, by the cyclic collector.
_wheels: weakref.WeakKeyDictionary[Clock, weakref.ref[Wheel]] = weakref.WeakKeyDictionary()


def wheel_of(loop: Clock) -> Wheel:
    """The wheel of ``loop``'s deadlines, made when it has none."""
    known = _wheels.get(loop)
    wheel = None if known is None else known()
    if wheel is None:
        wheel = Wheel()
        _wheels[loop] = weakref.ref(wheel)
    return wheel


class Deadline:
    """Calls ``callback`` once the deadline set by :meth:`set` passes, unless cleared first."""

    __slots__ = ("_at", "_callback", "_loop", "_wheel", "_when")

    def __init__(self, loop: Clock, callback: Callable[[], object]) -> None:
        self._loop = loop
        self._wheel = wheel_of(loop)
        self._callback = callback
        self._at: float | None = None  # the tick it is filed in
        self._when: float | None = None

    def set(self, delay: float, now: float | None = None) -> None:
        """Fire ``delay`` seconds from now (replacing any earlier setting); ``now``: the loop's
        time, if the caller has just read it."""
        if now is None:
            now = self._loop.time()
        when = now + delay
        self._when = when
        at = self._at
        if at is not None:
            if at <= when:
                return  # its tick comes first, and files it again for ``when``
            self._wheel.unfile(self, at)
        self._at = self._wheel.file(self, self._loop, when, now)

    def clear(self) -> None:
        """Disarm; it stays filed, and does nothing when its tick comes."""
        self._when = None

    def cancel(self) -> None:
        """Disarm for good (on connection close): leave the wheel, and drop the callback, which
        refers back to its owner (a reference cycle that only the cyclic garbage collector
        would free: see :mod:`lychgate.gateway.collector`)."""
        self._when = None
        self._callback = _spent
        at = self._at
        if at is not None:
            self._at = None
            self._wheel.unfile(self, at)

    @property
    def armed(self) -> bool:
        return self._when is not None

    def left(self) -> float | None:
        """Seconds until it fires (negative once overdue); None while disarmed."""
        return None if self._when is None else self._when - self._loop.time()

    def reached(self, at: float, now: float) -> None:
        """The wheel's tick ``at`` came, at ``now``: fire, or file again if moved later."""
        if self._at != at:
            return  # filed elsewhere since
        self._at = None
        when = self._when
        if when is None:
            return
        if now < when:  # moved later since it was filed (or the loop's timer ran early)
            self._at = self._wheel.file(self, self._loop, when, now)
            return
        self._when = None
        self._callback()
