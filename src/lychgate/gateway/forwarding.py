"""The request headers an upstream receives (SECURITY.md item 3).

Theory of operation
-------------------
An upstream behind Lychgate believes what the gateway tells it about the user and the client,
so nothing the *client* says on those subjects may get through:

* **Identity headers are always stripped**, from any peer: every ``X-Lychgate-*``,
  ``Remote-*``, the identity headers of other auth proxies (``X-Forwarded-User``...), and the
  other names in :data:`IDENTITY_HEADERS` and :data:`IDENTITY_PREFIXES`. Names are compared
  after lower-casing and mapping ``_`` to ``-``, because several servers (CGI/WSGI environ,
  PHP, some frameworks) fold both into ``HTTP_X_LYCHGATE_USER``: ``x_lychgate_user`` must not
  survive as a spoofed identity.
  Then the gateway adds its own: ``X-Lychgate-User``, ``X-Lychgate-Email`` and the signed
  ``X-Lychgate-Assertion`` (the only one an app should trust; it verifies it against the JWKS).
* **Forwarding headers** (``Forwarded``, ``X-Forwarded-*``) are stripped unless the TCP peer is
  one of ``trusted_proxies`` (none by default: STYLE.md item 6). From a trusted proxy they are
  kept and appended to, but only after they pass :mod:`.forwarded_fields`' checks (addresses
  that are addresses, a host and port that are the routed ones...); one that fails is a 400,
  never skipped.
  ``X-Forwarded-Host`` is always the Host the gateway routed on.
* **The gateway's cookies** (the whole ``lychgate`` namespace, see
  :mod:`lychgate.gateway.cookies`) are removed from ``Cookie``; the header is dropped if
  nothing is left. authz, which owns those cookies, gets them unchanged.

* **The client's hop-by-hop fields go first** (RFC 9110 section 7.6.1): when the client sends
  ``Connection``, it and every field it names are removed *before* the gateway adds its own,
  so ``Connection: x-forwarded-for`` (or ``host``, or ``x-lychgate-assertion``) removes only
  what the client sent, never what the gateway says (the Traefik CVE-2024-45410 class). The
  engine then drops the fixed hop-by-hop names and re-makes the framing for the upstream hop.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from lychgate.config.settings import IpNetwork
from lychgate.gateway.cookies import strip_lychgate_cookies
from lychgate.gateway.forwarded_fields import (
    canonical_name,
    check_forwarded,
    check_others,
    forwarded_element,
    forwarded_for,
    forwarded_proto,
)
from lychgate.gateway.http.headers import (
    HOP_BY_HOP,
    MEMO_NAME_MAX,
    connection_tokens,
    strip_hop_by_hop,
)
from lychgate.gateway.routing import RequestHost
from lychgate.gateway.snapshot import UserProfile
from lychgate.gateway.trusted_proxies import is_trusted
from lychgate.gateway.types import Headers, RequestHead
from lychgate.ids import AppSlug, SessionId, UserId

#: Client headers that claim an identity or rewrite the target; stripped for every upstream.
# Besides our own, the identity headers other auth proxies set, which an app moved from behind
# one of them may still believe: oauth2-proxy's X-Forwarded-User... (kept from a trusted proxy
# as forwarding headers, were they not listed here) and X-Auth-Request-*, Authelia's and
# authentik's Remote-*, authentik's, Pomerium's, Cloudflare Access's, Google IAP's and AWS
# ALB's own, and the X-WEBAUTH-* that Grafana's and Gitea's auth-proxy modes read.
IDENTITY_HEADERS: Final = frozenset(
    {
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "x-forwarded-preferred-username",
        "x-forwarded-access-token",
        "x-forwarded",  # no suffix: no proxy's field, but read as one by the unwary
        # The client's address or scheme as other proxies and CDNs name it, which frameworks
        # read (Rails: Client-IP; Tornado: X-Scheme; Rack: Front-End-Https): only ours counts.
        "x-real-ip",
        "x-client-ip",
        "true-client-ip",
        "client-ip",
        "x-cluster-client-ip",
        "cf-connecting-ip",
        "fastly-client-ip",
        "x-scheme",
        "front-end-https",
        "x-original-url",  # IIS/Symfony read the path from these: a path-rule bypass
        "x-rewrite-url",
        "x-original-uri",
    }
)
IDENTITY_PREFIXES: Final = (
    "x-lychgate-",
    "x-auth-request-",
    "remote-",
    "x-remote-",
    "x-webauth-",
    "x-authentik-",
    "x-pomerium-",
    "cf-access-",
    "x-goog-authenticated-user-",
    "x-goog-iap-",
    "x-amzn-oidc-",
)
FORWARDING_PREFIX: Final = "x-forwarded-"

USER_HEADER: Final = "x-lychgate-user"
EMAIL_HEADER: Final = "x-lychgate-email"
ASSERTION_HEADER: Final = "x-lychgate-assertion"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a forwarded request is from, as admission established it."""

    session_id: SessionId
    user_id: UserId
    app: AppSlug
    admin: bool
    profile: UserProfile
    expires_at: datetime  # the app token's exp
    kid: str = ""  # the key that signed the app token


# What forward_headers does with a header, by its lower-cased name.
_KEEP, _HOST, _COOKIE, _DROP, _XFF, _PROTO, _FORWARDED, _XF_HOST, _XF_OTHER, _CONN = range(10)
# Connection options that name no field beyond those the engine always drops.
_PLAIN_OPTIONS: Final = HOP_BY_HOP | {"close"}
# A memo of _kind() per name as the engine hands it over (bounded, not configuration).
_KINDS: dict[str, int] = {}
_KINDS_MAX: Final = 1024


