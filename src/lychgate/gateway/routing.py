"""Which host a request is for, and where it goes.

Host (SECURITY.md item 4)
-------------------------
A request must carry exactly one ``Host`` (RFC 9112 section 3.2: a server MUST answer 400 to a
request with none or several). Its value is normalized once: lower-case, the port split off,
one trailing dot dropped (``Example.COM.:443`` is ``example.com``), IPv6 literals printed
canonically. Anything else -- userinfo, percent-escapes, empty labels, non-ASCII -- is a 400,
never a guess. An absolute-form target must name the same host and port as ``Host`` (RFC 9112
section 3.2.2 says the target wins; we refuse the disagreement instead of picking a side). Over
TLS, the SNI name must equal the host: otherwise the client reused a connection for a host it
was not made for, which is 421 Misdirected Request (RFC 9110 section 15.5.20).

The port a client writes is not used for routing (hosts are routed by name, as nginx's
``server_name`` does), and it is not passed on either: :func:`at_public_port` puts the public
URL's port in its place before anything is forwarded or compared. An app builds its absolute
links from ``Host`` or ``X-Forwarded-Host``; with the client's own port there, ``Host:
wiki.example.com:1337`` would make it write links to port 1337, and a shared cache in front of
the gateway could serve that page to everyone (web cache poisoning). nginx's ``$host`` drops
the port for the same reason.

Routes (DESIGN.md, "URL namespace")
-----------------------------------
* ``/.lychgate/healthz`` is the gateway's own, on any well-formed host: it reveals nothing
  and lets nothing through, so a load balancer that probes by IP address can use it.
* ``/.lychgate/internal/`` (the feed and the other gateway-to-authz calls) is never forwarded
  for a client, on any host: 404. Only gateways reach it, directly.
* **single-host**: only the public host is served; any other host is 404. ``/.lychgate/callback``
  and ``/.lychgate/logout`` are the gateway's, the rest of ``/.lychgate/`` goes to authz, and
  everything else goes to the app *named by the token* (decided later, by admission).
* **subdomains**: the public (portal) host goes to authz entirely. An app host is either the
  app's explicit ``host`` or ``<slug>.<app domain>``; it serves the gateway's endpoints, sends
  ``/.lychgate/`` to authz and everything else to that app. Any other host is 404: there is no
  default app.

The reserved prefix is matched without regard to case, so no spelling of ``/.LychGate/`` ever
reaches an app; authz answers 404 to the spellings it does not serve. Routing sees only paths
that passed :func:`~lychgate.gateway.paths.normalize_path`, which refuses any percent-escape in
a path that a decoding upstream would read as under ``/.lychgate`` (its step 7): so an encoded
``/``, ``?`` or ``#`` cannot carry ``/.lychgate/internal/`` past :func:`is_internal` to authz.

Normalizing a Host value is a pure function, memoized for short values (a bounded LRU): a
gateway serves a handful of hosts. Refusals raise every time.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Final, Literal

from lychgate.domain import App
from lychgate.errors import ClientError
from lychgate.gateway.paths import RequestTarget, is_reserved
from lychgate.gateway.snapshot import ConfigSnapshot
from lychgate.gateway.types import RequestHead

EndpointName = Literal["start", "callback", "logout", "healthz"]

INTERNAL_PREFIX: Final = "/.lychgate/internal"
_RESERVED_DIR: Final = "/.lychgate/"
_INTERNAL_SEGMENT: Final = "internal"  # INTERNAL_PREFIX is _RESERVED_DIR and this
ENDPOINTS: Final[dict[str, EndpointName]] = {
    "/.lychgate/start": "start",
    "/.lychgate/callback": "callback",
    "/.lychgate/logout": "logout",
    "/.lychgate/healthz": "healthz",
}
DEFAULT_PORTS: Final = {"http": 80, "https": 443}

# Lower-case DNS-ish labels. "_" is let through (it is harmless and some internal names use it);
# such a host simply matches no app.
_NAME: Final = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
_MAX_NAME: Final = 253  # RFC 1035 section 2.3.4
_MEMO_CHARS: Final = 300  # a name, a colon and a port, or a bracketed IPv6 literal and port
_MEMO_ENTRIES: Final = 256


@dataclass(frozen=True, slots=True)
class RequestHost:
    """A normalized host: ``name`` without port or trailing dot, and the port if one was given."""

    name: str
    port: int | None = None
    #: ``host[:port]`` as it would appear in a URL (IPv6 in brackets). Made once: parsed hosts
    #: are memoized, and every forwarded request reads it twice.
    authority: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        host = f"[{self.name}]" if ":" in self.name else self.name
        authority = host if self.port is None else f"{host}:{self.port}"
        object.__setattr__(self, "authority", authority)

    def effective_port(self, scheme: str) -> int | None:
        return self.port if self.port is not None else DEFAULT_PORTS.get(scheme)


@dataclass(frozen=True, slots=True)
class AppRoute:
    """To an app: ``app`` in subdomains mode, None in single-host mode (the token names it)."""

    app: App | None


@dataclass(frozen=True, slots=True)
class AuthzRoute:
    """To the authz control plane (login, portal, admin, JWKS ...)."""


@dataclass(frozen=True, slots=True)
class EndpointRoute:
    """To one of the gateway's own endpoints."""

    name: EndpointName


@dataclass(frozen=True, slots=True)
class NoRoute:
    """No such host here: 404, never a default app."""


