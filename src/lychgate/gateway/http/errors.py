"""The engine's own error pages: small, plain text, and leaking nothing.

An error page names the status and the request's id (:mod:`.request_ids`, for a user to quote)
and nothing else: no exception text, no upstream address, no server banner (SECURITY.md item
9). Pages without an id are built once per status and reused.
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


def _page(status: int, close: bool, head_only: bool, rid: bytes = b"") -> bytes:
    """The page after its status line and ``Date`` field."""
    body = b"%d %s\n" % (status, reason(status))
    if rid:
        body += b"request id: %s\n" % rid
    head = [
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\n" % len(body),
        b"cache-control: no-store\r\n",
        b"x-content-type-options: nosniff\r\n",
    ]
    if rid:
        head.append(b"x-request-id: %s\r\n" % rid)
    if status == 405:
        head.append(_ALLOW)  # RFC 9110 section 15.5.6
    if close:
        head.append(b"connection: close\r\n")
    return b"".join(head) + b"\r\n" + (b"" if head_only else body)


_PAGES: dict[tuple[int, bool, bool], bytes] = {}


def error_page(
    status: int,
    date: bytes,
    *,
    close: bool = True,
    head_only: bool = False,
    extra: bytes = b"",
    rid: str = "",
) -> bytes:
    """The whole response for ``status``, sent at ``date`` (an IMF-fixdate: every response
    carries one, RFC 9110 section 6.6.1); ``close`` adds ``Connection: close``, ``extra``
    its field lines (``Strict-Transport-Security`` on https), and ``rid`` (ASCII, as
    :mod:`.request_ids` makes or keeps them) an ``X-Request-Id`` field and a line of content.

    ``head_only`` is for an answer to HEAD: the same head, with the length the page would
    have, and no content (RFC 9110 section 9.3.2). Content there would be read by a
    keep-alive client as the start of the next response.
    """
    if rid:
        page = _page(status, close, head_only, rid.encode("ascii"))
    else:
        key = (status, close, head_only)
        cached = _PAGES.get(key)
        if cached is None:
            cached = _PAGES[key] = _page(status, close, head_only)
        page = cached
    return b"%sdate: %s\r\n%s%s" % (status_line(status), date, extra, page)
