"""The lazy deadline and its wheel (lychgate.gateway.http.timer), on a fake clock moved by hand.

The fake records every ``call_at`` the wheel makes, so the tests see the laziness itself
(moving a deadline later schedules nothing, deadlines share their tick's timer) and never
depend on how fast the machine is.
"""

from __future__ import annotations

import functools
import gc
import itertools
import logging
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from lychgate.gateway.http.timer import (
    MAX_TICK,
    MIN_TICK,
    TICKS_PER_DELAY,
    Deadline,
    tick_for,
    wheel_of,
)


@dataclass
class FakeHandle:
    at: float
    callback: Callable[..., object]
    args: tuple[Any, ...] = field(default=())
    ran: bool = False


class FakeClock:
    """``time`` and ``call_at`` of an event loop whose time moves only by :meth:`run_until`."""

    def __init__(self) -> None:
        self.now = 0.0
        self.handles: list[FakeHandle] = []  # every call_at, in order

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[..., object], /, *args: Any) -> FakeHandle:
        handle = FakeHandle(when, callback, args)
        self.handles.append(handle)
        return handle

    @property
    def scheduled(self) -> list[float]:
        """When each call_at was for."""
        return [h.at for h in self.handles]

    def run_until(self, until: float, *, stalled: bool = False) -> None:
        """Move time to ``until``, running due calls in order of time, each at its time as a
        loop on time does; ``stalled``: as a loop that was blocked until ``until``, so every
        call due by then runs late, at ``until``."""
        if stalled:
            self.now = until
        while due := [h for h in self.handles if not h.ran and h.at <= until]:
            handle = min(due, key=lambda h: h.at)
            handle.ran = True
            self.now = max(self.now, handle.at)
            handle.callback(*handle.args)
        self.now = until


def _deadline(clock: FakeClock | None = None) -> tuple[FakeClock, Deadline, list[float]]:
    clock = clock or FakeClock()
    fired: list[float] = []
    return clock, Deadline(clock, lambda: fired.append(clock.time())), fired


def test_fires_once_after_the_delay() -> None:
    clock, d, fired = _deadline()
    d.set(5)  # a multiple of its tick: fires on time
    assert d.armed
    clock.run_until(4.99)
    assert not fired
    clock.run_until(100)
    assert (fired, d.armed) == ([5], False)
    assert clock.scheduled == [5]


def test_fires_at_the_first_tick_at_or_after_the_deadline() -> None:
    clock, d, fired = _deadline()
    d.set(5.01)  # ticks of 1/16 s for a 5 s delay
    clock.run_until(5.0625 - 1e-9)
    assert not fired
    clock.run_until(100)
    assert fired == [5.0625]


@pytest.mark.parametrize("delay", [0.0, 1e-9, 0.01, 0.3, 1.0, 1.01, 10.0, 60.0, 3600.0, 86400.0])
def test_ticks_are_powers_of_two_within_bounds(delay: float) -> None:
    tick = tick_for(delay)
    assert MIN_TICK <= tick <= MAX_TICK
    assert math.frexp(tick)[0] == 0.5  # a power of two: every tick a multiple of the smaller
    assert tick <= max(MIN_TICK, delay / TICKS_PER_DELAY)


_NOWS = [0.0, 0.3, 12345.678901, 987654.321]
_DELAYS = [0.0, 0.001, 0.0157, 0.5, 0.99, 1.0, 1.0001, 3.3, 10.0, 59.99, 60.0, 3600.0, 86400.0]


@pytest.mark.parametrize(("now", "delay"), list(itertools.product(_NOWS, _DELAYS)))
def test_never_early_and_at_most_a_tick_late(now: float, delay: float) -> None:
    clock = FakeClock()
    clock.now = now
    _, d, fired = _deadline(clock)
    when = now + delay
    d.set(delay)
    clock.run_until(when + MAX_TICK + 1)
    assert len(fired) == 1
    assert when <= fired[0] <= when + tick_for(delay)
    assert fired[0] - when <= max(MIN_TICK, delay / TICKS_PER_DELAY)


def test_moving_later_schedules_nothing_and_the_tick_refiles_it() -> None:
    clock, d, fired = _deadline()
    d.set(5)
    clock.run_until(3)
    d.set(10)  # later: only a number is stored...
    assert clock.scheduled == [5]
    clock.run_until(12.9)  # ...its tick came at 5 and filed it again for 13
    assert clock.scheduled == [5, 13]
    assert (fired, d.armed) == ([], True)
    clock.run_until(13)
    assert fired == [13]
    d.set(2)
    d.clear()
    assert (fired, d.armed) == ([13], False)
    clock.run_until(100)
    assert fired == [13]


