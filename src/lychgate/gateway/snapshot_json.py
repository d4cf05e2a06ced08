"""The JSON of a snapshot's parts, read strictly: apps, users' profiles and the assertion key.

What the feed carries of each app, user and key, both in a full snapshot (:mod:`.snapshot`)
and in the updates that carry only what changed (:mod:`.feed_wire`). Every reader refuses a
member missing, mistyped or unknown (:mod:`.feed_json`); an error names the member, never its
value, which may be key material.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from lychgate.domain import (
    APP_HEADER_BYTES_RANGE,
    APP_HEADERS_RANGE,
    App,
    AppPolicy,
    SigningKey,
    app_to_dict,
)
from lychgate.errors import ConfigError
from lychgate.gateway.feed_json import Members, fail
from lychgate.gateway.http.pool import parse_upstream_url
from lychgate.ids import AppId, AppSlug, KeyId, UserId
from lychgate.secret import Secret
from lychgate.tls.hosts import normalize_host

_UPSTREAM_SCHEMES: Final = ("http://", "https://", "unix:/")
# App members added after format 1 shipped. authz leaves each out while it is None, and a
# missing one reads as None. A gateway that predates them would refuse a whole snapshot that
# carries one (its reader refuses unknown members) and stay on its last, deaf to revocations,
# so authz sends them only to a gateway that lists ``app-limits`` in its feed request; an
# older one gets them left out and applies its listener's limits, as it always did.
LATER_APP_MEMBERS: Final = ("max_header_bytes", "max_headers", "idle_timeout")


@dataclass(frozen=True, slots=True)
class UserProfile:
    """What an identity assertion says about a user beyond the ids in the app token."""

    name: str
    email: str | None = None
    groups: tuple[str, ...] = ()


def instant(seconds: float, where: str) -> datetime:
    """A feed timestamp (seconds since the epoch) as an aware datetime; ConfigError if absurd."""
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        fail("is not a valid time", where)


def app_to_json(app: App, app_limits: bool) -> dict[str, object]:
    value = app_to_dict(app)  # not trimmed there: the store writes every column from it
    for name in LATER_APP_MEMBERS:
        if not app_limits or value[name] is None:
            del value[name]
    return value


def wire_problem(app: App) -> str | None:
    """Why a gateway would refuse a snapshot holding ``app`` (its JSON member read back as the
    feed reads it), or None. authz leaves such an app out rather than send what every gateway
    refuses: a refused snapshot carries no revocation either."""
    try:
        app_from_json(app_to_json(app, app_limits=True), f"app {app.slug}")
    except ConfigError as exc:
        return str(exc)
    return None


def _lower_scheme(upstream: str) -> str:
    """``HTTP://app:9`` as ``http://app:9``: schemes are case-insensitive (RFC 3986, 3.1), and
    ``app add`` stored such an upstream as typed, which this check then left out of every
    snapshot (its users got a login loop)."""
    scheme, colon, rest = upstream.partition(":")
    return f"{scheme.lower()}:{rest}" if colon else upstream


def app_from_json(value: object, where: str) -> App:
    m = Members(value, where)
    upstream = _lower_scheme(m.text("upstream"))
    if not upstream.startswith(_UPSTREAM_SCHEMES):
        fail("must be http://, https:// or unix:/", m.path("upstream"))
    try:
        parse_upstream_url(upstream)  # as the pool will read it: no credentials, a real port
    except ConfigError:
        fail("is not a usable upstream URL", m.path("upstream"))
    host = m.optional_text("host")
    if host is not None and normalize_host(host, field=m.path("host")) != host:
        fail("must be a normalized host name", m.path("host"))
    try:
        policy = AppPolicy(m.text("policy"))
    except ValueError:
        fail("is not a known policy", m.path("policy"))
    app = App(
        id=AppId(m.text("id")),
        slug=AppSlug(m.text("slug")),
        name=m.text("name", empty=True),
        upstream=upstream,
        host=host,
        policy=policy,
        websockets=m.flag("websockets"),
        description=m.text("description", empty=True),
        icon=m.text("icon", empty=True),
        verify_tls=m.flag("verify_tls"),
        connect_timeout=m.optional_positive("connect_timeout"),
        read_timeout=m.optional_positive("read_timeout"),
        max_body_bytes=m.optional_integer("max_body_bytes"),
        enabled=m.flag("enabled"),
        allow_cross_origin=m.flag("allow_cross_origin"),
        max_header_bytes=_later_integer(m, "max_header_bytes", APP_HEADER_BYTES_RANGE),
        max_headers=_later_integer(m, "max_headers", APP_HEADERS_RANGE),
        idle_timeout=m.optional_positive("idle_timeout") if m.has("idle_timeout") else None,
    )
    m.done()
    return app


def _later_integer(m: Members, name: str, bounds: tuple[int, int]) -> int | None:
    """One of :data:`LATER_APP_MEMBERS`, an integer within ``bounds``; None when null or
    missing."""
    if not m.has(name):
        return None
    low, high = bounds
    number = m.optional_integer(name, minimum=low)
    if number is not None and number > high:
        fail(f"must be an integer from {low} to {high} or null", m.path(name))
    return number


def users_to_json(users: Mapping[UserId, UserProfile]) -> dict[str, object]:
    """The feed's JSON form of some users' profiles, by id."""
    return {
        uid: {"name": p.name, "email": p.email, "groups": list(p.groups)}
        for uid, p in sorted(users.items())
    }


def users_from_json(value: object, where: str = "users") -> dict[UserId, UserProfile]:
    """Read :func:`users_to_json`'s form strictly; ``where`` names the member in errors."""
    if not isinstance(value, dict):
        fail("must be an object", where)
    users: dict[UserId, UserProfile] = {}
    for uid, entry in value.items():
        if not uid:
            fail("has an empty user id", where)
        m = Members(entry, f"{where}[{uid!r}]")
        users[UserId(uid)] = UserProfile(
            name=m.text("name", empty=True),
            email=m.optional_text("email"),
            groups=m.texts("groups"),
        )
        m.done()
    return users


def key_from_json(value: object) -> SigningKey | None:
    if value is None:
        return None
    m = Members(value, "assertion_key")
    kid = m.text("kid")
    jwk = m.raw("jwk")
    if not isinstance(jwk, dict):
        fail("must be an object", "assertion_key.jwk")
    created_at = instant(m.number("created_at"), "assertion_key.created_at")
    m.done()
    return SigningKey(kid=KeyId(kid), private_jwk=Secret(json.dumps(jwk)), created_at=created_at)
