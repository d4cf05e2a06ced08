"""The events that authz replicas tell each other about.

An event is a *notification*, not the source of truth: the store holds the state, and an event
only says "this changed, look again" (or "wake the browser waiting on this login"). That is why a
subscriber that missed events (see :class:`~lychgate.events.subscription.Lagged`) can always
recover by re-reading the store.

Events are frozen, slotted dataclasses whose fields are all non-empty strings, so that every one
of them has a small, flat JSON form (:mod:`lychgate.events.codec`) that fits in a PostgreSQL
NOTIFY payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from lychgate.ids import DeviceId, LoginRequestId, SessionId, UserId


@dataclass(frozen=True, slots=True)
class LoginApproved:
    """A device approved a login request; the browser waiting on it may finish."""

    login_id: LoginRequestId
    user_id: UserId
    device_id: DeviceId


@dataclass(frozen=True, slots=True)
class LoginDenied:
    """A device denied a login request; the browser waiting on it shows the refusal."""

    login_id: LoginRequestId


@dataclass(frozen=True, slots=True)
class SessionRevoked:
    """A session was revoked (logout, admin action); feeds push it to every gateway."""

    session_id: SessionId
    user_id: UserId


@dataclass(frozen=True, slots=True)
class ConfigChanged:
    """Something in the configuration changed; ``what`` names it ("apps", "keys", "users"...).

    Subscribers rebuild whatever snapshot depends on ``what``; an unknown ``what`` should be
    treated as "everything" rather than ignored, so that a newer replica never leaves an older
    one serving stale config.
    """

    what: str


@dataclass(frozen=True, slots=True)
class OpenApp:
    """Ask the browser signed in with ``session_id`` to open ``url`` (chosen on the device)."""

    session_id: SessionId
    url: str


Event: TypeAlias = LoginApproved | LoginDenied | SessionRevoked | ConfigChanged | OpenApp
"""Every event the bus carries. The codec's registry is closed over exactly these types."""