Route = AppRoute | AuthzRoute | EndpointRoute | NoRoute


def bad_host(message: str, *, status: int = 400) -> ClientError:
    return ClientError(message, field="host", status=status)


def parse_host(value: str) -> RequestHost:
    """Normalize a ``Host`` value (``uri-host [ ":" port ]``, RFC 9110 section 7.2).

    Raises :class:`~lychgate.errors.ClientError` (400, field ``host``).
    """
    if len(value) <= _MEMO_CHARS:
        return _memoized(value)
    return _parse_host(value)


def _parse_host(value: str) -> RequestHost:
    # Whitespace around a field value is not part of it (RFC 9110 section 5.5); the parser
    # drops what comes before, not what comes after.
    value = value.strip(" \t")
    if value.startswith("["):
        literal, sep, rest = value[1:].partition("]")
        if not sep or "%" in literal:  # no zone ids in a URL host
            raise bad_host("bad IPv6 literal in Host")
        try:
            name = str(ipaddress.IPv6Address(literal))
        except ValueError:
            raise bad_host("bad IPv6 literal in Host") from None
        if rest and not rest.startswith(":"):
            raise bad_host("bad port in Host")
        return RequestHost(name, _port(rest[1:]) if rest else None)
    name, sep, port = value.partition(":")
    name = name.lower()
    if name.endswith("."):
        name = name[:-1]  # one trailing dot: "example.com." is "example.com"
    if not name or len(name) > _MAX_NAME or not _NAME.fullmatch(name):
        raise bad_host("Host is not a valid host name")
    return RequestHost(name, _port(port) if sep else None)


# An exception is never cached by lru_cache: a refused Host raises on every request.
_memoized = functools.lru_cache(maxsize=_MEMO_ENTRIES)(_parse_host)


def _port(text: str) -> int | None:
    if text == "":
        return None  # RFC 3986 section 3.2.3: an empty port is the default port
    if len(text) > 5 or not text.isascii() or not text.isdigit() or not 0 < int(text) < 65536:
        raise bad_host("bad port in Host")
    return int(text)


def request_host(head: RequestHead, target: RequestTarget) -> RequestHost:
    """The request's normalized host, checked against an absolute-form target and SNI.

    Raises :class:`~lychgate.errors.ClientError`: 400 for a missing, duplicate, malformed or
    disagreeing Host, 421 when the TLS server name names another host.
    """
    values = head.header_all("host")
    if len(values) != 1:
        raise bad_host("request needs exactly one Host header")
    host = parse_host(values[0])
    if target.authority is not None:
        named = parse_host(target.authority)
        scheme = head.scheme
        if (named.name, named.effective_port(scheme)) != (host.name, host.effective_port(scheme)):
            raise bad_host("absolute-form target names another host than Host")
    if head.sni is not None:
        sni = head.sni.lower()
        if sni.removesuffix(".") != host.name:
            raise bad_host("TLS server name does not match Host", status=421)
    return host


def at_public_port(host: RequestHost, public_port: int | None) -> RequestHost:
    """``host`` with the deployment's public port (None: the scheme's default), whatever port
    the client wrote (see the module docstring)."""
    if host.port == public_port:
        return host  # the usual case: browsers write the port of the URL they were given
    return _with_port(host.name, public_port)


@functools.lru_cache(maxsize=_MEMO_ENTRIES)
def _with_port(name: str, port: int | None) -> RequestHost:
    return RequestHost(name, port)


def is_internal(path: str) -> bool:
    """True for authz's gateway-only API under ``/.lychgate/internal``, in any letter case,
    and with path parameters on that segment (``/.lychgate/internal;x/feed``) or a segment of
    parameters alone before it (``/.lychgate/;x/internal/feed``): normalization keeps
    parameters past the first segment, and an upstream that strips them (Tomcat), then merges
    the empty segment left, would read either path as the internal API."""
    if path[:11].lower() != _RESERVED_DIR:
        return False
    for segment in path[11:].split("/"):
        name = segment.partition(";")[0]
        if name:
            return name.lower() == _INTERNAL_SEGMENT
    return False


def route(snapshot: ConfigSnapshot, host: RequestHost, path: str) -> Route:
    """Where a request for ``host`` and normalized ``path`` goes (see the module docstring)."""
    # Every reserved path starts with "/." (in any letter case): most paths skip those checks.
    dotted = path[1:2] == "."
    endpoint = ENDPOINTS.get(path) if dotted else None
    if endpoint == "healthz":
        return _HEALTHZ
    if dotted and is_internal(path):
        return _NO_ROUTE
    if snapshot.routing == "single-host":
        if host.name != snapshot.public_host:
            return _NO_ROUTE
        app: App | None = None
    else:
        if host.name == snapshot.public_host:
            return _AUTHZ
        app = snapshot.apps_by_host.get(host.name)
        if app is None:
            return _NO_ROUTE
    if endpoint is not None:
        return EndpointRoute(endpoint)
    if dotted and is_reserved(path):
        return _AUTHZ
    return _TOKEN_NAMES_APP if app is None else AppRoute(app)


# The routes that carry nothing of the request: made once (they are immutable values).
_HEALTHZ: Final = EndpointRoute("healthz")
_NO_ROUTE: Final = NoRoute()
_AUTHZ: Final = AuthzRoute()
_TOKEN_NAMES_APP: Final = AppRoute(None)
