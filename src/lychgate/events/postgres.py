"""The PostgreSQL event bus: LISTEN/NOTIFY between authz replicas that share one database.

Theory of operation
-------------------
Each bus holds two things:

- **One dedicated listening connection.** It runs ``LISTEN <channel>`` and does nothing else, so
  notifications are never stuck behind a long query. Every notification on the channel, from any
  replica including this one, is decoded and fanned out to this bus's subscribers. A payload that
  does not decode (an unknown type from a newer replica, or garbage from anyone with NOTIFY
  rights) is logged and dropped; it never reaches a subscriber and never stops the listener.
- **A small pool for publishing.** ``publish`` runs ``SELECT pg_notify($1, $2)`` on it. The
  statement autocommits, and PostgreSQL delivers notifications in commit order, so one task's
  successive publishes arrive in order everywhere (SQL reference, NOTIFY).

A supervisor task watches the listening connection: asyncpg reports a closed socket (the server
restarted, an admin ran ``pg_terminate_backend``), and a periodic ``SELECT 1`` catches a silently
dead peer. On loss it logs, reconnects with capped exponential backoff and jitter, LISTENs again,
and then puts a ``Lagged(reason="reconnect")`` marker in every subscription: notifications sent
while nobody listened are gone for good (PostgreSQL does not queue them for a closed session), so
subscribers re-read the store *after* listening resumed, which leaves no window for a miss.

``LISTEN`` needs a session-level connection: it does not work through a pooler in transaction
mode (e.g. PgBouncer), so the URL must reach PostgreSQL itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import secrets
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

from lychgate.errors import ConfigError, StoreError, UsageError
from lychgate.events.codec import EventDecodeError, decode, encode
from lychgate.events.subscription import DEFAULT_QUEUE_SIZE, Fanout, Lagged, Subscription
from lychgate.events.types import Event

log = logging.getLogger(__name__)

DEFAULT_CHANNEL: Final = "lychgate_events"
# An unquoted PostgreSQL identifier of at most NAMEDATALEN-1 = 63 bytes, lower case so that it
# means the same quoted (asyncpg quotes it for LISTEN) and as the pg_notify() text argument.
_CHANNEL_RE: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
REPORT_EVERY: Final = 10.0  # seconds between warnings about failed reconnect attempts
_PG_ERRORS: Final = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
_APPLICATION_NAME: Final = "lychgate-events"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with jitter between reconnection attempts (seconds)."""

    initial: float = 0.1
    maximum: float = 5.0

    def delay(self, attempt: int) -> float:
        """The pause before retry number ``attempt`` (0-based): 50-100 % of the capped step."""
        step = min(self.maximum, self.initial * 2.0 ** min(attempt, 32))
        # Jitter spreads the replicas out after a database restart; ``secrets`` because the
        # project bans ``random`` outright, not because this needs to be unpredictable.
        return step * (0.5 + secrets.randbelow(501) / 1000)


def asyncpg_dsn(database_url: str) -> str:
    """Turn a PostgreSQL URL, SQLAlchemy style included, into a DSN asyncpg accepts.

    ``postgresql+asyncpg://`` becomes ``postgresql://``; ``postgres://`` is kept. Any other
    scheme or driver is a :class:`~lychgate.errors.ConfigError` naming ``database_url``.
    """
    scheme, sep, rest = database_url.partition("://")
    if not sep:
        raise ConfigError("not a URL (expected postgresql://...)", field="database_url")
    scheme = scheme.lower()
    if scheme in ("postgresql+asyncpg", "postgres+asyncpg"):
        scheme = scheme.removesuffix("+asyncpg")
    if scheme not in ("postgresql", "postgres"):
        raise ConfigError(
            f"the PostgreSQL event bus needs a postgresql:// URL, not {scheme}://",
            field="database_url",
        )
    return f"{scheme}://{rest}"


