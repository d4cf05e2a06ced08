"""The config feed's wire format: its lines, their encoding and the kinds of message.

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
* ``{"type": "users", "after": M, "serial": N, "issued_at": T, "setup_done": B, "users":
  {...}, "removed_users": [...], "revoked_sessions": [...]}``: snapshot ``N`` is snapshot
  ``M`` with the users listed in ``users`` added or changed (the same form as a snapshot's
  ``users``), those in ``removed_users`` gone (disabled), and the given ``setup_done`` and
  sessions to end. Sent instead of a full snapshot when apps, keys and settings are
  unchanged (a user enrolled, renamed, disabled...): its size follows the users that
  changed. Same rule on ``M``; sent only to a gateway that listed ``users`` in that header.
* With ``session-changes`` also in that header, both updates list the sessions to end as a
  change to the last set sent, in place of ``revoked_sessions``: ``"ended_sessions": [...]``
  join it, ``"unlisted_sessions": [...]`` leave it (their tokens can no longer be valid), and
  ``"listed_sessions": K`` is how many the result holds. Sessions reach their end all the
  time, so with ten thousand users the whole set (165 kB) would otherwise travel several
  times a minute for one or two changes. A gateway whose result does not hold ``K`` sessions
  is out of step with authz and reconnects for a full snapshot.
* ``{"type": "heartbeat", "serial": N}``: "my latest is still ``N``", every few seconds when
  nothing changes. It keeps idle connections alive and lets the gateway tell a quiet feed
  from a dead one (:meth:`SnapshotHolder.confirm`).
* An empty line is a keep-alive, and is ignored: before the first snapshot, and in place of a
  heartbeat while authz cannot read its store (it no longer vouches for its last snapshot).

The same request header also lists ``app-limits`` when the gateway reads an app's own request
limits in a snapshot (``max_header_bytes``, ``max_headers``, ``idle_timeout``: members added
after format 1). A gateway that does not list it gets snapshots without them: it would
otherwise refuse every snapshot that carried one and stay on its last, deaf to revocations.
It applies its listener's limits to those apps instead, and authz logs a warning on that
connection naming each such app once.

authz serves these lines from :func:`~lychgate.gateway.feed_serve.feed_lines`; how it coalesces
snapshots for a slow client, and what it logs, is in :mod:`lychgate.gateway.feed_serve`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from lychgate.gateway.feed_json import Members, dumps, fail, loads
from lychgate.gateway.snapshot import (
    ConfigSnapshot,
    UserProfile,
    check_snapshot,
    instant,
    users_from_json,
    users_to_json,
)
from lychgate.ids import SessionId, UserId

MEDIA_TYPE: Final = "application/x-ndjson"
# The request header a gateway sends to list what it reads beyond format 1's full snapshots;
# authz sends each only then, so a gateway older than one keeps working during a rolling
# upgrade.
UPDATES_HEADER: Final = "lychgate-feed-updates"
SESSIONS: Final = "sessions"
USERS: Final = "users"
APP_LIMITS: Final = "app-limits"  # not an update: the apps' own request limits in a snapshot
SESSION_CHANGES: Final = "session-changes"  # updates list the sessions to end as changes
UPDATES: Final = frozenset({SESSIONS, USERS, APP_LIMITS, SESSION_CHANGES})  # all we read
HEARTBEAT_INTERVAL: Final = 5.0
KEEPALIVE: Final = b"\n"


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The feed's latest snapshot is still ``serial``."""

    serial: int


@dataclass(frozen=True, slots=True)
class SessionChanges:
    """The sessions to end as a change to the last set sent: ``ended`` join it, ``unlisted``
    leave it, and ``listed`` is how many the result holds (a check that both sides agree)."""

    ended: frozenset[SessionId]
    unlisted: frozenset[SessionId]
    listed: int

    def applied_to(self, current: frozenset[SessionId]) -> frozenset[SessionId]:
        """The new set. Raises :class:`~lychgate.errors.ConfigError` when ``current`` is not
        the set authz changed: a session ended that it already held, one unlisted that it
        did not hold, or a result that does not hold ``listed``."""
        if not self.ended.isdisjoint(current):
            fail("names a session already listed", "ended_sessions")
        if not self.unlisted <= current:
            fail("names a session not listed", "unlisted_sessions")
        result = current.difference(self.unlisted).union(self.ended)
        if len(result) != self.listed:
            fail(f"does not match the {len(result)} sessions it leaves", "listed_sessions")
        return result


#: The sessions to end in an update: the whole set, or a change to the current one.
SessionsToEnd = frozenset[SessionId] | SessionChanges


def _resolve(sessions: SessionsToEnd, current: ConfigSnapshot) -> frozenset[SessionId]:
    if isinstance(sessions, SessionChanges):
        return sessions.applied_to(current.revoked_sessions)
    return sessions


@dataclass(frozen=True, slots=True)
class SessionsUpdate:
    """Snapshot ``serial`` is snapshot ``after`` with ``revoked_sessions`` instead."""

    after: int
    serial: int
    issued_at: datetime
    revoked_sessions: SessionsToEnd

    def apply(self, current: ConfigSnapshot) -> ConfigSnapshot:
        """Raises :class:`~lychgate.errors.ConfigError` when a change does not add up."""
        return current.with_sessions(
            serial=self.serial,
            issued_at=self.issued_at,
            revoked_sessions=_resolve(self.revoked_sessions, current),
        )


