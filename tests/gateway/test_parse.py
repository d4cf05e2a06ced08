"""Request rules on a parsed head (lychgate.gateway.http.parse), without sockets."""

from __future__ import annotations

import contextlib
import re

import httptools
import pytest

from lychgate.gateway.http.parse import make_request, split_target
from lychgate.gateway.http.request import Request
from lychgate.gateway.http.request_ids import RequestIds


class _Collect:
    def __init__(self) -> None:
        self.url = b""
        self.fields: list[tuple[str, str]] = []
        self.done = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.done = True


def _request(raw: bytes, ids: RequestIds | None = None) -> Request:
    c = _Collect()
    parser = httptools.HttpRequestParser(c)
    with contextlib.suppress(httptools.HttpParserUpgrade):  # CONNECT and Upgrade stop here
        parser.feed_data(raw)
    assert c.done
    ids = ids or RequestIds()
    return make_request(parser, c.url, c.fields, "192.0.2.1", "https", "app.example", ids)


def test_a_plain_request() -> None:
    req = _request(b"POST /a/b?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n")
    assert req.error is None
    head = req.head
    assert head is not None
    assert (head.method, head.target, head.path, head.query) == ("POST", "/a/b?x=1", "/a/b", "x=1")
    assert (head.client_ip, head.scheme, head.sni) == ("192.0.2.1", "https", "app.example")
    assert (req.content_length, req.chunked, req.keep_alive) == (3, False, True)


def test_expect_continue_only_with_content_on_http11() -> None:
    assert _request(
        b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n"
    ).expect_continue
    assert not _request(
        b"GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n"
    ).expect_continue
    assert not _request(
        b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"
    ).expect_continue


@pytest.mark.parametrize(
    "fields",
    [
        b"Expect: 100-continue \r\n",  # whitespace around a value is not part of it
        b"Expect: 100-continue\t\r\n",
        b"Expect: 100-continue\r\nExpect: 100-continue\r\n",  # listed twice
        b"Expect: 100-continue, 100-CONTINUE\r\n",
        b"Expect: , 100-continue\r\n",  # an empty member (RFC 9110 5.6.1)
    ],
)
def test_100_continue_is_read_as_a_list_member(fields: bytes) -> None:
    # They were refused with 417: the joined value was compared as it stood.
    req = _request(b"PUT / HTTP/1.1\r\nHost: h\r\n%sContent-Length: 1\r\n\r\n" % fields)
    assert (req.error, req.expect_continue) == (None, True)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
        (b"GET /#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505),
        (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405),
        (b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417),
        (b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue, x\r\n\r\n", 417),
        (b"GET / HTTP/1.1\r\nHost: a\r\nExpect:\r\n\r\n", 417),
        (  # two fields are one list: the last alone used to be judged
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: x\r\nExpect: 100-continue\r\n"
            b"Content-Length: 1\r\n\r\n",
            417,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (
            b"POST / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        # RFC 9112 section 6.1: a coding the gateway does not implement is 501 (as nginx).
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            501,
        ),
    ],
    ids=[
        "no_host",
        "two_hosts",
        "fragment",
        "http09",
        "connect",
        "expect",
        "expect_and_another",
        "expect_empty",
        "two_expect_fields",
        "upg",
        "http10_chunked",
        "http10_keepalive_chunked",
        "identity_chunked",
        "gzip_chunked",
        "two_te_fields",
    ],
)
def test_refusals(raw: bytes, status: int) -> None:
    assert _request(raw).error == status


@pytest.mark.parametrize("coding", [b"chunked", b"Chunked", b"CHUNKED", b"\tchunked", b"chunked  "])
def test_chunked_alone_is_accepted_in_any_case_and_whitespace(coding: bytes) -> None:
    raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: %s\r\n\r\n" % coding
    req = _request(raw)
    assert (req.error, req.chunked) == (None, True)


def test_http10_needs_no_host() -> None:
    assert _request(b"GET / HTTP/1.0\r\n\r\n").error is None


@pytest.mark.parametrize(
    ("target", "split"),
    [
        ("/a?b?c", ("/a", "b?c")),
        ("/", ("/", "")),
        ("//h/p", ("//h/p", "")),  # an origin-form path with an empty segment, not a host
        ("*", ("*", "")),
        ("http://h.example:8080/p/q?r=1", ("/p/q", "r=1")),
        ("https://h.example", ("/", "")),
    ],
)
def test_split_target(target: str, split: tuple[str, str]) -> None:
    assert split_target(target) == split


@pytest.mark.parametrize("target", ["relative", "h.example:443", "http:/no-host"])
def test_split_target_refuses(target: str) -> None:
    with pytest.raises(ValueError, match="request-target"):
        split_target(target)


def test_a_head_carries_its_id_from_the_parse() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: lb-1\r\n\r\n"
    made = _request(raw)
    assert made.head is not None
    assert made.rid == made.head.rid
    assert re.fullmatch("[0-9a-f]{24}", made.rid)  # the client's own is not believed
    kept = _request(raw, RequestIds(lambda ip: ip == "192.0.2.1"))  # from a trusted proxy
    assert kept.head is not None
    assert kept.rid == kept.head.rid == "lb-1"
