"""Hop-by-hop rules and head serialization (lychgate.gateway.http.headers)."""

from __future__ import annotations

import pytest

from lychgate.errors import UsageError
from lychgate.gateway.http.headers import (
    connection_tokens,
    http_date,
    local_head,
    request_head,
    response_head,
    strip_hop_by_hop,
    strip_hop_by_hop_raw,
)


def test_strip_hop_by_hop_removes_the_rfc_list_and_named_fields() -> None:
    headers = (
        ("host", "a"),
        ("connection", "X-Foo, close"),
        ("connection", "x-bar"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("te", "trailers"),
        ("trailer", "x-t"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "websocket"),
        ("x-foo", "named in Connection"),
        ("x-bar", "named in a second Connection field"),
        ("close", "a field named like the option"),
        ("x-keep", "1"),
        ("content-length", "3"),
    )
    assert strip_hop_by_hop(headers) == (("host", "a"), ("x-keep", "1"), ("content-length", "3"))


def test_strip_hop_by_hop_keeps_order_and_duplicates() -> None:
    headers = (("a", "1"), ("b", "2"), ("a", "3"))
    assert strip_hop_by_hop(headers) == headers


def test_strip_hop_by_hop_can_keep_upgrade() -> None:
    headers = (("upgrade", "websocket"), ("connection", "upgrade"))
    assert strip_hop_by_hop(headers, keep_upgrade=True) == (("upgrade", "websocket"),)
    assert strip_hop_by_hop(headers) == ()


def test_connection_tokens_ignore_spacing_case_and_empty_items() -> None:
    assert connection_tokens((("connection", " A ,, b,"), ("x", "c"))) == {"a", "b"}


def test_strip_hop_by_hop_raw_matches_the_str_version() -> None:
    raw = [(b"connection", b"x-a"), (b"x-a", b"1"), (b"te", b"x"), (b"x-b", b"2")]
    assert strip_hop_by_hop_raw(raw) == [(b"x-b", b"2")]
    assert strip_hop_by_hop_raw([(b"upgrade", b"h2c")], keep_upgrade=True) == [(b"upgrade", b"h2c")]


def test_request_head_layout() -> None:
    head = request_head(
        "POST",
        "/p?q",
        (("host", "h"), ("content-length", "99"), ("expect", "100-continue"), ("x", "y")),
        "content-length: 3\r\nconnection: keep-alive\r\n",
    )
    assert head == (
        b"POST /p?q HTTP/1.1\r\nhost: h\r\nx: y\r\n"
        b"content-length: 3\r\nconnection: keep-alive\r\n\r\n"
    )


def test_request_head_drops_fields_named_in_connection() -> None:
    head = request_head("GET", "/", (("connection", "x-a"), ("x-a", "1"), ("h", "2")), "")
    assert head == b"GET / HTTP/1.1\r\nh: 2\r\n\r\n"
    # Named before or after it, and by a second Connection field.
    fields = (("x-a", "1"), ("h", "2"), ("connection", "close"), ("connection", "X-A, x-b"))
    assert request_head("GET", "/", (*fields, ("x-b", "3")), "") == (
        b"GET / HTTP/1.1\r\nh: 2\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        ("/", (("x-user", "eve\r\nx-admin: 1"),)),
        ("/", (("x-user", "eve\nx-admin: 1"),)),
        ("/", (("x-user", "eve\rx"),)),
        ("/", (("x-user", "eve\0"),)),
        ("/ HTTP/1.1\r\nx-admin: 1\r\n\r\nGET /", ()),
        ("/", (("x-user", "Zoë ✓"),)),  # not latin-1: must be encoded by the caller
    ],
)
def test_request_head_refuses_injection(target: str, headers: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(UsageError):
        request_head("GET", target, headers, "")


@pytest.mark.parametrize(
    "tail",
    ["upgrade: a\rb\r\n", "upgrade: a\nx: 1\r\n", "upgrade: a\0\r\n", "a: 1\r\r\n"],
)
def test_request_head_refuses_a_broken_tail(tail: str) -> None:
    # The tail carries client values too (Upgrade, Transfer-Encoding): CR LF only as line ends.
    with pytest.raises(UsageError):
        request_head("GET", "/", (("x", "1"),), tail)


def test_request_head_keeps_latin1_bytes() -> None:
    value = b"caf\xe9".decode("latin-1")
    assert b"x: caf\xe9\r\n" in request_head("GET", "/", (("x", value),), "")


def test_response_head_strips_and_adds_tail() -> None:
    head = response_head(
        200,
        [(b"content-length", b"5"), (b"connection", b"x-a"), (b"x-a", b"1"), (b"set-cookie", b"a")],
        b"transfer-encoding: chunked\r\n",
    )
    assert head == (
        b"HTTP/1.1 200 OK\r\nset-cookie: a\r\ndate: %s\r\ntransfer-encoding: chunked\r\n\r\n"
        % http_date()
    )


def test_response_head_drops_what_connection_names_before_it_too() -> None:
    fields = [(b"x-a", b"1"), (b"x-b", b"2"), (b"connection", b"close, X-A"), (b"x-c", b"3")]
    fields.append((b"date", b"Mon, 30 Nov 2026 12:00:00 GMT"))  # kept, not added again
    assert response_head(200, fields, b"") == (
        b"HTTP/1.1 200 OK\r\nx-b: 2\r\nx-c: 3\r\ndate: Mon, 30 Nov 2026 12:00:00 GMT\r\n\r\n"
    )


def test_a_response_gets_a_date_when_its_upstream_sent_none() -> None:
    # RFC 9110 section 6.6.1: a recipient that forwards a response without one adds one.
    assert b"\r\ndate: " in response_head(204, [(b"x-a", b"1")], b"")
    assert b"date" not in response_head(103, [(b"link", b"</a>")], b"")  # interim: not needed


def test_response_head_for_101_keeps_upgrade_even_when_connection_names_it() -> None:
    fields = [(b"upgrade", b"websocket"), (b"connection", b"Upgrade, x-a"), (b"x-a", b"1")]
    head = response_head(101, fields, b"connection: upgrade\r\n", keep_upgrade=True)
    assert head == (
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n"
    )


def test_response_head_for_101_keeps_upgrade() -> None:
    head = response_head(
        101, [(b"upgrade", b"websocket")], b"connection: upgrade\r\n", keep_upgrade=True
    )
    assert head == (
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n"
    )


def test_local_head_has_date_and_refuses_injection() -> None:
    head = local_head(302, (("location", "/x"), ("content-length", "9")), b"content-length: 0\r\n")
    assert head.startswith(b"HTTP/1.1 302 Found\r\ndate: ")
    assert head.endswith(b"location: /x\r\ncontent-length: 0\r\n\r\n")
    assert head.count(b"content-length") == 1  # the engine frames, not the caller
    with pytest.raises(UsageError):
        local_head(200, (("x", "a\r\nset-cookie: b"),), b"")


def test_http_date_is_imf_fixdate() -> None:
    assert http_date().endswith(b" GMT")
    assert len(http_date()) == 29
