"""Which sessions have a portal page listening on this authz: so that the device learns
whether the app it opened reached a browser.

Theory of operation
-------------------
``OpenApp`` is a notification on the bus, delivered at most once to whoever subscribes at the
time (:mod:`lychgate.events.bus`): one published while no portal page of the session listens
is lost, and ``lychgate device open`` used to say "opening" all the same. Each portal event
stream (:mod:`.events`) counts itself here for its session while it is subscribed, and the
device's ``open`` looks here *before* it publishes: a stream counted then was subscribed then,
so it receives the event (this count and the in-process publish take no await in between).

The count covers this process only. With an :class:`~lychgate.events.InProcessBus` this
authz is the only one (SQLite), so no count means no browser; over PostgreSQL a page may
listen on another replica, so a count of none means "unknown" (:meth:`Listeners.delivery`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.datastructures import State

from lychgate.events import EventBus, InProcessBus
from lychgate.ids import SessionId


class Listeners:
    """How many portal event streams of each session are open in this process."""

    __slots__ = ("_open",)

    def __init__(self) -> None:
        self._open: Counter[SessionId] = Counter()

    @contextmanager
    def listening(self, session_id: SessionId) -> Iterator[None]:
        """Count a stream of ``session_id`` for the duration of the ``with`` block."""
        self._open[session_id] += 1
        try:
            yield
        finally:
            self._open[session_id] -= 1
            if self._open[session_id] <= 0:
                del self._open[session_id]

    def listens(self, session_id: SessionId) -> bool:
        return self._open[session_id] > 0

    def delivery(self, session_id: SessionId, bus: EventBus) -> bool | None:
        """Whether an event published now reaches a portal page of ``session_id``: True or
        False when this process can tell, None when a page may listen on another replica."""
        if self.listens(session_id):
            return True
        return False if isinstance(bus, InProcessBus) else None


def listeners_of(state: State) -> Listeners:
    """The app's :class:`Listeners`: the portal's streams and the device's ``open`` share it
    through ``app.state``, as they share the rate limiters. authz's app makes it at start; one
    is made here on first use where routes run without it (a test's bare app)."""
    found = getattr(state, "portal_listeners", None)
    if not isinstance(found, Listeners):
        found = Listeners()
        state.portal_listeners = found
    return found
