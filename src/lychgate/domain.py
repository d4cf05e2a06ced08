"""Domain values shared by the store, tokens, authz and the gateway.

Frozen, slotted dataclasses: they are facts read from the store or made by a service, never
mutated in place. Use :func:`dataclasses.replace` to derive a changed copy.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

from lychgate.ids import (
    ApiKeyId,
    AppId,
    AppSlug,
    DeviceId,
    KeyId,
    LoginRequestId,
    RegistrationId,
    SessionId,
    UserId,
)
from lychgate.secret import Secret

DeviceKind = Literal["passkey", "device_key"]

# The bounds (inclusive) of an app's own ``max_header_bytes`` and ``max_headers``: the same as
# the listener's (lychgate.config.settings.Limits), which they replace for that app.
APP_HEADER_BYTES_RANGE: Final = (1024, 1024 * 1024)
APP_HEADERS_RANGE: Final = (8, 1000)


class AppPolicy(enum.StrEnum):
    """Who may use an app once signed in."""

    ANY_USER = "any-user"  # every enabled user
    ADMINS = "admins"  # only tokens with the admin flag


class LoginStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    FINISHED = "finished"


class RegistrationStatus(enum.StrEnum):
    PENDING = "pending"
    ENROLLED = "enrolled"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class User:
    id: UserId
    name: str
    email: str | None
    external_id: str | None
    is_admin: bool
    disabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Device:
    id: DeviceId
    user_id: UserId
    kind: DeviceKind
    name: str
    public_key: bytes  # raw Ed25519 key, or a COSE key for passkeys
    credential_id: bytes | None  # WebAuthn credential id; None for device keys
    sign_count: int
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


@dataclass(frozen=True, slots=True)
class App:
    id: AppId
    slug: AppSlug
    name: str
    upstream: str  # http://, https:// or unix:/path
    host: str | None  # subdomains mode: the exact host this app answers on
    policy: AppPolicy = AppPolicy.ANY_USER
    websockets: bool = False
    description: str = ""
    icon: str = ""
    verify_tls: bool = True  # https upstreams are verified unless the admin opts out
    connect_timeout: float | None = None  # None: the gateway's default
    read_timeout: float | None = None
    max_body_bytes: int | None = None
    enabled: bool = True
    # Let pages of other origins send state-changing requests; off, the gateway refuses them
    # (admission step 8), and the app need not check Origin or CSRF tokens against them.
    allow_cross_origin: bool = False
    # The request head (request line and fields) in bytes, and its number of fields; None: the
    # listener's limits. Bounds: APP_HEADER_BYTES_RANGE and APP_HEADERS_RANGE.
    max_header_bytes: int | None = None
    max_headers: int | None = None
    # Seconds a keep-alive connection may wait for its next request after a response from
    # this app; None: the listener's idle_timeout.
    idle_timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Session:
    id: SessionId
    user_id: UserId
    device_id: DeviceId | None
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime
    revoked: bool
    user_agent: str
    ip: str


@dataclass(frozen=True, slots=True)
class LoginRequest:
    id: LoginRequestId
    secret_hash: bytes  # hash of the browser-binding cookie value
    number: int  # two-digit verification number
    rd: str  # where the browser goes after sign-in (already validated)
    app_slug: AppSlug | None
    status: LoginStatus
    created_at: datetime
    expires_at: datetime
    user_agent: str
    ip: str
    user_id: UserId | None = None  # set on approval
    device_id: DeviceId | None = None  # set on approval
    session_id: SessionId | None = None  # set on finish


@dataclass(frozen=True, slots=True)
class Registration:
    id: RegistrationId
    token_hash: bytes  # hash of the one-time proxying token
    external_id: str
    name: str
    email: str | None
    status: RegistrationStatus
    created_at: datetime
    expires_at: datetime
    api_key_id: ApiKeyId | None
    user_id: UserId | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: ApiKeyId
    name: str
    key_hash: bytes  # only a hash is stored; the key itself is shown once
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An ES256 signing key. ``private_jwk`` is the private key as JWK JSON; never logged.

    The newest key whose ``retired_at`` is None signs. Retired keys keep verifying until
    ``verify_until``, when no token they signed can still be valid.
    """

    kid: KeyId
    private_jwk: Secret
    created_at: datetime
    retired_at: datetime | None = None
    verify_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class OneTimeCode:
    """A one-time code or link: only its hash is stored; redeemed at most once."""

    code_hash: bytes
    purpose: str  # "handoff", "enroll", "admin-setup", ...
    payload: str  # JSON, purpose-specific
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: int | None
    at: datetime
    action: str  # e.g. "login.requested", "device.enrolled"
    actor_user_id: UserId | None
    actor_device_id: DeviceId | None
    ip: str | None
    details: dict[str, str] = field(default_factory=dict)


def app_to_dict(app: App) -> dict[str, object]:
    """An app as plain JSON-able values (the feed, the store and the CLI share this form)."""
    return {
        "id": app.id,
        "slug": app.slug,
        "name": app.name,
        "upstream": app.upstream,
        "host": app.host,
        "policy": app.policy.value,
        "websockets": app.websockets,
        "description": app.description,
        "icon": app.icon,
        "verify_tls": app.verify_tls,
        "connect_timeout": app.connect_timeout,
        "read_timeout": app.read_timeout,
        "max_body_bytes": app.max_body_bytes,
        "enabled": app.enabled,
        "allow_cross_origin": app.allow_cross_origin,
        "max_header_bytes": app.max_header_bytes,
        "max_headers": app.max_headers,
        "idle_timeout": app.idle_timeout,
    }
