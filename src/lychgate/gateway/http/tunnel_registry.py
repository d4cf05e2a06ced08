"""The open tunnels: registered by session, closed when revoked, swept when idle.

Theory of operation
-------------------
Tunnels are registered by session id, so that revoking a session closes its WebSockets
(DESIGN.md, flow 6), and counted for metrics. Each also keeps the app and the signed-in user
it was admitted for, so that a change of the app (removed, admins only, no more WebSockets)
closes the tunnels it no longer admits (:meth:`TunnelRegistry.close_where`).

A tunnel through which no byte has passed, either way, for ``idle_timeout`` seconds is closed
(``limits.tunnel_idle_timeout``, an hour by default): a socket that both ends forgot must not
hold two connections for ever. Rather than read the clock on every read, each tunnel counts the
registry's sweeps, :data:`SWEEPS` per timeout, that saw it silent; a byte resets the count. So
a silent tunnel is closed after ``idle_timeout`` and before ``1 + 1/SWEEPS`` times that.
WebSocket apps and clients that ping (most do, a few times a minute) are never idle.

A tunnel's own life (its byte pump, backpressure, half-close and closing) is :mod:`.tunnel`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from lychgate.gateway.http.tunnel import Tunnel
from lychgate.gateway.http.wsframes import GOING_AWAY, POLICY_VIOLATION
from lychgate.ids import SessionId

# The name it had before the registry moved out of .tunnel: log configurations may use it.
log = logging.getLogger("lychgate.gateway.http.tunnel")

#: Sweeps per idle timeout (see the module docstring).
SWEEPS: Final = 4


class TunnelRegistry:
    """Open tunnels by session, to close them on revocation and count them."""

    __slots__ = (
        "_by_session",
        "_count",
        "_idle_timeout",
        "_shut",
        "_sweeper",
        "drain_timeout",
        "gate",
    )

    def __init__(self, *, idle_timeout: float | None = None, drain_timeout: float = 60.0) -> None:
        self.drain_timeout = drain_timeout  # a closing side has this long to flush
        self._by_session: dict[SessionId | None, set[Tunnel]] = {}
        self._count = 0
        self._idle_timeout = idle_timeout  # None: tunnels never time out
        self._sweeper: asyncio.TimerHandle | None = None  # armed while any tunnel is open
        self._shut = False  # the server is stopping: no tunnel opens any more
        # Asked as each upstream's 101 arrives, before the tunnel opens: (status, why) to
        # refuse it, None to let it open. The gateway refuses a session revoked (or ended)
        # while its handshake was under way, and any while the config feed has expired:
        # those closings happened already, and would miss a tunnel opened after them.
        self.gate: Callable[[SessionId | None], tuple[int, str] | None] | None = None

    @property
    def count(self) -> int:
        return self._count

    def refusal(self, session_id: SessionId | None) -> tuple[int, str] | None:
        """Why a tunnel for ``session_id`` may not open now (the server is stopping, or
        :attr:`gate` says no), or None."""
        if self._shut:
            return 503, "shutting down"
        gate = self.gate
        return None if gate is None else gate(session_id)

    def close_session(self, session_id: SessionId) -> int:
        """Close every tunnel opened for ``session_id``; returns how many."""
        tunnels = self._by_session.pop(session_id, set())
        for tunnel in list(tunnels):
            tunnel.close(cut=True, why="session ended", code=POLICY_VIOLATION)
        return len(tunnels)

    def shut(self) -> int:
        """The server is stopping: close every tunnel, and open none from now on."""
        self._shut = True
        closed = self.close_all("gateway stopping")
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        return closed

    def close_all(self, why: str) -> int:
        """Close every tunnel (the config feed expired, the server stops); returns how many."""
        return self.close_where(lambda tunnel: why, code=GOING_AWAY)

    def close_where(
        self, refused: Callable[[Tunnel], str | None], *, code: int = POLICY_VIOLATION
    ) -> int:
        """Close every tunnel for which ``refused`` says why it may not stay open (None: it
        may), telling its client with a close frame of ``code``; returns how many."""
        closing = [
            (t, why)
            for group in self._by_session.values()
            for t in group
            if (why := refused(t)) is not None
        ]
        for tunnel, why in closing:
            tunnel.close(cut=True, why=why, code=code)
        return len(closing)

    def _add(self, tunnel: Tunnel) -> None:
        self._by_session.setdefault(tunnel.session_id, set()).add(tunnel)
        self._count += 1
        if self._sweeper is None and not self._shut:
            self._arm()

    def _arm(self) -> None:
        if self._idle_timeout is not None:
            loop = asyncio.get_running_loop()
            self._sweeper = loop.call_later(self._idle_timeout / SWEEPS, self._sweep)

    def _sweep(self) -> None:
        """Count one more silent sweep for every tunnel; close those silent for the timeout."""
        self._sweeper = None
        idle: list[Tunnel] = []
        for group in self._by_session.values():
            for tunnel in group:
                # Bytes taken by a side that reads slowly are not silence, though that side
                # pauses the other, so that nothing is read from it meanwhile.
                if tunnel.draining():
                    tunnel.quiet = 0
                tunnel.quiet += 1
                if tunnel.quiet > SWEEPS:
                    idle.append(tunnel)
        for tunnel in idle:
            tunnel.close(cut=True, why="idle (tunnel_idle_timeout)", code=GOING_AWAY)
        if idle:
            log.info("closed %d tunnel(s) idle for %.0f s or more", len(idle), self._idle_timeout)
        if self._count and not self._shut:
            self._arm()

    def _remove(self, tunnel: Tunnel) -> None:
        group = self._by_session.get(tunnel.session_id)
        if group is not None and tunnel in group:
            group.discard(tunnel)
            if not group:
                del self._by_session[tunnel.session_id]
        self._count -= 1
