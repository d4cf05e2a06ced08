"""Where a redirect after sign-in may go: :func:`safe_redirect` (SECURITY.md item 1).

Open redirects come from validators and browsers reading one string differently: ``//evil``
is a scheme-relative URL, ``/\\evil`` is too (WHATWG turns ``\\`` into ``/``), a tab or newline
is silently removed by the browser (``/<TAB>/evil`` becomes ``//evil``), ``https:evil`` is an
absolute URL to some parsers and a path to others, and ``good@evil`` puts the host after the
``@``. We do not try to follow every parser. We accept exactly two shapes and refuse the rest:

1. **A same-origin path**: starts with a single ``/`` and survives the gateway's own path
   normalizer (:func:`lychgate.gateway.paths.parse_request_target`), which refuses backslashes,
   escaped control characters and dot tricks and collapses a leading run of ``/``. The result is the
   *normalized* path, so what we redirect to is what we checked.
2. **An absolute http(s) URL** whose origin (scheme, host, port; compared after parsing, with
   default ports elided and the host lower-cased) is *exactly* one of ``origins``: the hosts the
   gateway serves. This refuses other hosts, ``good.example.evil.example``, a plain-http
   downgrade and an unexpected port.

Before either, the whole string must be printable ASCII without ``\\`` or ``#``: that refuses
CR/LF, tabs and spaces, raw IDN look-alikes (a served IDN host is written as its ``xn--`` A-label)
and fragments. ``javascript:`` and ``data:`` in any case match neither shape.

Callers treat None as "fall back to ``/``" and must not create a session, code or cookie for a
refused target.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Final
from urllib.parse import urlsplit

from lychgate.errors import ClientError
from lychgate.gateway.paths import is_reserved, parse_request_target
from lychgate.gateway.routing import DEFAULT_PORTS, parse_host

MAX_REDIRECT_CHARS: Final = 2048
_ABSOLUTE: Final = re.compile(r"(https?)://([^/?]*)(.*)", re.IGNORECASE | re.DOTALL)


def safe_redirect(value: str, *, origins: Collection[str] = ()) -> str | None:
    """The redirect target to use for ``value``, normalized; None if it is refused.

    ``origins`` are canonical origins (see :func:`origin_of`) that an absolute URL may name;
    with none, only same-origin paths pass.
    """
    if not value or len(value) > MAX_REDIRECT_CHARS:
        return None
    if not value.isascii() or not value.isprintable() or any(c in value for c in " \\#"):
        return None
    if value.startswith("/"):
        if value.startswith("//"):
            return None
        return _normalized(value)
    match = _ABSOLUTE.fullmatch(value)
    if match is None:
        return None
    scheme, authority, rest = match.groups()
    origin = origin_of(f"{scheme}://{authority}")
    if origin is None or origin not in origins:
        return None
    if not rest.startswith("/"):
        rest = "/" + rest  # "https://good" or "https://good?x" (RFC 3986 section 6.2.3)
    path = _normalized(rest)
    return None if path is None else origin + path


def app_path(path: str) -> str:
    """Where a sign-in may return to on an app: ``path`` if it is a safe same-origin path
    outside ``/.lychgate`` (the gateway's and authz's own, which a fresh sign-in must never
    land on: ``/.lychgate/logout`` would undo it), else ``/``."""
    checked = safe_redirect(path)
    if checked is None or is_reserved(urlsplit(checked).path):
        return "/"
    return checked


def origin_of(url: str) -> str | None:
    """The canonical origin of an ``http(s)://host[:port]`` URL, or None if it is not one.

    Lower-case scheme and host, one trailing dot dropped, the default port elided, IPv6 in
    brackets. Refuses userinfo, percent-escapes and anything after the authority.
    """
    match = _ABSOLUTE.fullmatch(url)
    if match is None or match.group(3):
        return None
    scheme, authority = match.group(1).lower(), match.group(2)
    if not authority or any(c in authority for c in "@%\\"):
        return None
    try:
        host = parse_host(authority)
    except ClientError:
        return None
    port = host.port if host.port != DEFAULT_PORTS[scheme] else None
    name = f"[{host.name}]" if ":" in host.name else host.name
    return f"{scheme}://{name}" + ("" if port is None else f":{port}")


def _normalized(target: str) -> str | None:
    try:
        parsed = parse_request_target(target)
    except ClientError:
        return None
    return parsed.origin_form