class PostgresBus:
    """An :class:`~lychgate.events.bus.EventBus` over PostgreSQL LISTEN/NOTIFY.

    Create it with :meth:`connect`; it fails at once if the database is unreachable.
    """

    def __init__(
        self,
        *,
        dsn: str,
        channel: str,
        queue_size: int,
        backoff: Backoff,
        health_interval: float,
        connect_timeout: float,
    ) -> None:
        """Internal: use :meth:`connect`, which also opens the connections."""
        self._dsn = dsn
        self._channel = channel
        self._pool: Any = None  # asyncpg.Pool (asyncpg ships no type information)
        self._listener: Any = None  # asyncpg.Connection, or None while reconnecting
        self._backoff = backoff
        self._health_interval = health_interval
        self._connect_timeout = connect_timeout
        self._fanout = Fanout(queue_size)
        self._closed = False
        self._bad_payloads = 0
        self._reconnects = 0
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls,
        database_url: str,
        *,
        channel: str = DEFAULT_CHANNEL,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        pool_size: int = 4,
        backoff: Backoff | None = None,
        health_interval: float = 15.0,
        connect_timeout: float = 10.0,
    ) -> PostgresBus:
        """Connect, LISTEN on ``channel`` and start watching the listening connection.

        Raises :class:`~lychgate.errors.ConfigError` for a bad URL or channel name and
        :class:`~lychgate.errors.StoreError` when PostgreSQL cannot be reached.
        """
        if not _CHANNEL_RE.fullmatch(channel):
            raise ConfigError(
                "channel must be a lower-case identifier of at most 63 characters",
                field="channel",
            )
        if queue_size < 1:
            raise ConfigError("must be at least 1", field="queue_size")
        if pool_size < 1:
            raise ConfigError("must be at least 1", field="pool_size")
        dsn = asyncpg_dsn(database_url)
        bus = cls(
            dsn=dsn,
            channel=channel,
            queue_size=queue_size,
            backoff=backoff or Backoff(),
            health_interval=health_interval,
            connect_timeout=connect_timeout,
        )
        try:
            await bus._open(pool_size)
        except BaseException:  # a failure or a cancellation: leave no connection behind
            await bus._release()
            raise
        bus._task = asyncio.create_task(
            bus._supervise(), name=f"lychgate-events-listener:{channel}"
        )
        return bus

    @property
    def channel(self) -> str:
        """The NOTIFY channel this bus listens and publishes on."""
        return self._channel

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions are open (for metrics)."""
        return len(self._fanout)

    @property
    def bad_payloads(self) -> int:
        """Notifications dropped because they did not decode (for metrics)."""
        return self._bad_payloads

    @property
    def reconnects(self) -> int:
        """Times the listening connection was lost and opened again (for metrics)."""
        return self._reconnects

    @property
    def listener_pid(self) -> int | None:
        """The server process id of the listening connection, or None while it is down."""
        conn = self._listener
        if conn is None or conn.is_closed():
            return None
        pid: int = conn.get_server_pid()
        return pid

    async def publish(self, event: Event) -> None:
        """NOTIFY ``event`` to every replica's subscribers, this one's included."""
        if self._closed:
            raise UsageError("the event bus is closed", field="bus")
        payload = encode(event)  # UsageError if unregistered or over the NOTIFY limit
        try:
            await self._pool.execute("SELECT pg_notify($1, $2)", self._channel, payload)
        except _PG_ERRORS as exc:
            raise StoreError(f"cannot publish event: {_describe(exc)}") from exc

    def subscribe(self) -> AbstractAsyncContextManager[Subscription]:
        """Subscribe for the duration of an ``async with`` block."""
        return self._fanout.subscribe()

    def end_subscriptions(self) -> None:
        """End every subscription open now; the bus still publishes. Idempotent."""
        self._fanout.end_current()

    async def close(self) -> None:
        """Stop listening, end every subscription and close the connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._fanout.close()
        task, self._task = self._task, None
        try:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task  # re-raises a bug that stopped the supervisor (logged already)
        finally:
            await self._release()

    # -- connections -------------------------------------------------------------------------

    async def _open(self, pool_size: int) -> None:
        try:
            self._listener = await self._listen()
            self._pool = await asyncpg.create_pool(
                self._dsn,
                # No floor: with one, asyncpg reconnects it as soon as the server drops it,
                # and logs a traceback for every failed try while the database is down.
                min_size=0,
                max_size=pool_size,
                timeout=self._connect_timeout,
                server_settings={"application_name": f"{_APPLICATION_NAME}-publish"},
            )
        except asyncpg.ClientConfigurationError as exc:
            raise ConfigError(f"bad PostgreSQL URL: {exc}", field="database_url") from exc
        except _PG_ERRORS as exc:
            # The URL may hold a password: name the failure, never the URL.
            raise StoreError(f"cannot reach PostgreSQL for events: {_describe(exc)}") from exc

    async def _listen(self) -> Any:
        conn = await asyncpg.connect(
            self._dsn,
            timeout=self._connect_timeout,
            server_settings={"application_name": f"{_APPLICATION_NAME}-listen"},
        )
        try:
            await conn.add_listener(self._channel, self._on_notify)
        except BaseException:
            conn.terminate()  # synchronous: safe even while being cancelled
            raise
        return conn

    def _on_notify(self, _conn: Any, pid: int, channel: str, payload: str) -> None:
        try:
            event = decode(payload)
        except EventDecodeError as exc:
            self._bad_payloads += 1
            log.warning(
                "dropped a bad event payload on channel %s from backend %d: %s", channel, pid, exc
            )
            return
        self._fanout.deliver(event)

    async def _supervise(self) -> None:
        try:
            while True:
                await self._wait_until_lost(self._listener)
                log.warning("event listener connection on channel %s lost", self._channel)
                await _close_quietly(self._listener)
                self._listener = None
                self._listener = await self._reconnect()
                self._reconnects += 1
                log.warning("event listener on channel %s reconnected", self._channel)
                # Only now: a subscriber that re-reads the store after this marker cannot miss
                # a change, since every later change is NOTIFYed to a live LISTEN.
                self._fanout.deliver(Lagged("reconnect"))
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug, not a network failure: end the subscriptions so that nobody waits forever
            # on a bus that no longer listens, and let close() re-raise it.
            log.exception("event listener on channel %s failed", self._channel)
            self._fanout.close()
            raise

    async def _wait_until_lost(self, conn: Any) -> None:
        lost = asyncio.Event()

        def on_terminated(_conn: Any) -> None:
            lost.set()

        conn.add_termination_listener(on_terminated)
        try:
            while not conn.is_closed():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._health_interval):
                        await lost.wait()
                    return
                # Nothing for a while: make sure the peer is still there (a dead peer without a
                # FIN or RST would otherwise leave us listening to nothing until TCP gives up).
                try:
                    async with asyncio.timeout(self._connect_timeout):
                        await conn.execute("SELECT 1")
                except _PG_ERRORS as exc:
                    log.debug("event listener health check failed: %s", _describe(exc))
                    return
        finally:
            conn.remove_termination_listener(on_terminated)

    async def _reconnect(self) -> Any:
        attempt = 0
        loop = asyncio.get_running_loop()
        reported = -math.inf
        while True:
            try:
                return await self._listen()
            except _PG_ERRORS as exc:
                delay = self._backoff.delay(attempt)
                # A line per attempt was some twenty a minute through an outage: the first,
                # then one per REPORT_EVERY, each with the attempt's number.
                level = logging.DEBUG
                if loop.time() - reported >= REPORT_EVERY:
                    level, reported = logging.WARNING, loop.time()
                log.log(
                    level,
                    "event listener on channel %s: reconnect attempt %d failed (%s); "
                    "retrying in %.1f s",
                    self._channel,
                    attempt + 1,
                    _describe(exc),
                    delay,
                )
                attempt += 1
                await asyncio.sleep(delay)

    async def _release(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            await _close_quietly(listener)
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    await pool.close()  # waits for publishes in flight
            except _PG_ERRORS:
                pool.terminate()


async def _close_quietly(conn: Any) -> None:
    try:
        await conn.close(timeout=2.0)
    except _PG_ERRORS:
        conn.terminate()


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
