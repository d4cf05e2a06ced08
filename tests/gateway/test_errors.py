"""Error pages (lychgate.gateway.http.errors)."""

from __future__ import annotations

import pytest

from lychgate.gateway.http.errors import CONTINUE, error_page, reason, status_line

DATE = b"Mon, 30 Nov 2026 12:00:00 GMT"


@pytest.mark.parametrize("status", [400, 403, 408, 413, 414, 417, 431, 500, 502, 504, 505])
def test_error_page_is_small_plain_and_framed(status: int) -> None:
    page = error_page(status, DATE)
    head, _, body = page.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status)
    assert b"content-type: text/plain; charset=utf-8" in head
    assert b"content-length: %d" % len(body) in head
    assert b"connection: close" in head
    assert body == b"%d %s\n" % (status, reason(status))
    assert b"\nserver:" not in head.lower()
    assert head.split(b"\r\n")[1] == b"date: " + DATE  # every response has one
    assert b"allow:" not in head


def test_a_405_says_which_methods_are_served() -> None:
    head = error_page(405, DATE).partition(b"\r\n\r\n")[0]
    assert b"\r\nallow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n" in head


def test_error_page_without_close() -> None:
    assert b"connection" not in error_page(502, DATE, close=False)


def test_error_page_for_head_is_its_head_alone() -> None:
    page = error_page(502, DATE, close=False, head_only=True)
    full = error_page(502, DATE, close=False)
    assert full.startswith(page)
    assert page.endswith(b"\r\n\r\n")
    assert b"content-length: 16\r\n" in page  # the length the page would have (RFC 9110 9.3.2)


def test_reason_and_status_line() -> None:
    assert reason(404) == b"Not Found"
    assert reason(599) == b""
    assert status_line(599) == b"HTTP/1.1 599 \r\n"
    assert CONTINUE == b"HTTP/1.1 100 Continue\r\n\r\n"
