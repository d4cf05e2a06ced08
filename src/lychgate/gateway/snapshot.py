"""The gateway's whole view of the configuration, as one immutable value.

Theory of operation
-------------------
The gateway keeps no database connection (DESIGN.md, "Processes"). authz sends it a complete
:class:`ConfigSnapshot` over the config feed on connect and on every change; the gateway swaps
the snapshot in :class:`SnapshotHolder` in one assignment, so a request is always decided on
one consistent snapshot. Everything derived (keyring, lookup tables, the assertion signer) is
built once per snapshot, never per request. If authz goes away the gateway keeps serving on
the last snapshot; :meth:`SnapshotHolder.age` says how long ago the feed last confirmed it.

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
  (``_LATER_APP_MEMBERS``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final, cast
from urllib.parse import urlsplit

from lychgate.config.settings import RoutingMode
from lychgate.domain import (
    APP_HEADER_BYTES_RANGE,
    APP_HEADERS_RANGE,
    App,
    AppPolicy,
    SigningKey,
    app_to_dict,
)
from lychgate.errors import ConfigError
from lychgate.gateway.app_hosts import app_host, clashes
from lychgate.gateway.feed_json import Members, fail
from lychgate.gateway.http.pool import parse_upstream_url
from lychgate.ids import AppId, AppSlug, KeyId, SessionId, UserId
from lychgate.secret import Secret
from lychgate.tls.hosts import normalize_host, url_scheme_and_host
from lychgate.tokens import Keyring, PublicKeyring

log = logging.getLogger(__name__)

FORMAT: Final = 1
_ROUTING: Final = ("single-host", "subdomains")
_UPSTREAM_SCHEMES: Final = ("http://", "https://", "unix:/")
# App members added after format 1 shipped. authz leaves each out while it is None, and a
# missing one reads as None. A gateway that predates them would refuse a whole snapshot that
# carries one (its reader refuses unknown members) and stay on its last, deaf to revocations,
# so authz sends them only to a gateway that lists ``app-limits`` in its feed request; an
# older one gets them left out and applies its listener's limits, as it always did.
_LATER_APP_MEMBERS: Final = ("max_header_bytes", "max_headers", "idle_timeout")


@dataclass(frozen=True, slots=True)
class UserProfile:
    """What an identity assertion says about a user beyond the ids in the app token."""

    name: str
    email: str | None = None
    groups: tuple[str, ...] = ()


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

    def differs_only_in_sessions(self, other: ConfigSnapshot) -> bool:
        """True when ``other`` is this snapshot but for serial, time and sessions to end."""
        return self._same_but(other, _SESSION_FIELDS)

    def differs_only_in_users(self, other: ConfigSnapshot) -> bool:
        """True when ``other`` is this snapshot but for serial, time, sessions to end, users
        and whether setup is done (which follows from the users)."""
        return self._same_but(other, _USER_FIELDS)

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
        predates them (see ``_LATER_APP_MEMBERS``).
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
            "apps": [_app_to_json(app, app_limits) for app in self.apps],
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
            apps=tuple(_app_from_json(a, f"apps[{i}]") for i, a in enumerate(top.array("apps"))),
            users=users_from_json(top.raw("users")),
            revoked_sessions=frozenset(SessionId(s) for s in top.texts("revoked_sessions")),
            keyring=PublicKeyring.from_jwks(jwks),
            assertion_key=_key_from_json(top.raw("assertion_key")),
        )
        top.done()
        return snapshot


_STAMP_FIELDS: Final = frozenset({"serial", "issued_at"})
_SESSION_FIELDS: Final = _STAMP_FIELDS | {"revoked_sessions"}
_USER_FIELDS: Final = _SESSION_FIELDS | {"users", "setup_done"}


def _same_key(a: SigningKey | None, b: SigningKey | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.kid == b.kid and a.private_jwk.reveal() == b.private_jwk.reveal()


def instant(seconds: float, where: str) -> datetime:
    """A feed timestamp (seconds since the epoch) as an aware datetime; ConfigError if absurd."""
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        fail("is not a valid time", where)


def _app_to_json(app: App, app_limits: bool) -> dict[str, object]:
    value = app_to_dict(app)  # not trimmed there: the store writes every column from it
    for name in _LATER_APP_MEMBERS:
        if not app_limits or value[name] is None:
            del value[name]
    return value


def apps_with_own_limits(snapshot: ConfigSnapshot) -> list[str]:
    """The slugs of the apps that set a request limit of their own (``_LATER_APP_MEMBERS``)."""
    return [
        app.slug
        for app in snapshot.apps
        if any(getattr(app, name) is not None for name in _LATER_APP_MEMBERS)
    ]


def wire_problem(app: App) -> str | None:
    """Why a gateway would refuse a snapshot holding ``app`` (its JSON member read back as the
    feed reads it), or None. authz leaves such an app out rather than send what every gateway
    refuses: a refused snapshot carries no revocation either."""
    try:
        _app_from_json(_app_to_json(app, app_limits=True), f"app {app.slug}")
    except ConfigError as exc:
        return str(exc)
    return None


def _lower_scheme(upstream: str) -> str:
    """``HTTP://app:9`` as ``http://app:9``: schemes are case-insensitive (RFC 3986, 3.1), and
    ``app add`` stored such an upstream as typed, which this check then left out of every
    snapshot (its users got a login loop)."""
    scheme, colon, rest = upstream.partition(":")
    return f"{scheme.lower()}:{rest}" if colon else upstream


def _app_from_json(value: object, where: str) -> App:
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
    """One of :data:`_LATER_APP_MEMBERS`, an integer within ``bounds``; None when null or
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


