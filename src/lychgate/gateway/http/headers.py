"""Header rules of a proxy: what is hop-by-hop, and how heads are written to the wire.

RFC 9110 section 7.6.1: ``Connection``, ``Keep-Alive``, ``Proxy-Connection``, ``TE``,
``Trailer``, ``Transfer-Encoding`` and ``Upgrade``, and every field named in ``Connection``,
belong to one hop and are never forwarded. The engine adds its own framing
(``Content-Length`` or ``Transfer-Encoding``) and connection management for each hop.

Heads are built as one ``bytes`` so that each is a single ``transport.write``. A request head
we build is checked for CR, LF and NUL in values: the forwarding rules put identity values into
it, and a newline there would be header injection.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from email.utils import formatdate
from typing import ClassVar, Final

from lychgate.errors import UsageError
from lychgate.gateway.http.errors import status_line
from lychgate.gateway.types import Headers

# The longest field name the engine's memos keep (lower-cased names, their kinds). They are
# keyed on what clients and upstreams send and never forget, so they count their entries and
# take only names as short as real ones: a flood of 16 KB names must not stay for good.
MEMO_NAME_MAX: Final = 64

HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_HOP_BY_HOP_RAW: Final = frozenset(n.encode() for n in HOP_BY_HOP)

# Never copied from a request's fields: framing is re-made for the upstream hop, the engine
# answers ``Expect: 100-continue`` itself (RFC 9110 section 10.1.1), and it sends the request's
# id (a trusted proxy's, or its own: .request_ids).
_REQUEST_DROP: Final = HOP_BY_HOP | {"content-length", "expect", "x-request-id"}
_RESPONSE_DROP_RAW: Final = _HOP_BY_HOP_RAW | {b"content-length"}
_RESPONSE_DROP_UPGRADE_RAW: Final = _RESPONSE_DROP_RAW - {b"upgrade"}  # a 101 keeps Upgrade
_PLAIN_CONNECTION: Final = frozenset({b"keep-alive", b"close"})


def connection_tokens(headers: Iterable[tuple[str, str]]) -> frozenset[str]:
    """The lower-cased option names listed in every ``Connection`` field."""
    tokens: set[str] = set()
    for name, value in headers:
        if name == "connection":
            tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return frozenset(tokens)


def _connection_tokens_raw(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return frozenset(tokens)


def strip_hop_by_hop(headers: Headers, *, keep_upgrade: bool = False) -> Headers:
    """``headers`` without hop-by-hop fields (RFC 9110 section 7.6.1). Names are lower-case.

    ``keep_upgrade`` keeps ``Upgrade`` for a tunnel's handshake, where it is the point.
    """
    drop = HOP_BY_HOP | connection_tokens(headers)
    if keep_upgrade:
        drop = drop - {"upgrade"}
    return tuple((n, v) for n, v in headers if n not in drop)


def strip_hop_by_hop_raw(
    headers: list[tuple[bytes, bytes]], *, keep_upgrade: bool = False
) -> list[tuple[bytes, bytes]]:
    """:func:`strip_hop_by_hop` for lower-cased ``bytes`` fields, as parsed from an upstream."""
    drop = _HOP_BY_HOP_RAW | _connection_tokens_raw(headers)
    if keep_upgrade:
        drop = drop - {b"upgrade"}
    return [(n, v) for n, v in headers if n not in drop]


def request_head(method: str, target: str, headers: Headers, tail: str) -> bytes:
    """The head sent upstream: request line, end-to-end fields, then ``tail``.

    ``tail`` holds the fields this hop adds (framing, ``Connection``), each ending in CRLF.
    Raises :class:`UsageError` when a value or the target would break the framing.
    """
    parts = [method, " ", target, " HTTP/1.1\r\n"]
    for name, value in headers:
        if name not in _REQUEST_DROP:
            parts += (name, ": ", value, "\r\n")
        elif name == "connection":
            # It may name more fields to drop: start again without the hop-by-hop fields (at
            # most once: none is left). The gateway's own headers never hold one.
            return request_head(method, target, strip_hop_by_hop(headers), tail)
    # No CR, LF or NUL in what we did not write ourselves, and CR LF only as the tail's line
    # ends: anything else smuggles a field or a request. (Checked on the words alone, as three
    # membership tests: counting line ends over the whole head cost ten times as much.)
    words = "".join(parts[::2])  # method, target, then each name and value
    lines = tail.replace("\r\n", "")
    if (
        "\r" in words
        or "\n" in words
        or "\0" in words
        or "\r" in lines
        or "\n" in lines
        or "\0" in lines
    ):
        raise UsageError("forbidden character in a forwarded header or target", field="headers")
    parts += (tail, "\r\n")
    try:
        return "".join(parts).encode("latin-1")
    except UnicodeEncodeError:
        raise UsageError("forwarded header is not latin-1", field="headers") from None


def response_head(
    status: int, headers: list[tuple[bytes, bytes]], tail: bytes, *, keep_upgrade: bool = False
) -> bytes:
    """The head sent to the client from an upstream's parsed, lower-cased fields.

    Hop-by-hop fields and ``Content-Length`` are dropped; ``tail`` adds this hop's framing.
    ``keep_upgrade`` keeps ``Upgrade`` (a 101). The upstream's fields were validated by the
    strict parser, so they carry no CR or LF.
    """
    drop: frozenset[bytes] = _RESPONSE_DROP_UPGRADE_RAW if keep_upgrade else _RESPONSE_DROP_RAW
    parts = [status_line(status)]
    dated = False
    for name, value in headers:
        if name not in drop:
            parts += (name, b": ", value, b"\r\n")
            if name == b"date":
                dated = True
        elif name == b"connection" and value.lower() not in _PLAIN_CONNECTION:
            # It names more fields to drop (rare: "keep-alive" and "close" name none). Start
            # again without the hop-by-hop fields, so this happens at most once.
            kept = strip_hop_by_hop_raw(headers, keep_upgrade=keep_upgrade)
            return response_head(status, kept, tail, keep_upgrade=keep_upgrade)
    if not dated and status >= 200:  # a proxy adds a Date left out (RFC 9110 section 6.6.1)
        parts += (b"date: ", http_date(), b"\r\n")
    parts += (tail, b"\r\n")
    return b"".join(parts)


def local_head(status: int, headers: Headers, tail: bytes) -> bytes:
    """The head of a gateway's own answer (:class:`~lychgate.gateway.types.Respond`)."""
    parts = [status_line(status), b"date: ", http_date(), b"\r\n"]
    for name, value in headers:
        if name in _REQUEST_DROP:
            continue
        line = f"{name}: {value}\r\n"
        if line.count("\n") != 1 or line.count("\r") != 1 or "\0" in line:
            raise UsageError("forbidden character in a response header", field=name)
        parts.append(line.encode("latin-1"))
    parts += (tail, b"\r\n")
    return b"".join(parts)


class _DateCache:
    """The formatted ``Date`` of the current second (a memo, not configuration)."""

    second: ClassVar[int] = -1
    value: ClassVar[bytes] = b""


def http_date() -> bytes:
    """The current IMF-fixdate (RFC 9110 section 5.6.7), recomputed at most once a second."""
    now = int(time.time())
    if _DateCache.second != now:
        _DateCache.value = formatdate(now, usegmt=True).encode("ascii")
        _DateCache.second = now
    return _DateCache.value
