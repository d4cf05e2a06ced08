"""authz's half of the config feed: :func:`feed_lines`, the generator it serves the feed from.

The lines, their encoding and the kinds of message are in :mod:`lychgate.gateway.feed_wire`.

Theory of operation
-------------------
:func:`feed_lines` turns any async stream of snapshots (authz builds it from its event bus) into
the feed's lines. It coalesces: if several snapshots arrive while the client is slow to read, only
the newest is sent, since each one is complete. A connection holds one snapshot waiting to be
sent, never a queue of them: a gateway that stops reading (paused, or its loop blocked) while
the config keeps changing used to make authz keep every snapshot published meanwhile, some
3 MB each at ten thousand users, until it read again. No update is lost by this: an update
is worked out when it is sent, from the last snapshot this connection carried to the newest,
so the sessions, users and apps of the snapshots skipped are in it; when the two differ in
more than an update can say (keys, settings), the newest goes out whole.

authz also closes a connection whose client accepts nothing for 30 s, plus the time the
data in flight needs at 256 KiB/s (``SEND_STALL`` and ``SEND_MIN_RATE`` in
:mod:`lychgate.authz.internal`), so that its snapshot, its task and its socket are released.
That is twice the gateway's own read timeout (``feed.READ_TIMEOUT``, three heartbeats, which
a connection that is not stuck never goes without): a gateway that reads nothing for that
long is paused or wedged, and once it reads again it finds the stream closed and reconnects
for a full snapshot.

A line longer than a gateway reads (:data:`~lychgate.gateway.feed_json.MAX_LINE_BYTES`) is
still sent, and the gateway refuses it and stays on its last snapshot; authz logs an error
naming the line's size and what the snapshot holds, once per snapshot and at most once a
minute (:class:`OversizeLines`), so that the operator learns why the gateways go stale.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Final

from lychgate.gateway.feed_json import MAX_LINE_BYTES
from lychgate.gateway.feed_wire import (
    APP_LIMITS,
    APPS,
    HEARTBEAT_INTERVAL,
    KEEPALIVE,
    SESSION_CHANGES,
    SESSIONS,
    UPDATES,
    USERS,
    apps_line,
    heartbeat_line,
    sessions_line,
    snapshot_line,
    users_line,
)
from lychgate.gateway.http.failures import Throttle
from lychgate.gateway.snapshot import ConfigSnapshot, apps_with_own_limits

log = logging.getLogger(__name__)


class _FullLines:
    """The full-snapshot lines of the latest snapshot, one per ``app_limits`` choice. Every
    feed connection sends the same snapshot: serialized once, not once per gateway (70 ms and
    1.3 MB at 10,000 users), and in a worker thread rather than on authz's loop, which goes
    on with revocations and sign-ins meanwhile (the JSON of 10,000 users and 5,000 apps took
    a quarter of a second there)."""

    __slots__ = ("_lines", "_loop", "_snapshot")

    def __init__(self) -> None:
        self._snapshot: ConfigSnapshot | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the futures' (tests run several)
        self._lines: dict[bool, asyncio.Future[bytes]] = {}

    async def line(self, snapshot: ConfigSnapshot, *, app_limits: bool) -> bytes:
        loop = asyncio.get_running_loop()
        if snapshot is not self._snapshot or loop is not self._loop:
            self._snapshot, self._loop, self._lines = snapshot, loop, {}
        line = self._lines.get(app_limits)
        if line is None or (line.done() and (line.cancelled() or line.exception() is not None)):
            serialize = functools.partial(snapshot_line, snapshot, app_limits=app_limits)
            line = loop.run_in_executor(None, serialize)
            line.add_done_callback(_retrieve)  # awaited by none if every waiter went away
            self._lines[app_limits] = line
        # Shielded: a connection that goes away while it waits leaves the line to the others.
        return await asyncio.shield(line)


def _retrieve(line: asyncio.Future[bytes]) -> None:
    """Mark a serialization's failure as seen: each waiter gets it from its own await, and
    asyncio would otherwise log it as never retrieved once the last waiter has left."""
    if not line.cancelled():
        line.exception()


_FULL_LINES: Final = _FullLines()


class OversizeLines:
    """Logs, at ERROR, a feed line longer than a gateway reads (``limit``): the gateway drops
    the connection at it and stays on its last snapshot, and only authz can say why the line
    is so long. Once per snapshot (every connection sends it, each gateway again on each
    reconnection) and at most once per ``window`` seconds: a store that large changes often."""

    __slots__ = ("_limit", "_said", "_throttle")

    def __init__(
        self,
        *,
        limit: int = MAX_LINE_BYTES,
        clock: Callable[[], float] = time.monotonic,
        window: float = 60.0,
    ) -> None:
        self._limit = limit
        self._said: int | None = None  # the serial of the last snapshot checked too long
        self._throttle = Throttle(clock, window=window)

    @property
    def limit(self) -> int:
        return self._limit

    def check(self, line: bytes, snapshot: ConfigSnapshot, kind: str) -> None:
        """``line`` carries ``snapshot`` as a ``kind`` message (``snapshot``, ``users``...)."""
        size = len(line) - 1  # the gateway counts a line without its "\n"
        if size <= self._limit or snapshot.serial == self._said:
            return
        self._said = snapshot.serial
        more = self._throttle.due(None)
        if more is None:
            return
        log.error(
            "config feed: the %s line for snapshot %d is %.1f MiB (%d bytes), over the "
            "%.1f MiB a gateway reads: it holds %d apps, %d users and %d sessions to end; "
            "gateways drop it and stay on their last snapshot, which goes stale%s",
            kind,
            snapshot.serial,
            size / 2**20,
            size,
            self._limit / 2**20,
            len(snapshot.apps),
            len(snapshot.users),
            len(snapshot.revoked_sessions),
            more,
        )


_OVERSIZE: Final = OversizeLines()


async def _change_line(
    sent: ConfigSnapshot | None,
    latest: ConfigSnapshot,
    updates: frozenset[str],
    too_long: OversizeLines = _OVERSIZE,
) -> bytes:
    """``latest``, for a connection that last carried ``sent``; ``too_long`` hears of it."""
    changes = SESSION_CHANGES in updates
    if sent is not None and SESSIONS in updates and sent.differs_only_in_sessions(latest):
        kind, line = SESSIONS, sessions_line(sent, latest, changes=changes)
    elif sent is not None and USERS in updates and sent.differs_only_in_users(latest):
        kind, line = USERS, users_line(sent, latest, changes=changes)
    elif sent is not None and APPS in updates and sent.differs_only_in_apps(latest):
        limits = APP_LIMITS in updates
        kind, line = APPS, apps_line(sent, latest, changes=changes, app_limits=limits)
    else:
        kind, line = "snapshot", await _FULL_LINES.line(latest, app_limits=APP_LIMITS in updates)
    too_long.check(line, latest, kind)
    return line


class _End:
    """The source stream ended (or failed with ``error``)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class _Pending:
    """What a feed connection has yet to send: the newest snapshot it has not sent, and the
    end of the source. One slot, not a queue (module docstring): a snapshot that arrives
    replaces the one waiting, so a client that reads nothing holds at most one."""

    __slots__ = ("_end", "_ready", "_snapshot")

    def __init__(self) -> None:
        self._snapshot: ConfigSnapshot | None = None
        self._end: _End | None = None
        self._ready = asyncio.Event()

    def put(self, snapshot: ConfigSnapshot) -> None:
        self._snapshot = snapshot
        self._ready.set()

    def end(self, end: _End) -> None:
        self._end = end
        self._ready.set()

    async def take(self) -> tuple[ConfigSnapshot | None, _End | None]:
        """Wait for a snapshot or the end; both, if the source sent one before it ended."""
        await self._ready.wait()
        self._ready.clear()
        snapshot, self._snapshot = self._snapshot, None
        return snapshot, self._end


