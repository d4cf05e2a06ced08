"""Which host names a deployment serves, and whether its public URL may be plain HTTP.

Theory of operation
-------------------
Every decision here is made on a *normalized* host, the form a browser would put on the wire
after parsing the URL (WHATWG URL Standard, "host parsing"):

* DNS names are mapped with UTS #46 (non-transitional, STD3 rules) and IDNA 2008, giving
  lower-case A-labels (``bücher.example`` -> ``xn--bcher-kva.example``). Full-width letters
  fold to ASCII ones and the ideographic full stop (U+3002) becomes ``.``.
  That is also the form RFC 5280 §4.2.1.6 requires in a certificate's dNSName.
* One trailing dot is dropped (``localhost.`` is ``localhost``).
* IP addresses are parsed with :mod:`ipaddress` and printed canonically. A name whose last
  label looks like a number (``127.1``, ``0x7f.1``) is refused: a browser would read it as an
  IPv4 address in a legacy notation (WHATWG "ends in a number checker"), and we will not guess.

We parse the public URL with our own strict splitter instead of :func:`urllib.parse.urlsplit`,
because the two disagree on inputs such as ``http://evil.example\\@localhost/`` (WHATWG reads
the backslash as a path separator, urllib reads ``localhost`` as the host). Anything unusual
-- userinfo, backslashes, percent-escapes or whitespace in the authority, a missing ``//`` --
is a :class:`~lychgate.errors.ConfigError`, never a best-effort guess.

Plain HTTP is allowed only where browsers treat the origin as a secure context anyway
(W3C Secure Contexts §3.1, "potentially trustworthy origin"): ``localhost`` and names under
``.localhost`` (RFC 6761 §6.3; browsers resolve them to loopback themselves), ``127.0.0.0/8``
and ``::1``. ``localhost.evil.example`` is an ordinary DNS name and is not allowed.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final, Literal

import idna

from lychgate.errors import ConfigError

Routing = Literal["single-host", "subdomains"]

_SCHEME_RE: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# Characters that never belong in an authority we accept. ``%`` is here because WHATWG
# percent-decodes hosts (``%6c%6fcalhost`` is ``localhost`` to a browser).
_BAD_AUTHORITY_CHARS: Final = frozenset("\\@%") | frozenset(chr(c) for c in range(0x21))
_LDH_LABEL_RE: Final = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_NUMERIC_LABEL_RE: Final = re.compile(r"[0-9]+|0x[0-9a-f]*")
_MAX_DNS_NAME: Final = 253  # RFC 1035 §2.3.4, without the trailing dot
_LOOPBACK_V4: Final = ipaddress.IPv4Network("127.0.0.0/8")
_LOOPBACK_V6: Final = ipaddress.IPv6Address("::1")


def normalize_host(host: str, *, field: str = "host") -> str:
    """Return ``host`` in canonical form: a lower-case A-label DNS name or an IP address.

    IPv6 addresses may be given with or without brackets and are returned without them.
    Raises :class:`ConfigError` (naming ``field``) for anything that is not a valid host.
    """
    if host.startswith("[") and host.endswith("]"):
        return _normalize_ipv6(host[1:-1], field=field)
    if ":" in host:
        return _normalize_ipv6(host, field=field)
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    try:
        ascii_host = idna.encode(host, uts46=True, std3_rules=True, transitional=False).decode()
    except (idna.IDNAError, UnicodeError) as exc:
        raise ConfigError(f"not a valid host name: {host!r} ({exc})", field=field) from exc
    if ascii_host.endswith("."):
        ascii_host = ascii_host[:-1]
    try:
        # Full-width digits map to ASCII ones, so an address can appear only now.
        return str(ipaddress.IPv4Address(ascii_host))
    except ValueError:
        pass
    labels = ascii_host.split(".")
    if not ascii_host or len(ascii_host) > _MAX_DNS_NAME:
        raise ConfigError(f"not a valid host name: {host!r}", field=field)
    if not all(_LDH_LABEL_RE.fullmatch(label) for label in labels):
        raise ConfigError(f"not a valid host name: {host!r}", field=field)
    if _NUMERIC_LABEL_RE.fullmatch(labels[-1]):
        raise ConfigError(
            f"{host!r} looks like an IPv4 address in a legacy notation; write it as a.b.c.d",
            field=field,
        )
    return ascii_host


def normalize_san(name: str, *, field: str = "hostnames") -> str:
    """Normalize a certificate name: a host (see :func:`normalize_host`) or ``*.<dns name>``.

    A wildcard must be the whole left-most label and cover a name of at least two labels
    (RFC 6125 §6.4.3; ``*.com`` would be absurd for our CA to issue).
    """
    if name.startswith("*."):
        base = normalize_host(name[2:], field=field)
        if is_ip(base) or "." not in base:
            raise ConfigError(f"wildcard must sit on a multi-label DNS name: {name!r}", field=field)
        return "*." + base
    if "*" in name:
        raise ConfigError(f"a wildcard must be the whole first label: {name!r}", field=field)
    return normalize_host(name, field=field)


def is_ip(host: str) -> bool:
    """True if ``host`` (already normalized) is an IP address rather than a DNS name."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def url_scheme_and_host(url: str, *, field: str = "public_url") -> tuple[str, str]:
    """Split an ``http``/``https`` URL into its lower-case scheme and normalized host.

    Strict on purpose (see the module docstring); raises :class:`ConfigError` naming ``field``.
    """
    match = _SCHEME_RE.match(url)
    if match is None:
        raise ConfigError(f"not an absolute URL with '//': {url!r}", field=field)
    scheme = match.group(1).lower()
    if scheme not in ("http", "https"):
        raise ConfigError(f"scheme must be http or https, not {scheme!r}", field=field)
    rest = url[match.end() :]
    if "\\" in rest or any(ord(c) < 0x21 or ord(c) == 0x7F for c in rest):
        raise ConfigError("URL contains a backslash, whitespace or control character", field=field)
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if any(c in _BAD_AUTHORITY_CHARS for c in authority):
        raise ConfigError("URL authority must be host[:port], without userinfo", field=field)
    if authority.startswith("["):
        host, sep, port = authority[1:].partition("]")
        if not sep or (port and not port.startswith(":")):
            raise ConfigError(f"bad IPv6 literal in {url!r}", field=field)
        _check_port(port[1:], url=url, field=field)
        return scheme, _normalize_ipv6(host, field=field)
    host, _, port = authority.partition(":")
    _check_port(port, url=url, field=field)
    if not host:
        raise ConfigError(f"URL has no host: {url!r}", field=field)
    return scheme, normalize_host(host, field=field)


