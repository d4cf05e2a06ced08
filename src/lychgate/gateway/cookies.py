"""Reading ``Cookie`` headers, and the gateway's own ``Set-Cookie`` lines.

Reading follows a server's view of RFC 6265 section 5.4 / section 4.2: pairs separated by
``;``, split at the first ``=``, with surrounding blanks dropped. It never raises: garbage
gives odd pairs, which simply match no name we look for. Several ``Cookie`` header lines
(allowed since RFC 9113 section 8.2.3 for HTTP/2, and sent by some HTTP/1.1 clients) are read as
one list.

Names
-----
The app token travels in ``__Host-lychgate`` when the public URL is https. The ``__Host-``
prefix (RFC 6265bis section 4.1.3.2) makes the browser refuse the cookie unless it is Secure,
has ``Path=/`` and no ``Domain``: a sibling subdomain cannot toss one onto our host. On a plain
http loopback URL (``http://localhost:8080``) a prefixed cookie cannot be set, so it is
``lychgate``.

Every cookie whose name, ignoring case and a ``__Host-``/``__Secure-`` prefix, starts with
``lychgate`` belongs to Lychgate (authz names its cookies that way too). None of them is ever
forwarded to an app (SECURITY.md item 5), and no app may set one: in single-host mode every
app shares the gateway's origin, so an app's ``Set-Cookie: lychgate=...`` would toss its own
operator's token onto the user (login fixation into another app) or sign the user out. Such
``Set-Cookie`` lines are dropped from app responses (:func:`drop_lychgate_set_cookies`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Final
from urllib.parse import unquote

from lychgate.errors import UsageError

log = logging.getLogger(__name__)

SECURE_NAME: Final = "__Host-lychgate"
PLAIN_NAME: Final = "lychgate"
_NAMESPACE: Final = "lychgate"
_PREFIXES: Final = ("__host-", "__secure-")
_BLANKS: Final = " \t"
# RFC 6265 section 4.1.1: cookie-octet.
_COOKIE_OCTETS: Final = frozenset(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\')
_EPOCH: Final = "Thu, 01 Jan 1970 00:00:00 GMT"


def app_cookie_name(secure: bool) -> str:
    """The app token cookie's name: ``__Host-lychgate`` on https, ``lychgate`` on plain http."""
    return SECURE_NAME if secure else PLAIN_NAME


def parse_cookies(header_values: Iterable[str]) -> list[tuple[str, str]]:
    """All ``(name, value)`` pairs from one or more ``Cookie`` header values, in order.

    A pair without ``=`` gets the empty name (browsers send a nameless cookie that way).
    """
    pairs: list[tuple[str, str]] = []
    for header in header_values:
        for item in header.split(";"):
            name, sep, value = item.partition("=")
            if not sep:
                name, value = "", name
            name, value = name.strip(_BLANKS), value.strip(_BLANKS)
            if name or value:
                pairs.append((name, value))
    return pairs


def cookie_values(header_values: Iterable[str], name: str) -> list[str]:
    """Every value of the cookie named exactly ``name`` (duplicates kept, in order)."""
    return [v for n, v in parse_cookies(header_values) if n == name]


def is_lychgate_cookie(name: str) -> bool:
    """True if ``name`` is in Lychgate's cookie namespace (see the module docstring), as any
    server might read it: every Unicode space trimmed (Django's and Starlette's parsers call
    ``str.strip()`` on a name decoded as latin-1, so a leading NBSP, ``\xa0``, or NEL,
    ``\x85``, which llhttp lets through, is gone there) and escapes decoded (PHP decodes
    cookie names)."""
    lowered = unquote(name, "latin-1").strip().lower()
    for prefix in _PREFIXES:
        if lowered.startswith(prefix):
            lowered = lowered[len(prefix) :]
            break
    return lowered.startswith(_NAMESPACE)


