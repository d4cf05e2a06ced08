"""Open WebSockets follow the same bound as requests when the config feed goes silent.

Past ``feed_max_stale`` seconds without the feed (5 minutes by default) the gateway refuses
every request with a 503 (:mod:`.admit_handler`): the revoked set it holds may be missing any
revocation made since, and that is the longest it will act on such a set. A tunnel opened
before that would otherwise go on for as long as its two ends keep it, its session revoked or
not, so when the snapshot expires every open tunnel is closed too. Clients reconnect once the
feed is back, and each reconnect is admitted afresh.

:class:`TunnelGuard` looks once a second, from its own task: a gateway that only carries
WebSocket traffic receives no request that would notice the expiry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from lychgate.gateway.snapshot import SnapshotHolder

log = logging.getLogger(__name__)

CHECK_EVERY: Final = 1.0  # seconds


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
        """Close every tunnel if the snapshot has just expired; returns how many closed."""
        expired = self._holder.is_stale(self._max_stale)
        if expired == self._expired:
            return 0
        self._expired = expired
        if not expired:
            return 0
        closed = self._close_all()
        if closed:
            log.warning(
                "config feed silent for over %.0f s: closed %d tunnel(s); clients reconnect "
                "once it is back",
                self._max_stale,
                closed,
            )
        return closed

    async def run(self, every: float = CHECK_EVERY) -> None:
        while True:
            self.check()
            await asyncio.sleep(every)
