"""The gateway's whole view of the configuration, as one immutable value.

Theory of operation
-------------------
The gateway keeps no database connection (DESIGN.md, "Processes"). authz sends it a complete
:class:`ConfigSnapshot` over the config feed on connect, and on every change either another or
an update that the gateway applies to the one it holds (:mod:`.feed_updates`); the gateway
swaps the snapshot in :class:`SnapshotHolder` (:mod:`.snapshot_holder`) in one assignment, so
a request is always decided on one consistent snapshot. Everything derived (keyring, lookup
tables, the assertion signer) is built once per snapshot, never per request. If authz goes
away the gateway keeps serving on the last snapshot; :meth:`SnapshotHolder.age` says how long
ago the feed last confirmed it.

The wire format (``to_json``/``from_json``) is versioned by ``format`` and read strictly (see
:mod:`lychgate.gateway.feed_json`): a member missing, mistyped or unknown refuses the whole
snapshot. Keys:

* ``jwks`` verifies **app tokens** only: authz's signing keys.
* ``assertion_key`` is a private ES256 JWK that authz hands the gateway to sign identity
  assertions (the gateway holds no other private key). Its public half goes into the JWKS that
  authz serves to apps, but never into ``jwks`` here: a key the gateway holds must not be able to
  mint app tokens the gateway accepts. The feed runs over authz's unix socket with a bearer
  secret; ``to_json`` output therefore holds key material and must never be logged.
* ``users`` gives the profile that goes into the assertion (name, e-mail, groups). The app token
  carries only ids, and a token whose user is not listed is refused (a deleted or disabled user
  is simply left out).
* An app's ``max_header_bytes``, ``max_headers`` and ``idle_timeout`` came after format 1: they
  are sent only when set, and only to a gateway that says it reads them (``app-limits`` in its
  feed request: :mod:`.feed_wire`); a missing one means the listener's limit
  (``LATER_APP_MEMBERS``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from types import MappingProxyType
from typing import Final, cast
from urllib.parse import urlsplit

from lychgate.config.settings import RoutingMode
from lychgate.domain import App, SigningKey
from lychgate.errors import ConfigError
from lychgate.gateway.app_hosts import app_host, clashes
from lychgate.gateway.feed_json import Members, fail
from lychgate.gateway.snapshot_holder import Listener, SnapshotHolder, newly_revoked
from lychgate.gateway.snapshot_json import (
    LATER_APP_MEMBERS,
    UserProfile,
    app_from_json,
    app_to_json,
    instant,
    key_from_json,
    users_from_json,
    users_to_json,
    wire_problem,
)
from lychgate.ids import AppId, AppSlug, SessionId, UserId
from lychgate.tls.hosts import normalize_host, url_scheme_and_host
from lychgate.tokens import Keyring, PublicKeyring

__all__ = [
    "ConfigSnapshot",
    "Listener",
    "SnapshotHolder",
    "UserProfile",
    "apps_with_own_limits",
    "check_snapshot",
    "instant",
    "newly_revoked",
    "users_from_json",
    "users_to_json",
    "wire_problem",
]

FORMAT: Final = 1
_ROUTING: Final = ("single-host", "subdomains")


@dataclass(frozen=True, slots=True, eq=False)
class ConfigSnapshot:
    """Apps, users, revocations and keys as of ``serial``. Validated on construction.

    Only enabled apps appear in ``apps_by_slug`` and ``apps_by_host``; ``apps`` keeps all of
    them so the snapshot round-trips. Raises :class:`~lychgate.errors.ConfigError` when the
    pieces do not fit together (two apps on one host, an app on the portal host ...).
    """

    serial: int
    issued_at: datetime
    issuer: str
    routing: RoutingMode
    public_url: str
    app_domain: str
    setup_done: bool
    apps: tuple[App, ...]
    users: Mapping[UserId, UserProfile]
    # Sessions to end: revoked ones whose tokens could still be valid, and ones that reached
    # their end in the last few minutes (tokens refused; tunnels closed on first sight).
    revoked_sessions: frozenset[SessionId]
    keyring: PublicKeyring
    assertion_key: SigningKey | None = field(default=None, repr=False)

    public_scheme: str = field(init=False)
    public_host: str = field(init=False)
    public_port: int | None = field(init=False)
    apps_by_slug: Mapping[AppSlug, App] = field(init=False, repr=False)
    apps_by_host: Mapping[str, App] = field(init=False, repr=False)
    assertion_keyring: Keyring | None = field(init=False, repr=False)
    # Shared by the snapshots that differ only in serial, time and sessions to end, one made
    # from another by with_sessions: a token check reads the same in all of them but for the
    # revoked set (the gateway's memo of admitted cookies lives as long as it; .admit_memo).
    basis: object = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.serial, bool) or self.serial < 0:
            fail("must be a non-negative integer", "serial")
        if self.issued_at.tzinfo is None:
            fail("must be timezone-aware", "issued_at")
        if self.routing not in _ROUTING:
            fail("must be single-host or subdomains", "routing")
        scheme, host = url_scheme_and_host(self.public_url)
        try:
            port = urlsplit(self.public_url).port
        except ValueError:
            fail("has a bad port", "public_url")
        default = 443 if scheme == "https" else 80
        setattr_ = object.__setattr__
        setattr_(self, "public_scheme", scheme)
        setattr_(self, "public_host", host)
        setattr_(self, "public_port", None if port == default else port)
        if self.routing == "subdomains":
            setattr_(self, "app_domain", normalize_host(self.app_domain, field="app_domain"))
        setattr_(self, "users", MappingProxyType(dict(self.users)))
        by_slug, by_host = self._index_apps()
        setattr_(self, "apps_by_slug", MappingProxyType(by_slug))
        setattr_(self, "apps_by_host", MappingProxyType(by_host))
        setattr_(self, "assertion_keyring", self._assertion_keyring())
        setattr_(self, "basis", object())

    def _index_apps(self) -> tuple[dict[AppSlug, App], dict[str, App]]:
        by_slug: dict[AppSlug, App] = {}
        by_host: dict[str, App] = {}
        ids: set[AppId] = set()
        slugs: set[AppSlug] = set()
        for index, app in enumerate(self.apps):
            where = f"apps[{index}]"
            if app.id in ids or app.slug in slugs:
                fail("repeats another app's id or slug", where)
            ids.add(app.id)
            slugs.add(app.slug)
            if not app.enabled:
                continue
            by_slug[app.slug] = app
        if self.routing == "subdomains":  # authz leaves such apps out (.app_hosts)
            refused = clashes(self.apps, app_domain=self.app_domain, public_host=self.public_host)
            if refused:
                index = next(i for i, app in enumerate(self.apps) if app.slug in refused)
                fail("answers on a host that is already taken", f"apps[{index}].host")
            by_host = {app_host(app, self.app_domain): app for app in by_slug.values()}
        return by_slug, by_host

    def _assertion_keyring(self) -> Keyring | None:
        key = self.assertion_key
        if key is None:
            return None
        if key.kid in self.keyring.kids:
            fail("must not be one of the app-token verification keys", "assertion_key")
        return Keyring([key], key.created_at)

    # -- lookups ------------------------------------------------------------------------------

    @property
    def public_origin(self) -> str:
        """``scheme://host[:port]`` of the public (portal) URL, canonical."""
        return self.origin_for(self.public_host)

    def origin_for(self, host: str) -> str:
        """The origin of ``host`` on this deployment: the public URL's scheme and port."""
        name = f"[{host}]" if ":" in host else host
        port = "" if self.public_port is None else f":{self.public_port}"
        return f"{self.public_scheme}://{name}{port}"

    def served_origins(self) -> frozenset[str]:
        """Every origin the gateway serves: where a redirect may point (SECURITY.md item 1)."""
        return frozenset({self.public_origin} | {self.origin_for(h) for h in self.apps_by_host})

    @property
    def secure_cookies(self) -> bool:
        """True when cookies must be Secure (and the app cookie ``__Host-`` prefixed)."""
        return self.public_scheme == "https"

    # -- the sessions alone -------------------------------------------------------------------

    def with_sessions(
        self, *, serial: int, issued_at: datetime, revoked_sessions: frozenset[SessionId]
    ) -> ConfigSnapshot:
        """This snapshot under a new serial, with another set of sessions to end (and the
        same :attr:`basis`)."""
        fresh = replace(self, serial=serial, issued_at=issued_at, revoked_sessions=revoked_sessions)
        object.__setattr__(fresh, "basis", self.basis)
        return fresh

    def with_users(
        self,
        *,
        serial: int,
        issued_at: datetime,
        setup_done: bool,
        users: Mapping[UserId, UserProfile],
        revoked_sessions: frozenset[SessionId],
    ) -> ConfigSnapshot:
        """This snapshot under a new serial, with other users and sessions to end."""
        return replace(
            self,
            serial=serial,
            issued_at=issued_at,
            setup_done=setup_done,
            users=users,
            revoked_sessions=revoked_sessions,
        )

    def with_apps(
        self,
        *,
        serial: int,
        issued_at: datetime,
        setup_done: bool,
        apps: tuple[App, ...],
        users: Mapping[UserId, UserProfile],
        revoked_sessions: frozenset[SessionId],
    ) -> ConfigSnapshot:
        """This snapshot under a new serial, with other apps, users and sessions to end (its
        lookup tables built again: a few milliseconds for thousands of apps)."""
        return replace(
            self,
            serial=serial,
            issued_at=issued_at,
            setup_done=setup_done,
            apps=apps,
            users=users,
            revoked_sessions=revoked_sessions,
        )

    def differs_only_in_sessions(self, other: ConfigSnapshot) -> bool:
        """True when ``other`` is this snapshot but for serial, time and sessions to end."""
        return self._same_but(other, _SESSION_FIELDS)

    def differs_only_in_users(self, other: ConfigSnapshot) -> bool:
        """True when ``other`` is this snapshot but for serial, time, sessions to end, users
        and whether setup is done (which follows from the users)."""
        return self._same_but(other, _USER_FIELDS)

    def differs_only_in_apps(self, other: ConfigSnapshot) -> bool:
        """True when ``other`` is this snapshot but for serial, time, sessions to end, users,
        whether setup is done, and apps: the same settings and keys."""
        return self._same_but(other, _APP_FIELDS)

    def same_content(self, other: ConfigSnapshot) -> bool:
        """True when ``other`` is this snapshot but for its serial and time."""
        return self._same_but(other, _STAMP_FIELDS)

    def _same_but(self, other: ConfigSnapshot, skipped: frozenset[str]) -> bool:
        """Compares every field not ``skipped`` (a field added later is compared too); keys
        by their public form and the assertion key by its id and private form."""
        for f in fields(self):
            name = f.name
            if not f.init or name in skipped:
                continue
            mine, theirs = getattr(self, name), getattr(other, name)
            if name == "keyring":
                same = mine.jwks() == theirs.jwks()
            elif name == "assertion_key":
                same = _same_key(mine, theirs)
            else:
                same = mine == theirs
            if not same:
                return False
        return True

    # -- wire format --------------------------------------------------------------------------

    def to_json(self, *, app_limits: bool = True) -> dict[str, object]:
        """The feed's JSON form. Holds the private assertion key: never log it.

        ``app_limits=False`` leaves out the apps' own request limits, for a gateway that
        predates them (see ``LATER_APP_MEMBERS``).
        """
        key = self.assertion_key
        return {
            "format": FORMAT,
            "serial": self.serial,
            "issued_at": self.issued_at.timestamp(),
            "issuer": self.issuer,
            "routing": self.routing,
            "public_url": self.public_url,
            "app_domain": self.app_domain,
            "setup_done": self.setup_done,
            "apps": [app_to_json(app, app_limits) for app in self.apps],
            "users": users_to_json(self.users),
            "revoked_sessions": sorted(self.revoked_sessions),
            "jwks": self.keyring.jwks(),
            "assertion_key": None
            if key is None
            else {
                "kid": key.kid,
                "jwk": json.loads(key.private_jwk.reveal()),
                "created_at": key.created_at.timestamp(),
            },
        }

    @classmethod
    def from_json(cls, value: object) -> ConfigSnapshot:
        """Read the JSON form strictly. Raises :class:`~lychgate.errors.ConfigError`."""
        top = Members(value, "")
        if top.integer("format") != FORMAT:
            fail(f"must be {FORMAT}", "format")
        routing = top.text("routing")
        if routing not in _ROUTING:
            fail("must be single-host or subdomains", "routing")
        jwks = top.raw("jwks")
        if not isinstance(jwks, dict):
            fail("must be an object", "jwks")
        snapshot = cls(
            serial=top.integer("serial"),
            issued_at=instant(top.number("issued_at"), "issued_at"),
            issuer=top.text("issuer"),
            routing=cast(RoutingMode, routing),
            public_url=top.text("public_url"),
            app_domain=top.text("app_domain"),
            setup_done=top.flag("setup_done"),
            apps=tuple(app_from_json(a, f"apps[{i}]") for i, a in enumerate(top.array("apps"))),
            users=users_from_json(top.raw("users")),
            revoked_sessions=frozenset(SessionId(s) for s in top.texts("revoked_sessions")),
            keyring=PublicKeyring.from_jwks(jwks),
            assertion_key=key_from_json(top.raw("assertion_key")),
        )
        top.done()
        return snapshot


_STAMP_FIELDS: Final = frozenset({"serial", "issued_at"})
_SESSION_FIELDS: Final = _STAMP_FIELDS | {"revoked_sessions"}
_USER_FIELDS: Final = _SESSION_FIELDS | {"users", "setup_done"}
_APP_FIELDS: Final = _USER_FIELDS | {"apps"}


def _same_key(a: SigningKey | None, b: SigningKey | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.kid == b.kid and a.private_jwk.reveal() == b.private_jwk.reveal()


def apps_with_own_limits(snapshot: ConfigSnapshot) -> list[str]:
    """The slugs of the apps that set a request limit of their own (``LATER_APP_MEMBERS``)."""
    return [
        app.slug
        for app in snapshot.apps
        if any(getattr(app, name) is not None for name in LATER_APP_MEMBERS)
    ]


def check_snapshot(value: object) -> ConfigSnapshot:
    """``from_json`` that also refuses a non-ConfigError failure as a ConfigError (fail closed)."""
    try:
        return ConfigSnapshot.from_json(value)
    except ConfigError:
        raise
    except Exception as exc:  # a bug in a value we did not foresee: refuse, do not crash the feed
        raise ConfigError(f"snapshot refused ({type(exc).__name__})", field="snapshot") from None
