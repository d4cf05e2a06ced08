"""The config feed's updates, as a gateway applies them: a snapshot it holds, changed.

Each update names the snapshot it changes (``after``) and the one it makes (``serial``); the
gateway applies it only to that snapshot, and an update that does not add up raises
:class:`~lychgate.errors.ConfigError`, on which the gateway reconnects for a full snapshot.
Their wire form is in :mod:`.feed_wire`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from lychgate.domain import App
from lychgate.gateway.feed_json import fail
from lychgate.gateway.snapshot import ConfigSnapshot
from lychgate.gateway.snapshot_json import UserProfile
from lychgate.ids import AppId, SessionId, UserId


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


def _merged_users(
    current: ConfigSnapshot, changed: Mapping[UserId, UserProfile], removed: frozenset[UserId]
) -> dict[UserId, UserProfile]:
    """``current``'s users with ``removed`` gone and ``changed`` added or replaced."""
    users = dict(current.users)
    for uid in removed:
        users.pop(uid, None)
    users.update(changed)
    return users


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
        return current.with_users(
            serial=self.serial,
            issued_at=self.issued_at,
            setup_done=self.setup_done,
            users=_merged_users(current, self.changed, self.removed),
            revoked_sessions=revoked,
        )


@dataclass(frozen=True, slots=True)
class AppsUpdate:
    """Snapshot ``serial`` is snapshot ``after`` with ``changed_apps`` added or replaced (by
    id), ``removed_apps`` gone, and the users, ``setup_done`` and sessions to end of a
    :class:`UsersUpdate`."""

    after: int
    serial: int
    issued_at: datetime
    setup_done: bool
    changed_apps: tuple[App, ...]
    removed_apps: frozenset[AppId]
    changed: Mapping[UserId, UserProfile]
    removed: frozenset[UserId]
    revoked_sessions: SessionsToEnd

    def apply(self, current: ConfigSnapshot) -> ConfigSnapshot:
        """Raises :class:`~lychgate.errors.ConfigError` when a change does not add up (an app
        removed that ``current`` does not hold, two apps on one host...)."""
        revoked = _resolve(self.revoked_sessions, current)
        apps = {app.id: app for app in current.apps}
        for app_id in self.removed_apps:
            if apps.pop(app_id, None) is None:
                fail("names an app not in the snapshot", "removed_apps")
        apps.update((app.id, app) for app in self.changed_apps)
        return current.with_apps(
            serial=self.serial,
            issued_at=self.issued_at,
            setup_done=self.setup_done,
            apps=tuple(sorted(apps.values(), key=lambda app: app.slug)),  # as authz has them
            users=_merged_users(current, self.changed, self.removed),
            revoked_sessions=revoked,
        )