def _key_from_json(value: object) -> SigningKey | None:
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


# -- the holder ---------------------------------------------------------------------------------

Listener = Callable[[ConfigSnapshot | None, ConfigSnapshot], None]


class SnapshotHolder:
    """The current snapshot of one gateway worker, and when the feed last vouched for it.

    ``replace`` swaps the snapshot and calls the listeners (``old, new``) in order, e.g. to close
    the tunnels of sessions that ``new`` revokes. A listener that raises is logged and skipped;
    it cannot stop the swap or the other listeners. One event loop, no threads.
    """

    __slots__ = ("_clock", "_current", "_last_updated", "_listeners")

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._current: ConfigSnapshot | None = None
        self._last_updated: float | None = None
        self._listeners: list[Listener] = []

    @property
    def current(self) -> ConfigSnapshot | None:
        return self._current

    @property
    def last_updated(self) -> float | None:
        """Monotonic time of the last snapshot or heartbeat that confirmed it; None if never."""
        return self._last_updated

    def age(self) -> float | None:
        """Seconds since the feed last confirmed the current snapshot; None with no snapshot."""
        if self._last_updated is None:
            return None
        return max(0.0, self._clock() - self._last_updated)

    def is_stale(self, max_age: float) -> bool:
        """True with no snapshot, or when the feed has not confirmed it for ``max_age`` s."""
        age = self.age()
        return age is None or age > max_age

    def replace(self, snapshot: ConfigSnapshot) -> None:
        """Make ``snapshot`` current, then tell the listeners."""
        old = self._current
        self._current = snapshot
        self._last_updated = self._clock()
        for listener in tuple(self._listeners):
            try:
                listener(old, snapshot)
            except Exception:
                log.exception("snapshot listener failed")

    def confirm(self, serial: int) -> bool:
        """A heartbeat says ``serial`` is still authz's latest: refresh the age if it is ours."""
        if self._current is None or self._current.serial != serial:
            return False
        self._last_updated = self._clock()
        return True

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(old, new)`` on every replace; returns a function that removes it."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove


def newly_revoked(old: ConfigSnapshot | None, new: ConfigSnapshot) -> frozenset[SessionId]:
    """Sessions that ``new`` revokes and ``old`` did not (all of them when there was no old)."""
    if old is None:
        return new.revoked_sessions
    return new.revoked_sessions - old.revoked_sessions


def check_snapshot(value: object) -> ConfigSnapshot:
    """``from_json`` that also refuses a non-ConfigError failure as a ConfigError (fail closed)."""
    try:
        return ConfigSnapshot.from_json(value)
    except ConfigError:
        raise
    except Exception as exc:  # a bug in a value we did not foresee: refuse, do not crash the feed
        raise ConfigError(f"snapshot refused ({type(exc).__name__})", field="snapshot") from None
