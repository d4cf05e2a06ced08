"""Checking an app's upstream: where the gateway connects to reach it.

An upstream is an origin (``http://HOST[:PORT]`` or ``https://...``) or a unix socket
(``unix:/PATH``). :func:`check_upstream` refuses anything else, naming what is wrong, and
normalizes what it accepts into the one form the gateway's snapshot check expects.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final
from urllib.parse import SplitResult, urlsplit

from lychgate.errors import ClientError
from lychgate.unix_sockets import socket_path_problem

_UPSTREAM_FORMS: Final = "http://HOST[:PORT], https://HOST[:PORT] or unix:/PATH"
# A host name as the gateway will resolve it: letters (any script), digits, '.', '-', '_'.
_UPSTREAM_HOST = re.compile(r"[\w.-]+")


def check_upstream(url: str) -> str:
    """``http://host[:port]``, ``https://...`` or ``unix:/absolute/path.sock``, normalized: the
    scheme in lower case and no trailing ``/``, the form the gateway's snapshot check expects
    (an ``HTTP://`` upstream was stored, then left out of every snapshot)."""
    scheme, colon, rest = url.partition(":")
    if colon and scheme.lower() == "unix":
        return "unix:" + _check_unix_path(rest)
    return _check_http_upstream(url)


def _check_unix_path(path: str) -> str:
    """An absolute socket path. ``unix:///run/app.sock`` (Docker's spelling, an empty host)
    is ``/run/app.sock``; ``unix://run/app.sock`` names a host, which a socket has not, and
    was taken for the path ``//run/app.sock``."""
    if path.startswith("//"):
        host, _, rest = path[2:].partition("/")
        if host:
            raise ClientError(
                f"a unix upstream has no host part ({host!r} here): write one slash, "
                f"unix:/{host}/{rest}",
                field="upstream",
            )
        path = "/" + rest
    if not path.startswith("/") or "\x00" in path or ".." in path.split("/"):
        raise ClientError(
            "unix upstreams need an absolute path without '..' segments: unix:/run/app.sock",
            field="upstream",
        )
    problem = socket_path_problem(path)  # the gateway would never connect to it
    if problem is not None:
        raise ClientError(f"{problem}: use a shorter one", field="upstream")
    return path


def _check_http_upstream(url: str) -> str:
    """An origin only: the gateway connects to its host and port and sends each request's own
    path, so a path, query or fragment here would be dropped without a word."""
    if any(c.isspace() or not c.isprintable() for c in url):
        raise ClientError(
            f"{url!r} has a space or a control character {_where_blank(url)}: remove it",
            field="upstream",
        )
    try:
        parts = urlsplit(url)
    except ValueError:  # a bracketed host that is no IPv6 address
        raise ClientError(
            f"{url!r} is not a URL: use {_UPSTREAM_FORMS}", field="upstream"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ClientError(f"must be {_UPSTREAM_FORMS}", field="upstream")
    if "@" in parts.netloc:
        raise ClientError(
            "must not hold credentials (USER@): the gateway sends none", field="upstream"
        )
    if "?" in url or "#" in url:
        raise ClientError(
            "must not hold a query or a fragment ('?' or '#'): give the origin only",
            field="upstream",
        )
    if parts.path not in ("", "/"):
        raise ClientError(
            f"has the path {parts.path!r}, but path prefixes are not supported: the app gets "
            f"each request's own path. Give {parts.scheme}://{parts.netloc} and serve the "
            "app at /",
            field="upstream",
        )
    _check_upstream_host(parts)
    _check_upstream_port(parts)
    return f"{parts.scheme}://{parts.netloc}"


def _where_blank(url: str) -> str:
    """Where the stray character is: one at the end, pasted with the URL, is the usual."""
    if url.rstrip() != url:
        return "at its end"
    return "at its start" if url.lstrip() != url else "in it"


def _check_upstream_host(parts: SplitResult) -> None:
    hostname = parts.hostname
    if not hostname:
        raise ClientError(f"has no host: use {_UPSTREAM_FORMS}", field="upstream")
    if parts.netloc.startswith("["):
        try:
            ipaddress.IPv6Address(hostname)
        except ValueError:
            raise ClientError(
                f"[{hostname}] is not an IPv6 address: give one, such as [::1]", field="upstream"
            ) from None
    elif not _UPSTREAM_HOST.fullmatch(hostname):
        raise ClientError(
            f"{hostname!r} is not a host name or an IP address (IPv6 goes in brackets, [::1])",
            field="upstream",
        )


def _check_upstream_port(parts: SplitResult) -> None:
    """No port (80 or 443), or one from 1 to 65535: port 0 and an empty one ("HOST:") were
    stored, and the gateway then connected to no app, or to port 80."""
    _, colon, given = parts.netloc.rpartition("]")[2].rpartition(":")
    if not colon:
        return
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None or port == 0:
        raise ClientError(
            f"has the port {given!r}: give the app's port, from 1 to 65535", field="upstream"
        )
