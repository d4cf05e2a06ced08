"""The config feed's wire format, and the generator authz serves it from.

``GET /.lychgate/internal/feed`` answers ``200`` with ``Content-Type: application/x-ndjson``:
one JSON object per line (``\\n``-terminated), for as long as the connection lasts.

* ``{"type": "snapshot", "snapshot": {...}}``: a full :class:`ConfigSnapshot` (its ``to_json``
  form). Sent on connect and on every change.
* ``{"type": "sessions", "after": M, "serial": N, "issued_at": T, "revoked_sessions": [...]}``:
  snapshot ``N`` is snapshot ``M``, the last one sent on this connection, with another set of
  sessions to end. Sent instead of a full snapshot when nothing else changed (a revocation, a
  session that reached its end): its size follows the revoked set, not the number of users,
  so a gateway with ten thousand users parses it in well under a millisecond rather than
  fifty. A gateway whose current snapshot is not ``M`` reconnects for a full one. Sent only
  to a gateway that asked with the request header ``Lychgate-Feed-Updates: sessions``.
* ``{"type": "heartbeat", "serial": N}``: "my latest is still ``N``", every few seconds when
  nothing changes. It keeps idle connections alive and lets the gateway tell a quiet feed
  from a dead one (:meth:`SnapshotHolder.confirm`).
* An empty line is a keep-alive before the first snapshot, and is ignored.

:func:`feed_lines` turns any async stream of snapshots (authz builds it from its event bus) into
these lines. It coalesces: if several snapshots arrive while the client is slow to read, only
the newest is sent, since each one is complete.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from lychgate.gateway.feed_json import Members, dumps, fail, loads
from lychgate.gateway.snapshot import ConfigSnapshot, check_snapshot, instant
from lychgate.ids import SessionId

MEDIA_TYPE: Final = "application/x-ndjson"
# The request header a gateway sends to say it reads sessions updates; authz sends them only
# then, so a gateway older than them keeps getting full snapshots during a rolling upgrade.
UPDATES_HEADER: Final = "lychgate-feed-updates"
SESSIONS: Final = "sessions"
HEARTBEAT_INTERVAL: Final = 5.0
KEEPALIVE: Final = b"\n"


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The feed's latest snapshot is still ``serial``."""

    serial: int


@dataclass(frozen=True, slots=True)
class SessionsUpdate:
    """Snapshot ``serial`` is snapshot ``after`` with ``revoked_sessions`` instead."""

    after: int
    serial: int
    issued_at: datetime
    revoked_sessions: frozenset[SessionId]

    def apply(self, current: ConfigSnapshot) -> ConfigSnapshot:
        return current.with_sessions(
            serial=self.serial, issued_at=self.issued_at, revoked_sessions=self.revoked_sessions
        )


FeedMessage = ConfigSnapshot | SessionsUpdate | Heartbeat


def asks_for_sessions(header: str | None) -> bool:
    """Whether a feed request's ``Lychgate-Feed-Updates`` header lists ``sessions``."""
    return header is not None and SESSIONS in (part.strip() for part in header.split(","))


def snapshot_line(snapshot: ConfigSnapshot) -> bytes:
    """One feed line carrying ``snapshot`` (holds the assertion key: never log it)."""
    return dumps({"type": "snapshot", "snapshot": snapshot.to_json()}) + b"\n"


def sessions_line(after: int, snapshot: ConfigSnapshot) -> bytes:
    """One feed line: ``snapshot`` as a sessions update of snapshot ``after``."""
    return (
        dumps(
            {
                "type": "sessions",
                "after": after,
                "serial": snapshot.serial,
                "issued_at": snapshot.issued_at.timestamp(),
                "revoked_sessions": sorted(snapshot.revoked_sessions),
            }
        )
        + b"\n"
    )


def heartbeat_line(serial: int) -> bytes:
    return dumps({"type": "heartbeat", "serial": serial}) + b"\n"


def parse_line(line: bytes) -> FeedMessage:
    """Read one non-empty feed line strictly. Raises :class:`~lychgate.errors.ConfigError`."""
    message = Members(loads(line), "")
    kind = message.text("type")
    if kind == "snapshot":
        parsed: FeedMessage = check_snapshot(message.raw("snapshot"))
    elif kind == "sessions":
        parsed = SessionsUpdate(
            after=message.integer("after"),
            serial=message.integer("serial"),
            issued_at=instant(message.number("issued_at"), "issued_at"),
            revoked_sessions=frozenset(SessionId(s) for s in message.texts("revoked_sessions")),
        )
    elif kind == "heartbeat":
        parsed = Heartbeat(message.integer("serial"))
    else:
        fail("is not a known message type", "type")
    message.done()
    return parsed


class _End:
    """The source stream ended (or failed with ``error``)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


async def feed_lines(
    snapshots: AsyncIterator[ConfigSnapshot],
    *,
    heartbeat_interval: float = HEARTBEAT_INTERVAL,
    sessions_updates: bool = True,
) -> AsyncGenerator[bytes, None]:
    """The feed's response body: a line per snapshot, a heartbeat when idle.

    With ``sessions_updates`` off (a client that did not ask for them), every change is sent
    as a full snapshot.

    Ends when ``snapshots`` ends; re-raises what ``snapshots`` raises. Closing the generator
    (the client went away) stops reading ``snapshots``.
    """
    mailbox: asyncio.Queue[ConfigSnapshot | _End] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for snapshot in snapshots:
                mailbox.put_nowait(snapshot)
        except Exception as exc:
            mailbox.put_nowait(_End(exc))
        else:
            mailbox.put_nowait(_End())

    pumping = asyncio.create_task(pump(), name="feed-pump")  # awaited in the finally below
    serial: int | None = None
    sent: ConfigSnapshot | None = None  # the last snapshot this connection carried
    try:
        while True:
            try:
                item = await asyncio.wait_for(mailbox.get(), heartbeat_interval)
            except TimeoutError:
                yield KEEPALIVE if serial is None else heartbeat_line(serial)
                continue
            latest = None if isinstance(item, _End) else item
            end = item if isinstance(item, _End) else None
            while end is None and not mailbox.empty():
                queued = mailbox.get_nowait()  # coalesce: only the newest snapshot matters
                if isinstance(queued, _End):
                    end = queued
                else:
                    latest = queued
            if latest is not None:
                if sessions_updates and sent is not None and sent.differs_only_in_sessions(latest):
                    yield sessions_line(sent.serial, latest)
                else:
                    yield snapshot_line(latest)
                sent, serial = latest, latest.serial
            if end is not None:
                if end.error is not None:
                    raise end.error
                return
    finally:
        pumping.cancel()
        # Waits for the pump to finish; our own cancellation still propagates.
        await asyncio.gather(pumping, return_exceptions=True)
