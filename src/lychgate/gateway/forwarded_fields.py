"""What a trusted proxy's forwarding fields may say (SECURITY.md item 3).

Theory of operation
-------------------
From a peer in ``trusted_proxies`` the gateway keeps ``X-Forwarded-For``, ``-Proto``,
``Forwarded`` and the other ``X-Forwarded-*`` fields and appends its own hop, so an app behind
a load balancer and the gateway sees the whole chain. A load balancer passes on what the client
sent, too, so these fields are checked before they are kept, and one that fails is a 400, never
skipped (an app would otherwise read a client's words as the proxy's):

* each address in ``X-Forwarded-For``, and each ``for=`` and ``by=`` node in ``Forwarded``, is
  an IP address (or, in ``Forwarded``, ``unknown`` or an obfuscated ``_name``, RFC 7239
  section 6), never markup for a log viewer or an admin page;
* ``X-Forwarded-Proto`` and each ``proto=`` are ``http`` or ``https``;
* what names the host or port the client reached agrees with the request the gateway routed:
  each ``host=`` in ``Forwarded``, and ``X-Forwarded-Port``. An app building absolute links
  (a password reset mail, a redirect) from either would otherwise point at a host or port the
  client chose, which ``X-Forwarded-Host`` (always the routed host) already rules out
  (THREAT_MODEL T14);
* ``X-Forwarded-Prefix`` is one absolute path of non-empty segments; other ``X-Forwarded-*``
  fields are printable ASCII.

The leftmost addresses of a chain are still whatever the first hop was told: an app takes the
client's address from the right, skipping the proxies it trusts, as with any proxy.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

from lychgate.errors import ClientError
from lychgate.gateway.routing import RequestHost, parse_host

_TCHARS: Final = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED: Final = r'"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\x09\x20-\x7e])*"'
_FORWARDED_PAIR: Final = re.compile(rf"[ \t]*({_TCHARS})=({_TCHARS}|{_QUOTED})[ \t]*")
_QUOTED_PAIR: Final = re.compile(r"\\(.)")
# RFC 7239 section 6.3: an obfuscated node name or port.
_OBFUSCATED: Final = re.compile(r"_[A-Za-z0-9._-]+")
_PROTOS: Final = ("http", "https")


def canonical_name(name: str) -> str:
    """A header name as servers that fold ``_`` into ``-`` see it."""
    return name.lower().replace("_", "-")


def _bad(message: str, field: str) -> ClientError:
    return ClientError(message, field=field, status=400)


def forwarded_for(values: list[str]) -> list[str]:
    """The addresses in trusted ``X-Forwarded-For`` values; each must be an IP address.

    Without an IPv6 zone (``fe80::1%eth0``): a zone names an interface of the sender's own
    host, and :mod:`ipaddress` takes any text after the ``%`` (markup, quotes, spaces), which
    apps and logs would read as an address we checked."""
    hops: list[str] = []
    for value in values:
        for item in value.split(","):
            item = item.strip(" \t")
            try:
                if "%" in item:
                    raise ValueError(item)
                hops.append(str(ipaddress.ip_address(item)))
            except ValueError:
                raise _bad("unparsable X-Forwarded-For", "x-forwarded-for") from None
    return hops


def forwarded_proto(values: list[str]) -> str:
    """The scheme a trusted ``X-Forwarded-Proto`` names: one field, ``http`` or ``https``."""
    if len(values) != 1 or values[0].strip().lower() not in _PROTOS:
        raise _bad("unparsable X-Forwarded-Proto", "x-forwarded-proto")
    return values[0].strip().lower()


# Other X-Forwarded-* fields a trusted proxy may send, that name one thing each.
_SINGLE_VALUED: Final = frozenset({"x-forwarded-port", "x-forwarded-prefix"})
# One path segment's characters (RFC 3986 pchar) less ",", which list-splitting readers of
# the field (Werkzeug's ProxyFix takes the last item) would cut at; percent-escapes only of
# what may stand in a segment as itself: never "/", "\\", ",", "?", "#", "%" or a control.
_SEGMENT: Final = (
    r"(?:[A-Za-z0-9\-._~!$&'()*+;=:@]|%(?!2[fFcC3]|25|3[fF]|5[cC]|[01].|7[fF])[0-9A-Fa-f]{2})+"
)
# "/", or non-empty segments each after one "/", with a final "/" allowed: never "//host".
_PREFIX: Final = re.compile(rf"/|(?:/{_SEGMENT})+/?")


def check_others(pairs: list[tuple[str, str]], port: int | None) -> list[tuple[str, str]]:
    """The other ``X-Forwarded-*`` fields of a trusted proxy, kept as sent once they pass.

    ``-Port`` is the port the request was routed on (``port``: the public URL's) and
    ``-Prefix`` one absolute path of non-empty segments (apps build URLs from it, so
    ``//evil.example``, a ``\\``, or a list such as ``/a,//evil.example`` whose last item a
    reader takes, would make them point elsewhere); each at most once.
    Fields we do not know must be printable ASCII. Anything else is a 400, not a skip.
    """
    seen: set[str] = set()
    for name, value in pairs:
        canonical = canonical_name(name)
        text = value.strip(" \t")
        if canonical in _SINGLE_VALUED:
            if canonical in seen:
                raise _bad(f"more than one {canonical}", canonical)
            seen.add(canonical)
        if canonical == "x-forwarded-port":
            ok = 0 < len(text) <= 5 and text.isascii() and text.isdigit() and 0 < int(text) < 65536
            if ok and int(text) != port:
                raise _bad("x-forwarded-port is not the port the request was routed on", canonical)
        elif canonical == "x-forwarded-prefix":
            ok = _PREFIX.fullmatch(text) is not None
        else:
            ok = value.isascii() and value.isprintable()
        if not ok:
            raise _bad(f"unparsable {canonical}", canonical)
    return pairs


def check_forwarded(values: list[str], host: RequestHost, scheme: str) -> list[str]:
    """Split trusted ``Forwarded`` values into elements, each checked (module docstring).

    ``host`` and ``scheme`` are what the request was routed on: a ``host=`` must name the same
    host and port, a port left out being the default of the element's ``proto=`` (else of
    ``scheme``) on both sides."""
    elements: list[str] = []
    for value in values:
        for element in _split_elements(value):
            _check_element(element, host, scheme)
            elements.append(";".join(f"{name}={text}" for name, text in element))
    return elements


def _split_elements(value: str) -> list[list[tuple[str, str]]]:
    """RFC 7239 section 4: elements split at ``,``, pairs at ``;``, values as sent."""
    elements: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    pos, end = 0, len(value)
    while True:
        match = _FORWARDED_PAIR.match(value, pos)
        if match is None:
            raise _bad("unparsable Forwarded", "forwarded")
        current.append((match.group(1), match.group(2)))
        pos = match.end()
        if pos == end:
            break
        separator = value[pos]
        if separator == ",":
            elements.append(current)
            current = []
        elif separator != ";":
            raise _bad("unparsable Forwarded", "forwarded")
        pos += 1
    elements.append(current)
    return elements


def _check_element(pairs: list[tuple[str, str]], host: RequestHost, scheme: str) -> None:
    params: dict[str, str] = {}
    for name, text in pairs:
        key = name.lower()
        if key in params:  # "MUST NOT occur more than once" (section 4): which would count?
            raise _bad(f"Forwarded repeats {key}=", "forwarded")
        params[key] = _unquoted(text)
    for key in ("for", "by"):
        if key in params and not _is_node(params[key]):
            raise _bad(f"unparsable Forwarded {key}=", "forwarded")
    proto = params.get("proto", scheme).lower()
    if proto not in _PROTOS:
        raise _bad("unparsable Forwarded proto=", "forwarded")
    if "host" in params:
        try:
            named = parse_host(params["host"])
        except ClientError:
            raise _bad("unparsable Forwarded host=", "forwarded") from None
        if (named.name, named.effective_port(proto)) != (host.name, host.effective_port(proto)):
            raise _bad("Forwarded host= is not the host the request was routed on", "forwarded")


def _unquoted(text: str) -> str:
    if text.startswith('"'):
        return _QUOTED_PAIR.sub(r"\1", text[1:-1])
    return text


def _is_node(text: str) -> bool:
    """RFC 7239 section 6: ``nodename [":" node-port]``; IPv6 in brackets, no zone."""
    if text.startswith("["):
        literal, sep, rest = text[1:].partition("]")
        if not sep or "%" in literal or (rest and not rest.startswith(":")):
            return False
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            return False
        port = rest[1:] if rest else None
    else:
        name, sep, port_text = text.partition(":")
        port = port_text if sep else None
        if name != "unknown" and _OBFUSCATED.fullmatch(name) is None:
            try:
                ipaddress.IPv4Address(name)
            except ValueError:
                return False
    if port is None:
        return True
    if _OBFUSCATED.fullmatch(port):
        return True
    return 0 < len(port) <= 5 and port.isascii() and port.isdigit()


def forwarded_element(client_ip: str, scheme: str, host: RequestHost) -> str:
    """Our own ``Forwarded`` element (RFC 7239 section 4; IPv6 and ports must be quoted)."""
    node = f'"[{client_ip}]"' if ":" in client_ip else client_ip
    authority = host.authority
    quoted = authority if re.fullmatch(_TCHARS, authority) else f'"{authority}"'
    return f"for={node};proto={scheme};host={quoted}"
