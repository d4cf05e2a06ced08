"""The PROXY protocol header: who the client is, as a TCP load balancer in front tells it.

A load balancer that passes TCP through (HAProxy in ``mode tcp``, AWS's NLB, nginx's
``stream``), TLS included, hides the client's address: the gateway sees the balancer's. With
``proxy_protocol`` on, the balancer writes one header first on each connection, in one of the
two forms of HAProxy's specification (https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt):

* **version 1**, a text line of at most 107 bytes: ``PROXY TCP4 <src> <dst> <sport>
  <dport>\\r\\n`` (``TCP6`` for IPv6), or ``PROXY UNKNOWN ...\\r\\n``;
* **version 2**, binary: a 12-byte signature, a version and command byte, a family byte, a
  16-bit length, the addresses, then type-length-value extensions (skipped here).

:func:`parse` reads what has arrived so far and says: wait for more (``None``), the client's
address and how many bytes the header took (:class:`ProxyHeader`), or a malformed header
(:class:`BadProxyHeader`). It is strict where the specification is: exact single spaces and
CRLF in version 1, addresses as the family writes them (no leading zeros in IPv4, no IPv6
zone), ports from 0 to 65535 without a sign. An IPv4 client that a dual-stack balancer names
in IPv6's mapped form is read as the IPv4 address it is. Where the header names no client
(version 1's ``UNKNOWN``, version 2's ``LOCAL`` command, which balancers use for their health
checks, or an ``UNSPEC`` or unix family) the specification has the receiver use the
connection's own addresses: :attr:`ProxyHeader.client` is ``None`` then.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final

V1_PREFIX: Final = b"PROXY "
V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX: Final = 107  # the longest line version 1 allows, CRLF included
_V2_FIXED: Final = 16  # signature, version and command, family, length
#: The longest header either version may send (version 2's length is 16 bits).
MAX_SIZE: Final = _V2_FIXED + 0xFFFF

_PORT: Final = re.compile(rb"0|[1-9][0-9]{0,4}")
_LOCAL, _PROXY = 0x20, 0x21  # version 2 and its command
_INET, _INET6 = 0x1, 0x2  # version 2's address families (the high half of the family byte)
_STREAM, _DGRAM = 0x1, 0x2  # and transports (the low half)


class BadProxyHeader(ValueError):
    """The connection did not begin with a PROXY header that parses."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A complete header: the ``client``'s address (``None``: use the connection's own) and
    the ``size`` in bytes the header took; what follows is the client's."""

    client: str | None
    size: int


def parse(data: bytes) -> ProxyHeader | None:
    """The header ``data`` begins with, or ``None`` while it is not all there; raises
    :class:`BadProxyHeader` as soon as it cannot be one."""
    if data.startswith(V2_SIGNATURE):
        return _v2(data)
    if data.startswith(V1_PREFIX):
        return _v1(data)
    if V2_SIGNATURE.startswith(data) or V1_PREFIX.startswith(data):
        return None  # a signature's first bytes, so far
    raise BadProxyHeader("no PROXY header")


def _v1(data: bytes) -> ProxyHeader | None:
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX or b"\n" in data:
            raise BadProxyHeader("a version 1 header longer than 107 bytes, or without CRLF")
        return None
    fields = data[:end].split(b" ")
    size = end + 2
    if fields[1] == b"UNKNOWN":
        return ProxyHeader(None, size)  # the rest of the line is to be ignored
    if len(fields) != 6 or fields[1] not in (b"TCP4", b"TCP6"):
        raise BadProxyHeader("a version 1 header that is neither TCP4, TCP6 nor UNKNOWN")
    _, family, source, destination, *ports = fields
    v6 = family == b"TCP6"
    client = _address(source, v6)
    _address(destination, v6)
    for port in ports:
        if _PORT.fullmatch(port) is None or int(port) > 0xFFFF:
            raise BadProxyHeader("a version 1 header with a bad port")
    return ProxyHeader(client, size)


def _address(text: bytes, v6: bool) -> str:
    try:
        decoded = text.decode("ascii")
        address = ipaddress.IPv6Address(decoded) if v6 else ipaddress.IPv4Address(decoded)
    except (UnicodeDecodeError, ValueError):
        raise BadProxyHeader("a version 1 header with a bad address") from None
    if v6 and "%" in decoded:  # a zone names an interface of the balancer's, not ours
        raise BadProxyHeader("a version 1 header with an IPv6 zone")
    return _text(address)


def _text(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """How the gateway writes a client's address: an IPv4 client as one, even when a
    dual-stack balancer names it in IPv6's mapped form (``::ffff:a.b.c.d``)."""
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return str(address if mapped is None else mapped)


def _v2(data: bytes) -> ProxyHeader | None:
    if len(data) < _V2_FIXED:
        return None
    command, family = data[12], data[13]
    if command not in (_LOCAL, _PROXY):
        raise BadProxyHeader("a version 2 header of another version or command")
    size = _V2_FIXED + int.from_bytes(data[14:16], "big")
    if len(data) < size:
        return None
    if command == _LOCAL:
        return ProxyHeader(None, size)  # the balancer's own connection (a health check)
    kind, transport = family >> 4, family & 0xF
    if kind > 3 or transport > _DGRAM:
        raise BadProxyHeader("a version 2 header of an unknown address family")
    if kind not in (_INET, _INET6) or transport != _STREAM:
        return ProxyHeader(None, size)  # UNSPEC, unix or datagram: nothing to use here
    need = 12 if kind == _INET else 36  # both addresses and both ports
    if size - _V2_FIXED < need:
        raise BadProxyHeader("a version 2 header too short for its addresses")
    raw = data[_V2_FIXED : _V2_FIXED + (4 if kind == _INET else 16)]
    address = ipaddress.IPv4Address(raw) if kind == _INET else ipaddress.IPv6Address(raw)
    return ProxyHeader(_text(address), size)
