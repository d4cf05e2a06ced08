"""The lazy deadline (lychgate.gateway.http.timer), on a fake clock moved by hand.

The fake records every ``call_at`` the deadline makes, so the tests see the laziness itself
(moving the deadline later schedules nothing) and never depend on how fast the machine is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lychgate.gateway.http.timer import Deadline


@dataclass
class FakeHandle:
    at: float
    callback: Callable[[], object]
    cancelled: bool = False

    def when(self) -> float:
        return self.at

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """``time`` and ``call_at`` of an event loop whose time moves only by :meth:`run_until`."""

    def __init__(self) -> None:
        self.now = 0.0
        self.handles: list[FakeHandle] = []  # every call_at, in order

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object], /) -> FakeHandle:
        handle = FakeHandle(when, callback)
        self.handles.append(handle)
        return handle

    @property
    def scheduled(self) -> list[float]:
        """When each call_at was for, cancelled or not."""
        return [h.at for h in self.handles]

    def run_until(self, until: float, *, stalled: bool = False) -> None:
        """Move time to ``until``, running due calls in order of time, each at its time as a
        loop on time does; ``stalled``: as a loop that was blocked until ``until``, so every
        call due by then runs late, at ``until``."""
        if stalled:
            self.now = until
        while due := [h for h in self.handles if not h.cancelled and h.at <= until]:
            handle = min(due, key=lambda h: h.at)
            handle.cancelled = True  # ran: a handle runs once
            self.now = max(self.now, handle.at)
            handle.callback()
        self.now = until


def _deadline() -> tuple[FakeClock, Deadline, list[float]]:
    clock = FakeClock()
    fired: list[float] = []
    return clock, Deadline(clock, lambda: fired.append(clock.time())), fired


def test_fires_once_after_the_delay() -> None:
    clock, d, fired = _deadline()
    d.set(5)
    assert d.armed
    clock.run_until(4.9)
    assert not fired
    clock.run_until(100)
    assert (fired, d.armed) == ([5], False)
    assert clock.scheduled == [5]


def test_moving_later_rearms_and_clear_disarms() -> None:
    clock, d, fired = _deadline()
    d.set(5)
    clock.run_until(3)
    d.set(10)  # later: only a number is stored, no new handle...
    assert clock.scheduled == [5]
    clock.run_until(12.9)  # ...the first one fires early and re-arms for 13
    assert clock.scheduled == [5, 13]
    assert (fired, d.armed) == ([], True)
    clock.run_until(13)
    assert fired == [13]
    d.set(2)
    d.clear()
    assert (fired, d.armed) == ([13], False)
    clock.run_until(100)
    assert fired == [13]


def test_a_stalled_loop_fires_late_once_without_rearming() -> None:
    clock, d, fired = _deadline()
    d.set(5)
    d.set(1)  # earlier: replaces the handle
    clock.run_until(60, stalled=True)  # the loop was blocked past both
    assert fired == [60]
    assert clock.scheduled == [5, 1]
    assert not d.armed


def test_moving_earlier_replaces_the_handle_and_cancel_stops_it() -> None:
    clock, d, fired = _deadline()
    d.set(10)
    d.set(1)
    first, _ = clock.handles
    assert first.cancelled  # the later handle is dropped, not left to fire
    clock.run_until(1)
    assert fired == [1]
    d.set(1)
    d.cancel()
    assert clock.handles[-1].cancelled
    clock.run_until(100)
    assert fired == [1]
    assert clock.scheduled == [10, 1, 2]


def test_left_counts_down_to_the_deadline_and_is_none_while_disarmed() -> None:
    clock = FakeClock()
    fired: list[float] = []
    deadline = Deadline(clock, lambda: fired.append(clock.now))
    assert deadline.left() is None
    deadline.set(10.0)
    clock.run_until(4.0)
    left = deadline.left()
    assert left == 6.0
    deadline.set(left - 5.0)  # pulled in: fires at 5, not 10
    clock.run_until(20.0)
    assert fired == [5.0]
    assert deadline.left() is None
