"""The engine's own error pages: small, plain text, and leaking nothing.

An error page names the status and nothing else: no exception text, no upstream address, no
server banner (SECURITY.md item 9). Pages are built once per status and reused, so an error
costs one ``transport.write`` and one join (for its ``Date``).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Final

CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"  # RFC 9110 section 15.2.1

_REASONS: Final[dict[int, bytes]] = {s.value: s.phrase.encode("ascii") for s in HTTPStatus}


def reason(status: int) -> bytes:
    """The standard reason phrase; empty for unknown codes (RFC 9112 section 4 allows it)."""
    return _REASONS.get(status, b"")


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <reason>`` and CRLF (RFC 9112 section 4)."""
    line = _STATUS_LINES.get(status)
    if line is None:
        line = b"HTTP/1.1 %d %s\r\n" % (status, reason(status))
        if 100 <= status <= 999:  # a memo of at most 900 short lines
            _STATUS_LINES[status] = line
    return line


_STATUS_LINES: dict[int, bytes] = {}


# Every method but CONNECT is forwarded to the app; a 405 is the gateway's only for CONNECT.
_ALLOW: Final = b"allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n"


def _page(status: int, close: bool, head_only: bool) -> bytes:
    """The page after its status line and ``Date`` field."""
    body = b"%d %s\n" % (status, reason(status))
    head = [
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\n" % len(body),
        b"cache-control: no-store\r\n",
        b"x-content-type-options: nosniff\r\n",
    ]
    if status == 405:
        head.append(_ALLOW)  # RFC 9110 section 15.5.6
    if close:
        head.append(b"connection: close\r\n")
    return b"".join(head) + b"\r\n" + (b"" if head_only else body)


_PAGES: dict[tuple[int, bool, bool], bytes] = {}


def error_page(
    status: int, date: bytes, *, close: bool = True, head_only: bool = False, extra: bytes = b""
) -> bytes:
    """The whole response for ``status``, sent at ``date`` (an IMF-fixdate: every response
    carries one, RFC 9110 section 6.6.1); ``close`` adds ``Connection: close``, and ``extra``
    its field lines (``Strict-Transport-Security`` on https).

    ``head_only`` is for an answer to HEAD: the same head, with the length the page would
    have, and no content (RFC 9110 section 9.3.2). Content there would be read by a
    keep-alive client as the start of the next response.
    """
    key = (status, close, head_only)
    page = _PAGES.get(key)
    if page is None:
        page = _PAGES[key] = _page(status, close, head_only)
    return b"%sdate: %s\r\n%s%s" % (status_line(status), date, extra, page)