def drop_lychgate_set_cookies(fields: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """An app's response fields without the ``Set-Cookie`` lines that set a Lychgate cookie.

    A line is judged by what the browser would send back (:func:`_sets_ours`), read as every
    ``Cookie`` header is read here (:func:`parse_cookies`).
    """
    for name, _ in fields:
        if name == b"set-cookie":
            break
    else:
        return fields  # the usual case: nothing to look at
    kept = [(n, v) for n, v in fields if n != b"set-cookie" or not _sets_ours(v)]
    if len(kept) != len(fields):
        log.warning("dropped an app's Set-Cookie for a cookie in Lychgate's namespace")
    return kept


def _sets_ours(value: bytes) -> bool:
    """Whether a ``Set-Cookie`` value makes the browser send one of our cookies back.

    The browser takes the pair up to the first ``;`` and splits it at the first ``=``, blanks
    trimmed (RFC 6265bis section 5.6). A cookie with an empty name (``=lychgate=tok``) is
    stored, and sent back as its value alone (section 5.8.3): ``lychgate=tok``, which every
    server, this one and authz's Starlette included, reads as our cookie. A pair without
    ``=`` is a nameless cookie sent back without one, which names nothing.
    """
    pair = value.split(b";", 1)[0].decode("latin-1")
    name, sep, rest = pair.partition("=")
    sent = rest if sep and not name.strip(_BLANKS) else pair
    return any(is_lychgate_cookie(n) for n, _ in parse_cookies((sent,)))


def strip_lychgate_cookies(header_values: Iterable[str]) -> str | None:
    """One ``Cookie`` value with every Lychgate cookie removed; None if nothing is left.

    The other cookies are kept byte for byte (only blanks around ``;`` are normalized).
    """
    kept: list[str] = []
    for header in header_values:
        for item in header.split(";"):
            item = item.strip(_BLANKS)
            if not item:
                continue
            name, sep, _ = item.partition("=")
            if sep and is_lychgate_cookie(name):
                continue
            kept.append(item)
    return "; ".join(kept) if kept else None


def set_app_cookie(token: str, *, secure: bool, max_age: int) -> str:
    """The ``Set-Cookie`` value that stores the app token for ``max_age`` seconds.

    HttpOnly (no script reads it), SameSite=Lax (sent on top-level navigations, not on
    cross-site subrequests), Path=/ and no Domain (host-only); Secure with the ``__Host-``
    prefix on https.
    """
    if not token or not set(token) <= _COOKIE_OCTETS:
        raise UsageError("a cookie value must be non-empty cookie-octets", field="token")
    return cookie_line(app_cookie_name(secure), token, secure=secure, max_age=max(0, max_age))


def clear_app_cookie(*, secure: bool) -> str:
    """The ``Set-Cookie`` value that deletes the app token cookie (RFC 6265 section 3.1)."""
    return clear_cookie(app_cookie_name(secure), secure=secure)


def session_cookie_name(secure: bool) -> str:
    """authz's auth-session cookie on the portal host (its value is the session id)."""
    return "__Host-lychgate_session" if secure else "lychgate_session"


def login_cookie(secure: bool) -> tuple[str, str]:
    """authz's browser-binding cookie of a sign-in: its name and path.

    On https it is ``__Host-`` prefixed, so no sibling host can set it for the portal (a page
    of another app under the same parent domain planted five values, and every sign-in in
    that browser failed until they expired); the prefix asks for ``Path=/``, and the gateway
    strips it from what apps see like any of our cookies. Plain http is loopback only, where
    browsers refuse a ``Domain`` cookie anyway.
    """
    return ("__Host-lychgate_login", "/") if secure else ("lychgate_login", "/.lychgate/")


def clear_cookie(name: str, *, secure: bool) -> str:
    """The ``Set-Cookie`` value that deletes cookie ``name`` (Path=/)."""
    return cookie_line(name, "", secure=secure, max_age=0) + f"; Expires={_EPOCH}"


def cookie_line(name: str, value: str, *, secure: bool, max_age: int) -> str:
    """A ``Set-Cookie`` value for one of ours: host-only, ``Path=/``, HttpOnly, SameSite=Lax,
    and Secure on https. ``value`` must already be cookie-octets."""
    attributes = [f"{name}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly", "SameSite=Lax"]
    if secure:
        attributes.insert(3, "Secure")
    return "; ".join(attributes)
