"""Strict parsing of the links a device is handed: enrollment links and sign-in (QR) links.

A link is attacker-controlled input: anyone can show a QR code. So the device parses it
strictly (the same rules as :func:`lychgate.tls.hosts.url_scheme_and_host`: no userinfo,
backslashes, percent-escapes or whitespace in the authority; SECURITY.md item 1) and compares
*origins* after parsing, never strings. The rule that matters:

* a sign-in link is approved only if its origin is the origin of the server this device
  enrolled with. A phishing page could otherwise show a QR code pointing at a server of its
  own, and the device would sign requests for it and show it the user's choices.
* an enrollment link may point anywhere (it is how a device learns its server), but plain
  ``http://`` only for loopback hosts, as the server itself requires.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from lychgate.errors import ClientError, ConfigError
from lychgate.ids import LoginRequestId
from lychgate.secret import Secret
from lychgate.tls.hosts import is_loopback_host, normalize_host

_SCHEME_RE: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# Ids and codes are base64url (lychgate.ids.new_id, lychgate.tokens.onetime.new_code).
_LOGIN_PATH_RE: Final = re.compile(r"/\.lychgate/d/login/([A-Za-z0-9_-]{1,128})")
_ENROLL_PATH_RE: Final = re.compile(r"/\.lychgate/enroll/([A-Za-z0-9_-]{1,256})")


@dataclass(frozen=True, slots=True)
class Origin:
    """A parsed web origin (RFC 6454 §4): scheme, normalized host and explicit port."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == _DEFAULT_PORTS[self.scheme]:
            return f"{self.scheme}://{host}"
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def plain_http_allowed(self) -> bool:
        """Plain HTTP only where browsers call it a secure context (loopback, .localhost)."""
        return self.scheme == "https" or is_loopback_host(self.host)


@dataclass(frozen=True, slots=True)
class EnrollmentLink:
    """``<public_url>/.lychgate/enroll/<code>``. The code is the credential: kept in a Secret."""

    origin: Origin
    code: Secret


def split_url(url: str, *, field: str = "url") -> tuple[Origin, str]:
    """Split an absolute http(s) URL into its :class:`Origin` and the rest (path, query, ...).

    Raises :class:`ClientError` naming ``field`` for anything unusual instead of guessing.
    """
    url = url.strip()
    match = _SCHEME_RE.match(url)
    if match is None:
        raise ClientError("not an absolute http:// or https:// URL", field=field)
    scheme = match.group(1).lower()
    if scheme not in _DEFAULT_PORTS:
        raise ClientError(f"scheme must be http or https, not {scheme!r}", field=field)
    rest = url[match.end() :]
    if "\\" in rest or any(ord(c) < 0x21 or ord(c) == 0x7F for c in rest):
        raise ClientError("URL has a backslash, whitespace or control character", field=field)
    cut = re.search(r"[/?#]", rest)
    authority, tail = (rest[: cut.start()], rest[cut.start() :]) if cut else (rest, "")
    if any(c in authority for c in "@%"):
        raise ClientError("URL authority must be host[:port], without userinfo", field=field)
    if authority.startswith("["):
        raw_host, sep, after = authority[1:].partition("]")
        if not sep or (after and not after.startswith(":")):
            raise ClientError("bad IPv6 address in URL", field=field)
        port_text = after[1:]
    else:
        raw_host, _, port_text = authority.partition(":")
    if not raw_host:
        raise ClientError("URL has no host", field=field)
    try:
        host = normalize_host(raw_host, field=field)
    except ConfigError as exc:
        raise ClientError(exc.message, field=field) from None
    return Origin(scheme, host, _port(port_text, scheme, field=field)), tail


def parse_origin(url: str, *, field: str = "url") -> Origin:
    """The origin of a URL that must be an origin only (a server's public URL)."""
    origin, tail = split_url(url, field=field)
    if tail not in ("", "/"):
        raise ClientError("expected an origin only, without path or query", field=field)
    return origin


def parse_login_url(url: str, *, server: str) -> LoginRequestId:
    """The login request id in a sign-in link, if the link is for this device's ``server``.

    ``server`` is the enrolled public URL (from the key file). A link to any other origin is
    refused before any request is made.
    """
    origin, tail = split_url(url)
    enrolled = parse_origin(server, field="server")
    if origin != enrolled:
        raise ClientError(
            f"this sign-in link is for {origin}, but this device is enrolled with {enrolled}; "
            "refusing to approve it (a QR code from someone else's page?)",
            field="url",
        )
    match = _LOGIN_PATH_RE.fullmatch(tail)
    if match is None:
        raise ClientError(
            "not a sign-in link (expected <server>/.lychgate/d/login/<id>)", field="url"
        )
    return LoginRequestId(match.group(1))


def portal_url(server: str) -> str:
    """The portal page on the enrolled server (its public URL): where a browser waits for
    ``lychgate device open``."""
    return server.rstrip("/") + "/.lychgate/"


def parse_enrollment_url(url: str) -> EnrollmentLink:
    """The server origin and one-time code of an enrollment (or admin setup) link."""
    origin, tail = split_url(url)
    if not origin.plain_http_allowed:
        raise ClientError(
            f"refusing plain http to {origin.host}: only localhost may be reached without TLS; "
            "use the https:// link",
            field="url",
        )
    match = _ENROLL_PATH_RE.fullmatch(tail)
    if match is None:
        raise ClientError(
            "not an enrollment link (expected <server>/.lychgate/enroll/<code>)", field="url"
        )
    return EnrollmentLink(origin, Secret(match.group(1)))


def _port(text: str, scheme: str, *, field: str) -> int:
    # An empty port after ":" is the default port (WHATWG URL Standard, "port state").
    if not text:
        return _DEFAULT_PORTS[scheme]
    if not (text.isascii() and text.isdigit() and len(text) <= 5 and 0 < int(text) < 65536):
        raise ClientError("bad port in URL", field=field)
    return int(text)
