"""The gateway's config feed client: stream snapshots from authz into a SnapshotHolder.

Theory of operation
-------------------
::

    idle ──connect──► streaming ──line──► apply (snapshot: replace; heartbeat: confirm)
      ▲                   │
      └──backoff+jitter───┘  (refused, unreachable, closed, silent too long, line too long)

:meth:`FeedClient.run` connects to ``GET /.lychgate/internal/feed`` with the internal bearer
secret, over authz's unix socket or TCP, and reads newline-delimited JSON (the format is in
:mod:`lychgate.gateway.feed_wire`). Each line is applied as soon as it arrives, so a change
reaches the gateway within a second of authz sending it. A line that does not parse is logged
and skipped: it never replaces the good snapshot. When the connection ends for any reason the
holder keeps the last snapshot (DESIGN.md: keep serving on the last config) and the client
reconnects after an exponential backoff with jitter, reset by the next snapshot applied. A
refusal (401 for a wrong secret) is retried the same way and logged, so fixing the secret on the
authz side heals the gateway without a restart.

The read timeout is a few heartbeat intervals: a feed that stays silent that long is treated as
dead, even if TCP has not noticed. :meth:`FeedClient.stop` ends :meth:`run` cleanly; cancelling
the task running it works too.

Each of the first ``LOUD_FAILURES`` connections that end in a row is logged (why, and when the
next attempt comes); after that the attempts go on at the same pace, but the log gets one
summary every ``SUMMARY_EVERY`` seconds (how many attempts, for how long, the last reason), and
one line when a snapshot comes again. An authz down for an hour cost 2,400 warnings a worker.

A line may be up to ``MAX_LINE_BYTES`` long (:mod:`.feed_json` says why that much); a longer
one drops the connection, and the log says how far it got. Lines are split in linear time and
memory (:func:`split_lines`), and large ones read in a worker thread (``PARSE_IN_THREAD``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final

import httpx

from lychgate.errors import ConfigError
from lychgate.gateway.feed_http import FEED_PATH, authz_client
from lychgate.gateway.feed_json import MAX_LINE_BYTES
from lychgate.gateway.feed_serve import feed_lines
from lychgate.gateway.feed_wire import (
    MEDIA_TYPE,
    UPDATES,
    UPDATES_HEADER,
    AppsUpdate,
    FeedMessage,
    Heartbeat,
    SessionsUpdate,
    UsersUpdate,
    parse_line,
)
from lychgate.gateway.snapshot import SnapshotHolder
from lychgate.secret import Secret

__all__ = ["FeedClient", "FeedError", "backoff_delay", "feed_lines", "split_lines"]

log = logging.getLogger(__name__)

INITIAL_BACKOFF: Final = 0.5
MAX_BACKOFF: Final = 30.0
# While the gateway has no snapshot, or serves on a stale one (and so soon refuses everything),
# a reconnection waits at most this: authz back up must not wait out a 30 s backoff.
HURRIED_BACKOFF: Final = 2.0
READ_TIMEOUT: Final = 15.0  # three heartbeat intervals
CONNECT_TIMEOUT: Final = 5.0
#: authz, started beside the gateway (``lychgate serve``), may not listen yet in the gateway's
#: first seconds: an attempt it does not answer then, before any snapshot, is logged at INFO.
STARTING: Final = 5.0
# Lines longer than this are read in a worker thread (a full snapshot, or an update listing
# many sessions or users); heartbeats and small updates are read on the loop, at once.
PARSE_IN_THREAD: Final = 64 * 1024
BACKOFFS_KEPT: Final = 16  # FeedClient.backoffs: the last reconnection delays chosen
LOUD_FAILURES: Final = 3  # connections ended in a row that are logged one by one
SUMMARY_EVERY: Final = 60.0  # seconds between the log's summaries of the attempts after those


_UPDATE_NAMES: Final = {
    SessionsUpdate: "sessions update",
    UsersUpdate: "users update",
    AppsUpdate: "apps update",
}


class FeedError(Exception):
    """The feed connection cannot go on (refused, or a line too long); reconnect."""


@dataclass(frozen=True, slots=True)
class Ended:
    """Why a feed connection ended, for the log: the level it deserves and the reason."""

    level: int
    why: str
    unreachable: bool = False  # no connection was made (nothing listens there, yet?)


def backoff_delay(base: float) -> float:
    """``base`` with "equal jitter": uniformly in ``[base/2, base]``, from :mod:`secrets`.

    Jitter spreads the reconnections of many gateways after an authz restart.
    """
    half_ms = max(1, int(base * 500))
    return (half_ms + secrets.randbelow(half_ms + 1)) / 1000


async def split_lines(
    chunks: AsyncIterator[bytes], *, limit: int = MAX_LINE_BYTES
) -> AsyncIterator[bytes]:
    """Split a byte stream into ``\\n``-terminated lines (without the ``\\n``), each ``<= limit``.

    Raises :class:`FeedError` for a line longer than ``limit`` as soon as it is (saying how
    far it got); a final unterminated fragment is dropped (the connection broke mid-line).

    Linear in time and memory: each chunk is searched once, and a line's pieces are kept apart
    and joined once, at its end. A large snapshot comes in thousands of chunks (httpx reads
    64 KiB at a time); searching all of the line so far at each one, as before, was quadratic:
    3 s on the loop for 100 MiB, 15 s for 256 MiB (now 0.1 and 0.3 s).
    """
    parts: list[bytes] = []  # the line so far, when it began in an earlier chunk
    size = 0  # len(b"".join(parts))
    async for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            size += end - start
            if size > limit:
                raise _too_long(size, limit)
            if parts:
                parts.append(chunk[start:end])
                line = b"".join(parts)
                parts.clear()  # before the yield: the caller holds the line, not two copies
            else:
                line = chunk[start:end]
            size = 0
            yield line
            start = end + 1
        if start < len(chunk):
            size += len(chunk) - start
            if size > limit:
                raise _too_long(size, limit)
            parts.append(chunk[start:] if start else chunk)


def _too_long(size: int, limit: int) -> FeedError:
    return FeedError(
        f"a line passed {size:,} bytes, over this gateway's limit of {limit:,} "
        f"(MAX_LINE_BYTES): dropped with the connection, the last snapshot stays. A full "
        f"snapshot that large (millions of users or sessions) is more than a gateway reads: "
        f"look for a runaway in authz's log, or report it if authz really serves that much"
    )


class FeedClient:
    """Keeps a :class:`SnapshotHolder` in step with authz's config feed."""

    __slots__ = (
        "_base",
        "_connection",
        "_delay",
        "_down_since",
        "_holder",
        "_hurry",
        "_initial",
        "_maximum",
        "_read_timeout",
        "_secret",
        "_started",
        "_stopping",
        "_summary_at",
        "backoffs",
        "clock",
        "failures",
        "max_line_bytes",
        "snapshots_applied",
    )

    def __init__(
        self,
        base: str,
        secret: Secret,
        holder: SnapshotHolder,
        *,
        initial_backoff: float = INITIAL_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        read_timeout: float = READ_TIMEOUT,
        hurry: Callable[[], bool] = lambda: False,
    ) -> None:
        """``base`` is ``unix:/path`` or ``http://host:port`` (see ``feed_http.authz_base``).
        While ``hurry()`` is true, reconnections wait at most ``HURRIED_BACKOFF``."""
        self._hurry = hurry
        # Test seams, set before run: the longest line read, and the clock that times the
        # log's summaries of failed attempts (not the backoff).
        self.max_line_bytes = MAX_LINE_BYTES
        self.clock: Callable[[], float] = time.monotonic
        self._down_since = 0.0  # when the first of the connections that ended in a row ended
        self._summary_at = 0.0  # when the next summary of failed attempts is due
        self._started: float | None = None  # when run began (the clock above)
        self._base = base
        self._secret = secret
        self._holder = holder
        self._initial = initial_backoff
        self._maximum = max_backoff
        self._read_timeout = read_timeout
        self._stopping = asyncio.Event()
        self._connection: asyncio.Task[Ended] | None = None
        self._delay = initial_backoff
        self.failures = 0  # connections that ended since the last snapshot applied
        self.snapshots_applied = 0
        # The last reconnection delays chosen (seconds, jitter included), newest last: read-only
        # observation of the backoff, for tests and debugging.
        self.backoffs: deque[float] = deque(maxlen=BACKOFFS_KEPT)

    def stop(self) -> None:
        """Make :meth:`run` return: the open connection is closed, no reconnection is made."""
        self._stopping.set()
        if self._connection is not None:
            self._connection.cancel()

    async def run(self) -> None:
        """Follow the feed until :meth:`stop` (or cancellation)."""
        timeout = httpx.Timeout(CONNECT_TIMEOUT, read=self._read_timeout)
        self._started = self.clock()
        async with authz_client(self._base, self._secret, timeout=timeout) as client:
            while not self._stopping.is_set():
                self._connection = asyncio.create_task(self._follow(client), name="feed")
                try:
                    ended = await self._connection
                except asyncio.CancelledError:
                    if self._stopping.is_set():
                        return
                    raise
                finally:
                    self._connection = None
                wait = backoff_delay(
                    min(self._delay, HURRIED_BACKOFF) if self._hurry() else self._delay
                )
                self.backoffs.append(wait)
                self._delay = min(self._delay * 2, self._maximum)
                self._note_end(ended, wait)
                with contextlib.suppress(TimeoutError):  # not wait_for (authz.snapshots)
                    async with asyncio.timeout(wait):
                        await self._stopping.wait()

    def _note_end(self, ended: Ended, wait: float) -> None:
        """Count a connection that ended, and log it: each of the first few in a row, then a
        summary every ``SUMMARY_EVERY`` s (a reconnection every 2 s, each logged, made 2,400
        warnings an hour while authz was down)."""
        self.failures += 1  # reset by the next snapshot applied
        now = self.clock()
        if self.failures == 1:
            self._down_since = now
        if self.failures <= LOUD_FAILURES:
            starting = self._started is not None and now - self._started < STARTING
            quiet = ended.unreachable and starting and not self.snapshots_applied
            level = logging.INFO if quiet else ended.level
            log.log(level, "config feed from %s: %s", self._base, ended.why)
            if self.failures < LOUD_FAILURES:
                log.info("config feed: reconnecting in %.1f s", wait)
            else:
                self._summary_at = now + SUMMARY_EVERY
                log.info(
                    "config feed: reconnecting in %.1f s (and on; the failures are summarized "
                    "every %g s from now on)",
                    wait,
                    SUMMARY_EVERY,
                )
            return
        log.debug("config feed from %s: %s; reconnecting in %.1f s", self._base, ended.why, wait)
        if now >= self._summary_at:
            self._summary_at = now + SUMMARY_EVERY
            log.warning(
                "config feed from %s still down after %d attempts over %.0f s: %s",
                self._base,
                self.failures,
                now - self._down_since,
                ended.why,
            )

    async def _follow(self, client: httpx.AsyncClient) -> Ended:
        """One connection: apply lines until it ends; why it ended."""
        try:
            headers = {"accept": MEDIA_TYPE, UPDATES_HEADER: ", ".join(sorted(UPDATES))}
            async with client.stream("GET", FEED_PATH, headers=headers) as response:
                status = response.status_code
                if status == 401:
                    raise FeedError(
                        "authz refused the feed with 401: this gateway's internal token is "
                        "not authz's (every node must use the same secrets.json)"
                    )
                if status == 503:
                    raise FeedError(
                        "authz answered 503: it has not confirmed its snapshot recently (its "
                        "store reads are failing or slow), so it vouches for none (this gateway "
                        "serves on its last one until feed_max_stale)"
                    )
                if status != 200:
                    raise FeedError(f"authz refused the feed with {status}")
                async for line in split_lines(response.aiter_bytes(), limit=self.max_line_bytes):
                    if len(line) > PARSE_IN_THREAD:
                        # A full snapshot of thousands of users takes a tenth of a second and
                        # more to read: never on the loop, which keeps serving meanwhile.
                        message = await asyncio.to_thread(self._read, line)
                    else:
                        message = self._read(line)
                    if message is not None:
                        self._apply(message)
            # INFO: authz closes it when it stops or restarts (under serve, as the gateway
            # itself stops); a reconnect that fails is the warning worth having.
            return Ended(logging.INFO, "authz closed the stream")
        except FeedError as exc:
            return Ended(logging.WARNING, str(exc))
        except httpx.HTTPError as exc:
            unreachable = isinstance(exc, httpx.ConnectError)
            return Ended(logging.WARNING, f"connection failed: {self._why(exc)}", unreachable)

    def _why(self, exc: httpx.HTTPError) -> str:
        """Why a connection failed, in a few words safe to log: the system's reason
        (``Connection refused``, ``No such file or directory`` for a missing socket) from the
        OSError httpx wraps, or how long a timeout waited. Never the request's headers: they
        carry the internal token."""
        name = type(exc).__name__
        if isinstance(exc, httpx.ReadTimeout):
            return f"nothing received for {self._read_timeout:g} s ({name})"
        if isinstance(exc, httpx.TimeoutException):
            return f"timed out after {CONNECT_TIMEOUT:g} s ({name})"  # connect, write, pool
        cause: BaseException | None = exc
        for _ in range(8):  # httpx.ConnectError <- httpcore.ConnectError <- OSError <- ...
            if cause is None:
                break
            if isinstance(cause, OSError) and cause.errno is not None:
                if cause.errno < 0:  # the resolver's (socket.gaierror): os.strerror knows none
                    return str(cause.strerror or cause)
                return os.strerror(cause.errno)  # not str(): asyncio's says "Connect call failed"
            cause = cause.__cause__ or cause.__context__
        return f"{exc} ({name})" if str(exc) else name

    def _read(self, line: bytes) -> FeedMessage | None:
        """One line, read strictly; None for a blank one or one refused (and logged). Pure, so
        that it can run in a worker thread."""
        if not line.strip():
            return None
        try:
            return parse_line(line)
        except ConfigError as exc:
            # The message names the failing member, never its value (it may be key material).
            log.error("config feed: refused a message: %s", exc)
            return None

    def _apply(self, message: FeedMessage) -> None:
        """A snapshot replaces, an update applies to the current one, a heartbeat confirms."""
        if isinstance(message, Heartbeat):
            if not self._holder.confirm(message.serial):
                log.debug("config feed: heartbeat for serial %d is not ours", message.serial)
            return
        what = "snapshot"
        if isinstance(message, SessionsUpdate | UsersUpdate | AppsUpdate):
            what = _UPDATE_NAMES[type(message)]
            current = self._holder.current
            if current is None or current.serial != message.after:
                # We refused the snapshot it builds on: only a full one can set us right.
                raise FeedError(f"a {what} for snapshot {message.after}, not ours")
            try:
                message = message.apply(current)
            except ConfigError as exc:
                # The sessions to end do not add up: our set is not the one authz changed.
                raise FeedError(f"a {what} out of step with ours ({exc})") from None
        self._holder.replace(message)
        self.snapshots_applied += 1
        if self.failures > LOUD_FAILURES:  # the log summarized them: say they are over
            log.info(
                "config feed from %s: connected again after %d failed attempts over %.0f s",
                self._base,
                self.failures,
                self.clock() - self._down_since,
            )
        self.failures, self._delay = 0, self._initial  # a good feed resets the backoff
        log.info("config feed: applied %s %d", what, message.serial)
