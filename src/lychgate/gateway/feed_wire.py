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
* ``{"type": "apps", "after": M, "serial": N, "issued_at": T, "setup_done": B, "apps": [...],
  "removed_apps": [...], "users": {...}, "removed_users": [...], "revoked_sessions": [...]}``:
  snapshot ``N`` is snapshot ``M`` with the apps listed in ``apps`` added or changed (by id;
  the same form as a snapshot's ``apps``), those whose ids are in ``removed_apps`` gone, and
  the rest as in a users update. Sent instead of a full snapshot when keys and settings are
  unchanged (an app added, edited, enabled, disabled or removed): its size follows the apps
  and users that changed, so an app edit at five thousand apps is a line of a few hundred
  bytes, not 1.5 MB to serialize, send and read. The gateway keeps the apps ordered by slug,
  as authz does, and builds its lookup tables again. Same rule on ``M``; sent only to a
  gateway that listed ``apps`` in that header.
* With ``session-changes`` also in that header, the three updates list the sessions to end as a
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

from dataclasses import dataclass
from typing import Final

from lychgate.gateway.feed_json import Members, dumps, fail, loads
from lychgate.gateway.feed_updates import (
    AppsUpdate,
    SessionChanges,
    SessionsToEnd,
    SessionsUpdate,
    UsersUpdate,
)
from lychgate.gateway.snapshot import ConfigSnapshot, check_snapshot
from lychgate.gateway.snapshot_json import (
    app_from_json,
    app_to_json,
    instant,
    users_from_json,
    users_to_json,
)
from lychgate.ids import AppId, SessionId, UserId

__all__ = [
    "APPS",
    "APP_LIMITS",
    "HEARTBEAT_INTERVAL",
    "KEEPALIVE",
    "MEDIA_TYPE",
    "SESSIONS",
    "SESSION_CHANGES",
    "UPDATES",
    "UPDATES_HEADER",
    "USERS",
    "AppsUpdate",
    "FeedMessage",
    "Heartbeat",
    "SessionChanges",
    "SessionsToEnd",
    "SessionsUpdate",
    "UsersUpdate",
    "apps_line",
    "asked_updates",
    "heartbeat_line",
    "parse_line",
    "sessions_line",
    "snapshot_line",
    "users_line",
]

MEDIA_TYPE: Final = "application/x-ndjson"
# The request header a gateway sends to list what it reads beyond format 1's full snapshots;
# authz sends each only then, so a gateway older than one keeps working during a rolling
# upgrade.
UPDATES_HEADER: Final = "lychgate-feed-updates"
SESSIONS: Final = "sessions"
USERS: Final = "users"
APPS: Final = "apps"
APP_LIMITS: Final = "app-limits"  # not an update: the apps' own request limits in a snapshot
SESSION_CHANGES: Final = "session-changes"  # updates list the sessions to end as changes
UPDATES: Final = frozenset({SESSIONS, USERS, APPS, APP_LIMITS, SESSION_CHANGES})  # all we read
HEARTBEAT_INTERVAL: Final = 5.0
KEEPALIVE: Final = b"\n"


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The feed's latest snapshot is still ``serial``."""

    serial: int


FeedMessage = ConfigSnapshot | SessionsUpdate | UsersUpdate | AppsUpdate | Heartbeat


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


def _users_json(before: ConfigSnapshot, snapshot: ConfigSnapshot) -> dict[str, object]:
    """An update's members for the users that changed from ``before`` to ``snapshot``."""
    old, new = before.users, snapshot.users
    # Unchanged profiles are usually the very same objects (authz copies the last snapshot's
    # users and applies the changes), so the identity test settles most of them.
    changed = {uid: p for uid, p in new.items() if (o := old.get(uid)) is not p and o != p}
    return {
        "setup_done": snapshot.setup_done,
        "users": users_to_json(changed),
        "removed_users": sorted(old.keys() - new.keys()),
    }


def users_line(before: ConfigSnapshot, snapshot: ConfigSnapshot, *, changes: bool = False) -> bytes:
    """One feed line: ``snapshot`` as a users update of ``before``, the last one sent;
    ``changes`` as for :func:`sessions_line`."""
    return (
        dumps(
            {
                "type": "users",
                "after": before.serial,
                "serial": snapshot.serial,
                "issued_at": snapshot.issued_at.timestamp(),
                **_users_json(before, snapshot),
                **_sessions_json(before, snapshot, changes),
            }
        )
        + b"\n"
    )


def apps_line(
    before: ConfigSnapshot,
    snapshot: ConfigSnapshot,
    *,
    changes: bool = False,
    app_limits: bool = True,
) -> bytes:
    """One feed line: ``snapshot`` as an apps update of ``before``, the last one sent;
    ``changes`` as for :func:`sessions_line`, ``app_limits`` as for :func:`snapshot_line`."""
    old = {app.id: app for app in before.apps}
    # As with users, an app that did not change is the very same object (authz keeps it).
    changed = [app for app in snapshot.apps if (o := old.get(app.id)) is not app and o != app]
    removed = old.keys() - {app.id for app in snapshot.apps}
    return (
        dumps(
            {
                "type": "apps",
                "after": before.serial,
                "serial": snapshot.serial,
                "issued_at": snapshot.issued_at.timestamp(),
                "apps": [app_to_json(app, app_limits) for app in changed],
                "removed_apps": sorted(removed),
                **_users_json(before, snapshot),
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
    elif kind == "apps":
        parsed = _apps_update(message)
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


def _apps_update(message: Members) -> AppsUpdate:
    users = _users_update(message)
    changed = tuple(app_from_json(a, f"apps[{i}]") for i, a in enumerate(message.array("apps")))
    removed = frozenset(AppId(a) for a in message.texts("removed_apps"))
    ids = [app.id for app in changed]
    if len(set(ids)) != len(ids):
        fail("names an app twice", "apps")
    if not removed.isdisjoint(ids):
        fail("names an app that is also in apps", "removed_apps")
    return AppsUpdate(
        after=users.after,
        serial=users.serial,
        issued_at=users.issued_at,
        setup_done=users.setup_done,
        changed_apps=changed,
        removed_apps=removed,
        changed=users.changed,
        removed=users.removed,
        revoked_sessions=users.revoked_sessions,
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
