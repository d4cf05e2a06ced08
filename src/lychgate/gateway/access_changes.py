"""What is already open follows each change of the config snapshot, as new requests do.

Admission decides each request once, at its head. Two kinds of traffic outlive that moment by
hours: WebSockets (tunnels) and responses that stream (server-sent events, long downloads).
When the feed brings a change, each of those is asked again whether the snapshot would still
admit it, and what it would not is closed:

* its session ended (signed out, revoked, expired, its user disabled): the tunnels by their
  session index, the responses under way by a walk over the open connections;
* its app was removed or disabled, became admins-only for a user whose token is not an
  admin's, or (for a tunnel) stopped allowing WebSockets;
* its user left the snapshot;
* the key that signed its app token left the keyring (``keys rotate --compromised``).

A connection waiting, idle, for its next request after an app's response waits no longer than
that app's ``idle_timeout`` now allows, counted from when it went idle: lowering it takes
effect on the connections already open, not only on the next response.

A change of the sessions alone (the snapshot keeps its :attr:`~.ConfigSnapshot.basis`) asks
only about the sessions it ends; any other change asks about everything open. Either walk is
one pass over the connections and tunnels, a few milliseconds for ten thousand, and only when
the snapshot changes, never per request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from lychgate.domain import AppPolicy
from lychgate.gateway.forwarding import Identity
from lychgate.gateway.http.server import GatewayServer, Refusal
from lychgate.gateway.snapshot import ConfigSnapshot, newly_revoked
from lychgate.gateway.types import Principal
from lychgate.ids import AppSlug, SessionId

log = logging.getLogger(__name__)

SESSION_ENDED = "session ended"


def admission_refusal(snapshot: ConfigSnapshot) -> Refusal:
    """Why ``snapshot`` would no longer admit a tunnel or response of (app, user), or None."""

    def refuse(app: AppSlug | None, who: Principal, tunnel: bool) -> str | None:
        if who.session_id in snapshot.revoked_sessions:
            return SESSION_ENDED
        if app is None or not isinstance(who, Identity):
            return None  # the control plane's: authz decides its own
        found = snapshot.apps_by_slug.get(app)
        if found is None:
            return "app removed or disabled"
        if found.policy is AppPolicy.ADMINS and not who.admin:
            return "app now admits admins only"
        if tunnel and not found.websockets:
            return "app no longer allows WebSockets"
        if who.user_id not in snapshot.users:
            return "user disabled or removed"
        if who.kid and who.kid not in snapshot.keyring.kids:
            return "signing key dropped"  # keys rotate --compromised, or retired and gone
        return None

    return refuse


def idle_timeouts(snapshot: ConfigSnapshot) -> Callable[[AppSlug], float | None]:
    """Each app's own keep-alive wait in ``snapshot`` (None: the listener's, also for an app
    it no longer has)."""
    apps = snapshot.apps_by_slug

    def idle_of(slug: AppSlug) -> float | None:
        app = apps.get(slug)
        return None if app is None else app.idle_timeout

    return idle_of


def _ended(sessions: frozenset[SessionId]) -> Refusal:
    def refuse(app: AppSlug | None, who: Principal, tunnel: bool) -> str | None:
        return SESSION_ENDED if who.session_id in sessions else None

    return refuse


def follow_changes(
    server: GatewayServer,
) -> Callable[[ConfigSnapshot | None, ConfigSnapshot], None]:
    """A snapshot listener that closes what the new snapshot no longer admits."""

    def on_change(old: ConfigSnapshot | None, new: ConfigSnapshot) -> None:
        if old is not None and old.basis is new.basis:
            ended = newly_revoked(old, new)
            if not ended:
                return
            refuse = _ended(ended)
        else:
            refuse = admission_refusal(new)
            server.follow_idle(idle_timeouts(new))
        tunnels, streams = server.close_where(refuse)
        if tunnels or streams:
            log.info(
                "closed %d tunnel(s) and %d response(s) under way that the new config no "
                "longer admits (sessions ended, apps changed)",
                tunnels,
                streams,
            )

    return on_change
