"""Open WebSockets follow the same bound as requests when the config feed goes silent.

Past ``feed_max_stale`` seconds without the feed (5 minutes by default) the gateway refuses
every request with a 503 (:mod:`.admit_handler`): the revoked set it holds may be missing any
revocation made since, and that is the longest it will act on such a set. A tunnel opened
before that would otherwise go on for as long as its two ends keep it, its session revoked or
not, so when the snapshot expires every open tunnel is closed too. Clients reconnect once the
feed is back, and each reconnect is admitted afresh.

:class:`TunnelGuard` looks once a second, from its own task: a gateway that only carries
WebSocket traffic receives no request that would notice the expiry.

Closing what is open leaves a window: a handshake admitted before a revocation (or before the
expiry) whose upstream answers 101 after it would open a tunnel that no closing will reach.
:func:`tunnel_gate` shuts it: the engine asks it as each 101 arrives, and refuses the tunnel
(401, or 503 for an expired feed) instead of opening it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from lychgate.gateway.snapshot import SnapshotHolder
from lychgate.ids import SessionId

log = logging.getLogger(__name__)

CHECK_EVERY: Final = 1.0  # seconds


def tunnel_gate(
    holder: SnapshotHolder, *, max_stale: float
) -> Callable[[SessionId | None], tuple[int, str] | None]:
    """What the engine asks before opening a tunnel (module docstring)."""

    def gate(session_id: SessionId | None) -> tuple[int, str] | None:
        current = holder.current
        if current is None or holder.is_stale(max_stale):
            return 503, "config feed expired during the WebSocket handshake"
        if session_id is not None and session_id in current.revoked_sessions:
            return 401, "session ended during the WebSocket handshake"
        return None

    return gate


class TunnelGuard:
    """Closes every tunnel when the snapshot expires (see the module docstring)."""

    __slots__ = ("_close_all", "_expired", "_holder", "_max_stale")

    def __init__(
        self, holder: SnapshotHolder, close_all: Callable[[], int], *, max_stale: float
    ) -> None:
        self._holder = holder
        self._close_all = close_all
        self._max_stale = max_stale
        self._expired = True  # until a snapshot arrives no tunnel can open: nothing to close

    def check(self) -> int:
        """Close every tunnel (and stream) if the snapshot has just expired; returns how many
        closed."""
        expired = self._holder.is_stale(self._max_stale)
        if expired == self._expired:
            return 0
        self._expired = expired
        if not expired:
            return 0
        closed = self._close_all()
        if closed:
            log.warning(
                "config feed silent for over %.0f s: closed %d WebSocket(s) and stream(s); "
                "clients reconnect once it is back",
                self._max_stale,
                closed,
            )
        return closed

    async def run(self, every: float = CHECK_EVERY) -> None:
        while True:
            self.check()
            await asyncio.sleep(every)