@dataclass(frozen=True, slots=True)
class UsersUpdate:
    """Snapshot ``serial`` is snapshot ``after`` with ``changed`` users added or replaced,
    ``removed`` users gone, and the given ``setup_done`` and ``revoked_sessions``."""

    after: int
    serial: int
    issued_at: datetime
    setup_done: bool
    changed: Mapping[UserId, UserProfile]
    removed: frozenset[UserId]
    revoked_sessions: SessionsToEnd

    def apply(self, current: ConfigSnapshot) -> ConfigSnapshot:
        """Raises :class:`~lychgate.errors.ConfigError` when a change does not add up."""
        revoked = _resolve(self.revoked_sessions, current)
        users = dict(current.users)
        for uid in self.removed:
            users.pop(uid, None)
        users.update(self.changed)
        return current.with_users(
            serial=self.serial,
            issued_at=self.issued_at,
            setup_done=self.setup_done,
            users=users,
            revoked_sessions=revoked,
        )


FeedMessage = ConfigSnapshot | SessionsUpdate | UsersUpdate | Heartbeat


def asked_updates(header: str | None) -> frozenset[str]:
    """The kinds of update a feed request's ``Lychgate-Feed-Updates`` header lists that we
    know (unknown ones, from a newer gateway, are ignored: it gets full snapshots instead)."""
    if header is None:
        return frozenset()
    return UPDATES.intersection(part.strip() for part in header.split(","))


def snapshot_line(snapshot: ConfigSnapshot, *, app_limits: bool = True) -> bytes:
    """One feed line carrying ``snapshot`` (holds the assertion key: never log it);
    ``app_limits=False`` for a gateway that did not list :data:`APP_LIMITS`."""
    doc = snapshot.to_json(app_limits=app_limits)
    return dumps({"type": "snapshot", "snapshot": doc}) + b"\n"


def _sessions_json(
    before: ConfigSnapshot, snapshot: ConfigSnapshot, changes: bool
) -> dict[str, object]:
    """An update's members for ``snapshot``'s sessions to end: the whole set, or with
    ``changes`` what changed since ``before`` (:class:`SessionChanges`)."""
    new = snapshot.revoked_sessions
    if not changes:
        return {"revoked_sessions": sorted(new)}
    old = before.revoked_sessions
    return {
        "ended_sessions": sorted(new - old),
        "unlisted_sessions": sorted(old - new),
        "listed_sessions": len(new),
    }


def sessions_line(
    before: ConfigSnapshot, snapshot: ConfigSnapshot, *, changes: bool = False
) -> bytes:
    """One feed line: ``snapshot`` as a sessions update of ``before``, the last one sent;
    ``changes`` for a gateway that listed :data:`SESSION_CHANGES`."""
    return (
        dumps(
            {
                "type": "sessions",
                "after": before.serial,
                "serial": snapshot.serial,
                "issued_at": snapshot.issued_at.timestamp(),
                **_sessions_json(before, snapshot, changes),
            }
        )
        + b"\n"
    )


def users_line(before: ConfigSnapshot, snapshot: ConfigSnapshot, *, changes: bool = False) -> bytes:
    """One feed line: ``snapshot`` as a users update of ``before``, the last one sent;
    ``changes`` as for :func:`sessions_line`."""
    old, new = before.users, snapshot.users
    # Unchanged profiles are usually the very same objects (authz copies the last snapshot's
    # users and applies the changes), so the identity test settles most of them.
    changed = {uid: p for uid, p in new.items() if (o := old.get(uid)) is not p and o != p}
    return (
        dumps(
            {
                "type": "users",
                "after": before.serial,
                "serial": snapshot.serial,
                "issued_at": snapshot.issued_at.timestamp(),
                "setup_done": snapshot.setup_done,
                "users": users_to_json(changed),
                "removed_users": sorted(old.keys() - new.keys()),
                **_sessions_json(before, snapshot, changes),
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
            revoked_sessions=_sessions_to_end(message),
        )
    elif kind == "users":
        parsed = _users_update(message)
    elif kind == "heartbeat":
        parsed = Heartbeat(message.integer("serial"))
    else:
        fail("is not a known message type", "type")
    message.done()
    return parsed


def _users_update(message: Members) -> UsersUpdate:
    changed = users_from_json(message.raw("users"))
    removed = frozenset(UserId(u) for u in message.texts("removed_users"))
    if not removed.isdisjoint(changed):
        fail("names a user that is also in users", "removed_users")
    return UsersUpdate(
        after=message.integer("after"),
        serial=message.integer("serial"),
        issued_at=instant(message.number("issued_at"), "issued_at"),
        setup_done=message.flag("setup_done"),
        changed=changed,
        removed=removed,
        revoked_sessions=_sessions_to_end(message),
    )


def _sessions_to_end(message: Members) -> SessionsToEnd:
    """An update's sessions to end, in either form (:func:`_sessions_json`)."""
    if message.has("revoked_sessions"):
        return frozenset(SessionId(s) for s in message.texts("revoked_sessions"))
    ended = frozenset(SessionId(s) for s in message.texts("ended_sessions"))
    unlisted = frozenset(SessionId(s) for s in message.texts("unlisted_sessions"))
    if not ended.isdisjoint(unlisted):
        fail("names a session that is also in ended_sessions", "unlisted_sessions")
    return SessionChanges(ended, unlisted, message.integer("listed_sessions"))