def test_a_stalled_loop_fires_late_once_without_refiling() -> None:
    clock, d, fired = _deadline()
    d.set(5)
    d.set(1)  # earlier: filed in the earlier tick
    clock.run_until(60, stalled=True)  # the loop was blocked past both
    assert fired == [60]
    assert clock.scheduled == [5, 1]
    assert not d.armed


def test_moving_earlier_leaves_the_later_tick_and_cancel_leaves_the_wheel() -> None:
    clock, d, fired = _deadline()
    wheel = wheel_of(clock)
    d.set(10)
    d.set(1)
    assert wheel.ticks == 2  # the tick at 10 stays, now empty: its timer finds nothing
    clock.run_until(1)
    assert fired == [1]
    d.set(1)
    d.cancel()
    assert not d.armed
    clock.run_until(100)
    assert fired == [1]
    assert clock.scheduled == [10, 1, 2]
    assert wheel.ticks == 0


def test_cancel_drops_the_callback_at_once() -> None:
    clock = FakeClock()

    class Owner:
        def __init__(self) -> None:
            self.deadline = Deadline(clock, self.fire)

        def fire(self) -> None:
            raise AssertionError("cancelled")

    owner = Owner()
    owner.deadline.set(5)
    owner.deadline.cancel()
    gone = weakref.ref(owner)
    gc.disable()  # freed by reference counting alone: no cycle through the wheel
    try:
        del owner
        assert gone() is None
    finally:
        gc.enable()
    clock.run_until(100)


def test_left_counts_down_to_the_deadline_and_is_none_while_disarmed() -> None:
    clock, deadline, fired = _deadline()
    assert deadline.left() is None
    deadline.set(10.0)
    clock.run_until(4.0)
    left = deadline.left()
    assert left == 6.0
    deadline.set(left - 5.0)  # pulled in: fires at 5, not 10
    clock.run_until(20.0)
    assert fired == [5.0]
    assert deadline.left() is None


def test_deadlines_of_one_loop_share_their_ticks_timers() -> None:
    clock = FakeClock()
    fired: list[int] = []
    deadlines = [Deadline(clock, functools.partial(fired.append, i)) for i in range(10_000)]
    for i, d in enumerate(deadlines):  # an idle timeout of 60 s, the connections 5 s apart
        clock.now = i * 5 / len(deadlines)
        d.set(60)
    assert len(clock.handles) <= 5 / tick_for(60) + 1  # 11 timers for 10,000 deadlines
    clock.run_until(65 + tick_for(60))
    assert sorted(fired) == list(range(10_000))
    assert wheel_of(clock).ticks == 0


def test_each_loop_has_its_own_wheel_freed_with_it() -> None:
    a, b = FakeClock(), FakeClock()
    assert wheel_of(a) is wheel_of(a)
    assert wheel_of(a) is not wheel_of(b)
    gone = weakref.ref(wheel_of(b))
    _, d, fired = _deadline(b)
    d.set(5)  # the wheel holds it, it holds the loop, and the loop's timer holds the wheel
    del d, b, fired
    gc.collect()  # a loop dropped with a deadline filed: loop, wheel and deadline go together
    assert gone() is None


def test_a_failing_callback_does_not_stop_the_others_in_its_tick(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    fired: list[str] = []

    def fail() -> None:
        raise RuntimeError("boom")

    deadlines = [Deadline(clock, fail)] + [
        Deadline(clock, functools.partial(fired.append, n)) for n in ("a", "b", "c")
    ]
    for d in deadlines:
        d.set(1)
    with caplog.at_level(logging.ERROR, "lychgate.gateway.http.timer"):
        clock.run_until(2)
    assert sorted(fired) == ["a", "b", "c"]
    assert "a timeout's callback failed" in caplog.text
    assert "boom" in caplog.text


def test_callbacks_may_move_cancel_and_set_others_in_the_same_tick() -> None:
    clock = FakeClock()
    fired: list[str] = []
    late = Deadline(clock, lambda: fired.append("late"))
    gone = Deadline(clock, lambda: fired.append("gone"))
    again = Deadline(clock, lambda: fired.append("again"))

    def first() -> None:
        fired.append("first")
        late.set(3)  # still filed in this tick: it files itself again
        gone.cancel()
        again.set(0)  # this very moment: a new timer, due at once

    lead = Deadline(clock, first)
    for d in (lead, late, gone):
        d.set(1)
    clock.run_until(1)
    assert fired == ["first", "again"]  # a tick fires in the order filed
    clock.run_until(10)
    assert fired[2:] == ["late"]
    assert late.left() is None


def test_a_caller_that_has_just_read_the_time_may_pass_it() -> None:
    clock, d, fired = _deadline()
    clock.run_until(2)
    d.set(3, 1.5)  # read at 1.5, the time that counts: due at 4.5, not 5
    clock.run_until(4.5)
    assert fired == [4.5]
