"""Error pages (lychgate.gateway.http.errors)."""

from __future__ import annotations

import pytest

from lychgate.gateway.http.errors import CONTINUE, error_page, reason, status_line


@pytest.mark.parametrize("status", [400, 403, 408, 413, 414, 417, 431, 500, 502, 504, 505])
def test_error_page_is_small_plain_and_framed(status: int) -> None:
    page = error_page(status)
    head, _, body = page.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status)
    assert b"content-type: text/plain; charset=utf-8" in head
    assert b"content-length: %d" % len(body) in head
    assert b"connection: close" in head
    assert body == b"%d %s\n" % (status, reason(status))
    assert b"\nserver:" not in head.lower()


def test_error_page_without_close_and_cached() -> None:
    assert b"connection" not in error_page(502, close=False)
    assert error_page(502, close=False) is error_page(502, close=False)


def test_error_page_for_head_is_its_head_alone() -> None:
    page = error_page(502, close=False, head_only=True)
    full = error_page(502, close=False)
    assert full.startswith(page)
    assert page.endswith(b"\r\n\r\n")
    assert b"content-length: 16\r\n" in page  # the length the page would have (RFC 9110 9.3.2)
    assert error_page(502, close=False, head_only=True) is page


def test_reason_and_status_line() -> None:
    assert reason(404) == b"Not Found"
    assert reason(599) == b""
    assert status_line(599) == b"HTTP/1.1 599 \r\n"
    assert CONTINUE == b"HTTP/1.1 100 Continue\r\n\r\n"