async def feed_lines(
    snapshots: AsyncIterator[ConfigSnapshot],
    *,
    heartbeat_interval: float = HEARTBEAT_INTERVAL,
    updates: frozenset[str] = UPDATES,
    vouched: Callable[[], bool] = lambda: True,
    too_long: OversizeLines = _OVERSIZE,
) -> AsyncGenerator[bytes, None]:
    """The feed's response body: a line per snapshot, a heartbeat when idle.

    A heartbeat confirms the last snapshot, so it goes out only while ``vouched()`` (authz has
    read its store lately); otherwise an empty line keeps the connection open without
    confirming anything, and the gateway's snapshot ages as if the feed were silent.

    A change is sent as the smallest message of the ``updates`` the client asked for
    (:func:`asked_updates`) that describes it, or else as a full snapshot. A line longer than
    a gateway reads is logged by ``too_long`` (every connection shares one: module docstring).

    Ends when ``snapshots`` ends; re-raises what ``snapshots`` raises. Closing the generator
    (the client went away) stops reading ``snapshots``.
    """
    pending = _Pending()

    async def pump() -> None:
        try:
            async for snapshot in snapshots:
                pending.put(snapshot)  # replaces one not yet sent: only the newest matters
        except Exception as exc:
            pending.end(_End(exc))
        else:
            pending.end(_End())

    pumping = asyncio.create_task(pump(), name="feed-pump")  # awaited in the finally below
    serial: int | None = None
    sent: ConfigSnapshot | None = None  # the last snapshot this connection carried
    named: set[str] = set()  # apps the warning below named already on this connection
    try:
        while True:
            try:
                async with asyncio.timeout(heartbeat_interval):  # not wait_for: see snapshots
                    latest, end = await pending.take()
            except TimeoutError:
                yield KEEPALIVE if serial is None or not vouched() else heartbeat_line(serial)
                continue
            if latest is not None:
                if APP_LIMITS not in updates:
                    _warn_limits_left_out(latest, named)
                line = await _change_line(sent, latest, updates, too_long)
                # Before the yield, which lasts as long as the client takes to accept the
                # line: the snapshot sent before is of no more use.
                sent, serial = latest, latest.serial
                yield line
            if end is not None:
                if end.error is not None:
                    raise end.error
                return
    finally:
        pumping.cancel()
        # Waits for the pump to finish; our own cancellation still propagates.
        await asyncio.gather(pumping, return_exceptions=True)


def _warn_limits_left_out(snapshot: ConfigSnapshot, named: set[str]) -> None:
    """Warn that a gateway will not apply some apps' own limits, naming each app once."""
    slugs = [slug for slug in apps_with_own_limits(snapshot) if slug not in named]
    if slugs:
        named.update(slugs)
        log.warning(
            "config feed: a gateway that predates per-app request limits is connected; it "
            "applies its listener's limits to %s until it is upgraded",
            ", ".join(slugs),
        )