# A browser sends the same Cookie header again and again: strip it once (a bounded LRU).
_MEMO_COOKIE_CHARS: Final = 4096


@functools.lru_cache(maxsize=256)
def _stripped(value: str) -> str | None:
    return strip_lychgate_cookies((value,))


def _kind(name: str) -> int:
    if name == "connection":
        return _CONN  # it and what it names are removed first (see the module docstring)
    canonical = canonical_name(name)
    if canonical == "host":
        return _HOST  # replaced by the normalized host we routed on
    if canonical == "cookie":
        return _COOKIE
    if canonical in IDENTITY_HEADERS or canonical.startswith(IDENTITY_PREFIXES):
        return _DROP
    if canonical == "x-forwarded-for":
        return _XFF
    if canonical == "x-forwarded-proto":
        return _PROTO
    if canonical == "forwarded":
        return _FORWARDED
    if canonical == "x-forwarded-host":
        return _XF_HOST
    if canonical.startswith(FORWARDING_PREFIX):
        return _XF_OTHER  # X-Forwarded-Prefix, -Port ...: kept from a trusted proxy only
    return _KEEP


def forward_headers(
    head: RequestHead,
    host: RequestHost,
    *,
    trusted_proxies: Sequence[IpNetwork] = (),
    strip_cookies: bool = True,
    identity: Headers = (),
) -> Headers:
    """The end-to-end headers to send upstream for ``head``, routed on ``host``.

    ``identity`` (from :func:`identity_headers`) is appended last. Raises
    :class:`~lychgate.errors.ClientError` (400) for unparsable forwarding headers from a trusted
    proxy.
    """
    return _forward(head, head.headers, host, trusted_proxies, strip_cookies, identity)


def _forward(
    head: RequestHead,
    fields: Headers,
    host: RequestHost,
    trusted_proxies: Sequence[IpNetwork],
    strip_cookies: bool,
    identity: Headers,
) -> Headers:
    trusted = is_trusted(head.client_ip, trusted_proxies)
    authority = host.authority
    kept: list[tuple[str, str]] = [("host", authority)]
    cookies: list[str] = []
    xff: list[str] = []
    proto: list[str] = []
    forwarded: list[str] = []
    others: list[tuple[str, str]] = []
    kinds = _KINDS
    for pair in fields:
        name = pair[0]
        kind = kinds.get(name)
        if kind is None:
            kind = _kind(name)
            if len(kinds) < _KINDS_MAX and len(name) <= MEMO_NAME_MAX:
                kinds[name] = kind
        if kind == _KEEP:
            kept.append(pair)
        elif kind == _CONN:
            # "keep-alive", "close", "upgrade": the engine's own business. A browser sends one
            # of them alone on every request, so that is looked at first.
            if pair[1].strip().lower() in _PLAIN_OPTIONS or connection_tokens(fields) <= (
                _PLAIN_OPTIONS
            ):
                continue
            # Start again without the client's hop-by-hop fields (never loops: none is left).
            own = strip_hop_by_hop(fields)
            return _forward(head, own, host, trusted_proxies, strip_cookies, identity)
        elif kind == _COOKIE:
            cookies.append(pair[1])
        elif kind <= _DROP or not trusted:
            continue  # Host, identity headers; forwarding headers from an untrusted peer
        elif kind == _XFF:
            xff.append(pair[1])
        elif kind == _PROTO:
            proto.append(pair[1])
        elif kind == _FORWARDED:
            forwarded.append(pair[1])
        elif kind == _XF_OTHER:
            others.append(pair)
    if cookies:
        if not strip_cookies:
            cookie: str | None = "; ".join(cookies)
        elif len(cookies) == 1 and len(cookies[0]) <= _MEMO_COOKIE_CHARS:
            cookie = _stripped(cookies[0])
        else:
            cookie = strip_lychgate_cookies(cookies)
        if cookie is not None:
            kept.append(("cookie", cookie))
    scheme = forwarded_proto(proto) if proto else head.scheme
    if others:
        kept.extend(check_others(others, host.effective_port(scheme)))
    client_ip = head.client_ip
    kept.append(
        ("x-forwarded-for", ", ".join([*forwarded_for(xff), client_ip]) if xff else client_ip)
    )
    kept.append(("x-forwarded-proto", scheme))
    kept.append(("x-forwarded-host", authority))
    if forwarded:
        checked = check_forwarded(forwarded, host, scheme)
        elements = [*checked, forwarded_element(client_ip, scheme, host)]
        kept.append(("forwarded", ", ".join(elements)))
    kept.extend(identity)
    return tuple(kept)


def identity_headers(identity: Identity, assertion: str) -> Headers:
    """``X-Lychgate-User``, ``X-Lychgate-Email`` (only if printable ASCII) and the assertion.

    A non-ASCII e-mail address cannot be put in a header without an encoding every app would
    have to guess; it is left to the assertion, which carries it as JSON.
    """
    headers: list[tuple[str, str]] = [(USER_HEADER, identity.user_id)]
    email = identity.profile.email
    if email is not None and email.isascii() and email.isprintable():
        headers.append((EMAIL_HEADER, email))
    headers.append((ASSERTION_HEADER, assertion))
    return tuple(headers)
