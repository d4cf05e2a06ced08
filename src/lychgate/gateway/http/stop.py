"""How a gateway process is asked to stop: once to drain, twice to stop at once.

The first stop signal (SIGTERM, SIGINT, or SIGHUP where it stops the gateway) begins a graceful
drain: no new connections, and up to the drain timeout for what is under way. A second Ctrl-C
(SIGINT) cuts the drain short: what is still under way is cut, and the process exits.

One press of Ctrl-C can arrive more than once. The terminal sends SIGINT to every process of
its group at once, and each supervisor (``serve``'s parent, the workers' supervisor) passes the
stop on to its children as well, so a worker gets the terminal's SIGINT and its supervisor's
SIGTERM, in either order. A SIGINT counts as a second press only when it comes
:data:`SECOND_PRESS_AFTER` seconds or more after the first stop signal; a person does not press
twice faster than that by accident, and a press's echoes come within milliseconds.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterable
from typing import Final

SECOND_PRESS_AFTER: Final = 0.5


def second_press(signum: int, first: float | None, now: float) -> bool:
    """Whether stop signal ``signum``, at ``now``, is a second Ctrl-C after a first stop
    signal at ``first`` (None: this is the first)."""
    return first is not None and signum == signal.SIGINT and now - first >= SECOND_PRESS_AFTER


class Stop:
    """A worker's stop: ``asked`` once any stop signal came, ``hurry`` once a second Ctrl-C
    came. ``wait()`` and ``is_set()`` read ``asked``, as for an :class:`asyncio.Event`."""

    __slots__ = ("_clock", "_first", "asked", "hurry")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._first: float | None = None
        self.asked = asyncio.Event()
        self.hurry = asyncio.Event()

    def signal(self, signum: int) -> None:
        """A stop signal came (a loop's signal handler)."""
        now = self._clock()
        if second_press(signum, self._first, now):
            self.hurry.set()
        elif self._first is None:
            self._first = now
            self.asked.set()

    def install(self, loop: asyncio.AbstractEventLoop, signals: Iterable[int]) -> None:
        """Handle ``signals`` on ``loop`` (which runs in the main thread)."""
        for signum in signals:
            loop.add_signal_handler(signum, self.signal, signum)

    async def wait(self) -> None:
        await self.asked.wait()

    def is_set(self) -> bool:
        return self.asked.is_set()