def is_loopback_host(host: str) -> bool:
    """True for a normalized host that browsers keep on this machine (see module docstring)."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return address in _LOOPBACK_V4
    return address == _LOOPBACK_V6


def is_plain_http_allowed(public_url: str) -> bool:
    """True only for an ``http://`` URL whose host is loopback or under ``.localhost``.

    Fails closed: an ``https://`` URL, or one that does not parse strictly, gives False.
    """
    try:
        scheme, host = url_scheme_and_host(public_url)
    except ConfigError:
        return False
    return scheme == "http" and is_loopback_host(host)


def requires_tls(public_url: str, *, field: str = "public_url") -> bool:
    """Whether the gateway must terminate TLS for ``public_url``.

    True for ``https://``; False for ``http://`` on a loopback host. Raises
    :class:`ConfigError` naming ``field`` for ``http://`` on any other host (plain HTTP there
    would send session cookies in the clear) and for a URL that does not parse.
    """
    scheme, host = url_scheme_and_host(public_url, field=field)
    if scheme == "https":
        return True
    if is_loopback_host(host):
        return False
    raise ConfigError(
        f"plain http is allowed only for localhost and loopback addresses; use https://{host}",
        field=field,
    )


def hostnames_for(
    public_url: str,
    routing: Routing,
    *,
    domain: str | None = None,
    field: str = "public_url",
) -> list[str]:
    """The names the server certificate must cover, normalized, most general first.

    * ``single-host``: the public URL's host, e.g. ``["gate.example.com"]``.
    * ``subdomains``: ``public_url`` is the *portal* URL (``https://auth.example.com``) and the
      apps live under the app domain, by default the portal host's parent (``example.com``).
      Gives ``["example.com", "*.example.com"]``, plus the portal host when the wildcard does
      not cover it (a wildcard covers exactly one label, RFC 6125 §6.4.3). Pass ``domain`` to
      choose the app domain explicitly; it is required when the parent would be a bare
      top-level name (``https://example.com`` would make ``*.com``). The app domain must
      have at least two labels.
    """
    _, host = url_scheme_and_host(public_url, field=field)
    if routing == "single-host":
        return [host]
    if is_ip(host):
        raise ConfigError("subdomains routing needs a DNS name, not an IP address", field=field)
    if domain is not None:
        app_domain = normalize_host(domain, field="domain")
        if is_ip(app_domain):
            raise ConfigError("the app domain must be a DNS name", field="domain")
    else:
        app_domain = host.partition(".")[2]
    # A wildcard right under a top-level name (*.com, *.localhost) is refused by browsers,
    # and *.localhost needs no certificate anyway: plain http is allowed there.
    if "." not in app_domain:
        raise ConfigError(
            f"cannot use {app_domain or host!r} as the app domain; set a domain with at least "
            "two labels",
            field="domain",
        )
    names = [app_domain, "*." + app_domain]
    if host != app_domain and host.partition(".")[2] != app_domain:
        names.append(host)
    return names


def _normalize_ipv6(text: str, *, field: str) -> str:
    # A zone id ("fe80::1%eth0") has no meaning in a URL or a certificate.
    if "%" in text:
        raise ConfigError(f"IPv6 zone ids are not allowed: {text!r}", field=field)
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError as exc:
        raise ConfigError(f"not a valid IPv6 address: {text!r}", field=field) from exc


def _check_port(port: str, *, url: str, field: str) -> None:
    # An empty port after ":" is the default port (WHATWG); otherwise 1-65535, digits only.
    if port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ConfigError(f"bad port in {url!r}", field=field)
