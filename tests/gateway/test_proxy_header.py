"""The PROXY protocol header, versions 1 and 2, parsed without sockets (.proxy_header)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lychgate.gateway.http.proxy_header import (
    MAX_SIZE,
    V1_PREFIX,
    V2_SIGNATURE,
    BadProxyHeader,
    ProxyHeader,
    parse,
)

REQUEST = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
V1_TCP4 = b"PROXY TCP4 203.0.113.9 10.0.0.5 51234 443\r\n"
V1_TCP6 = b"PROXY TCP6 2001:db8::9 2001:db8::1 51234 443\r\n"


def v2(
    command: int = 0x21,
    family: int = 0x11,
    addresses: bytes = b"",
    tlvs: bytes = b"",
    length: int | None = None,
) -> bytes:
    body = addresses + tlvs
    size = len(body) if length is None else length
    return V2_SIGNATURE + bytes([command, family]) + struct.pack("!H", size) + body


def inet(src: str = "203.0.113.9", dst: str = "10.0.0.5") -> bytes:
    def quad(a: str) -> bytes:
        return bytes(int(part) for part in a.split("."))

    return quad(src) + quad(dst) + struct.pack("!HH", 51234, 443)


def inet6(src: bytes, dst: bytes = bytes(15) + b"\x01") -> bytes:
    return src + dst + struct.pack("!HH", 51234, 443)


@pytest.mark.parametrize(
    ("header", "client"),
    [
        (V1_TCP4, "203.0.113.9"),
        (V1_TCP6, "2001:db8::9"),
        (b"PROXY TCP6 2001:0db8:0000::0009 ::1 1 2\r\n", "2001:db8::9"),  # written out: compressed
        (b"PROXY TCP6 ::ffff:198.51.100.7 ::1 0 65535\r\n", "198.51.100.7"),  # mapped: IPv4
        (b"PROXY UNKNOWN\r\n", None),  # the balancer's own connection: the peer's address
        (b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", None),
        (b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", "255.255.255.255"),
        (v2(family=0x11, addresses=inet()), "203.0.113.9"),
        (v2(family=0x11, addresses=inet(), tlvs=b"\x04\x00\x03abc"), "203.0.113.9"),  # skipped
        (v2(family=0x21, addresses=inet6(b" \x01\r\xb8" + bytes(11) + b"\x09")), "2001:db8::9"),
        (v2(family=0x21, addresses=inet6(bytes(10) + b"\xff\xff\xc6\x33\x64\x07")), "198.51.100.7"),
        (v2(command=0x20, family=0x00), None),  # LOCAL: a health check
        (v2(command=0x20, family=0x11, addresses=inet()), None),  # LOCAL's addresses ignored
        (v2(family=0x00), None),  # UNSPEC
        (v2(family=0x31, addresses=bytes(216)), None),  # a unix socket's: not an IP
        (v2(family=0x12, addresses=inet()), None),  # UDP: not this connection's kind
    ],
)
def test_a_header_names_the_client_and_its_size(header: bytes, client: str | None) -> None:
    assert parse(header + REQUEST) == ProxyHeader(client, len(header))
    assert parse(header) == ProxyHeader(client, len(header))


@pytest.mark.parametrize(
    "header", [V1_TCP4, V1_TCP6, v2(addresses=inet(), tlvs=b"\x04\x00\x03abc")]
)
def test_until_it_is_all_there_it_waits(header: bytes) -> None:
    for cut in range(len(header)):
        assert parse(header[:cut]) is None, cut


@pytest.mark.parametrize(
    "data",
    [
        REQUEST,  # no header at all: a client that skipped the balancer
        b"\x16\x03\x01\x02\x00",  # a TLS ClientHello
        b"proxy TCP4 203.0.113.9 10.0.0.5 1 2\r\n",
        b"PROXY  TCP4 203.0.113.9 10.0.0.5 1 2\r\n",
        b"PROXY TCP4 203.0.113.9 10.0.0.5 1 2 \r\n",
        b"PROXY TCP4 203.0.113.9 10.0.0.5 1\r\n",
        b"PROXY TCP4 203.0.113.9 10.0.0.5 1 2\n",  # LF alone
        b"PROXY TCP4 203.0.113.9  10.0.0.5 1 2\r\n",
        b"PROXY TCP5 203.0.113.9 10.0.0.5 1 2\r\n",
        b"PROXY UDP4 203.0.113.9 10.0.0.5 1 2\r\n",
        b"PROXY TCP4 203.0.113.009 10.0.0.5 1 2\r\n",  # a leading zero: octal to some
        b"PROXY TCP4 2001:db8::9 10.0.0.5 1 2\r\n",  # IPv6 in TCP4
        b"PROXY TCP6 203.0.113.9 ::1 1 2\r\n",  # IPv4 in TCP6
        b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",  # a zone: the balancer's interface
        b"PROXY TCP4 203.0.113.9 10.0.0.5 65536 2\r\n",
        b"PROXY TCP4 203.0.113.9 10.0.0.5 01 2\r\n",
        b"PROXY TCP4 203.0.113.9 10.0.0.5 +1 2\r\n",
        b"PROXY TCP4 203.0.113.9 10.0.0.5 -1 2\r\n",
        b"PROXY TCP4 203.0.113.9 10.0.0.5 \xd9\xa1 2\r\n",  # an Arabic-Indic digit
        b"PROXY TCP4 203.0.113.9 10.0.0.5 1 2" + b" " * 80,  # no CRLF within 107 bytes
        b"PROXY TCP4 " + b"1" * 200 + b"\r\n",
        b"PROXY \xff\xfe\r\n",
        v2(command=0x11),  # version 1 in a version 2 header
        v2(command=0x22),  # an unknown command
        v2(family=0x41, addresses=inet()),  # an unknown family
        v2(family=0x13, addresses=inet()),  # an unknown transport
        v2(family=0x11, addresses=inet()[:11]),  # too short for IPv4's addresses
        v2(family=0x21, addresses=inet()),  # too short for IPv6's
    ],
)
def test_anything_else_is_refused(data: bytes) -> None:
    with pytest.raises(BadProxyHeader):
        parse(data)


def test_a_version_2_header_may_be_as_long_as_its_length_says() -> None:
    longest = v2(addresses=inet(), tlvs=bytes(0xFFFF - 12))
    assert len(longest) == MAX_SIZE
    assert parse(longest) == ProxyHeader("203.0.113.9", MAX_SIZE)
    assert parse(longest[:-1]) is None


VALID = [V1_TCP4, V1_TCP6, b"PROXY UNKNOWN\r\n", v2(addresses=inet()), v2(family=0x00)]


@settings(max_examples=1000, deadline=None)
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=4),
    st.integers(0, 300),
)
def test_mangled_headers_wait_parse_or_are_refused_and_nothing_else(
    header: bytes, changes: list[tuple[int, int]], cut: int
) -> None:
    # Whatever the balancer's network sends, the reader gets one of three answers: an
    # exception of another kind would escape data_received and leave the socket open.
    data = bytearray(header + REQUEST)
    for at, byte in changes:
        data[at % len(data)] = byte
    sent = bytes(data[:cut])
    try:
        parsed = parse(sent)
    except BadProxyHeader:
        return
    assert parsed is None or 0 < parsed.size <= len(sent)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_random_bytes_too(data: bytes) -> None:
    for sent in (data, V1_PREFIX + data, V2_SIGNATURE + data):
        try:
            parsed = parse(sent)
        except BadProxyHeader:
            continue
        assert parsed is None or 0 < parsed.size <= len(sent)
