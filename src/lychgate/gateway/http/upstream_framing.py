"""Reading an upstream's responses: llhttp's callbacks, and how each response is framed.

Theory of operation
-------------------
Framing (RFC 9112 section 6.3) is classified once, at the end of the head:

* a response to HEAD, and 1xx, 204 and 304, have no content. llhttp knows the statuses but not
  that the request was HEAD (DESIGN.md, known traps): we end the response at the end of its
  head and start a fresh parser for the next one. Bytes after it mean the upstream is broken:
  the connection is not reused. Nor is it after a 204 or 304 that looks as if content may
  follow (a ``Transfer-Encoding``; on a 204, a ``Content-Length`` other than 0): content sent
  late would be read as the answer to the next request.
* ``Transfer-Encoding: chunked``: chunked; any other transfer coding: refused (502).
* ``Content-Length``: that many bytes.
* neither: the content runs to the end of the connection, which llhttp cannot see; the sink
  gets ``upstream_done`` from :meth:`.UpstreamConnection.connection_lost`.

Framing two parsers could read apart is refused (502) before the head reaches the sink, and
the connection is aborted (RFC 9112 section 6.3: a proxy closes the connection, discards the
response and answers 502). llhttp refuses both ``Content-Length`` and ``Transfer-Encoding``
(section 6.3 item 3 calls that "an error"; nginx refuses it too), several ``Content-Length``
fields or a list, even of one value, and any value but digits. Here, on top of it:
``Transfer-Encoding`` in an HTTP/1.0 response, whatever its status (section 6.1: faulty
framing, and an HTTP/1.0 recipient ignores it); a ``Content-Length`` over 2**63 - 1 (llhttp
takes 64 unsigned bits, most clients a signed 64-bit integer); and a version other than
HTTP/1.0 and 1.1 (llhttp also reads 0.9 and 2.0 status lines, as 1.0) on a 1xx or 101, or
where it could change the framing: with a coding, or without keep-alive. A 0.9 or 2.0 answer
kept alive has a length, and is framed by it (httptools formats the version for each look:
a small GET's answer is not looked at).

Trailer fields are dropped, after counting (:mod:`lychgate.gateway.http.trailers`).

This is the base layer of :class:`.UpstreamConnection`; it also declares the connection's
slots and sets them up, once for both layers. :mod:`.upstream` builds on it: the transport,
what the exchange asks of it, and the end of each response.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from httptools import HttpResponseParser

from lychgate.gateway.http.headers import MEMO_NAME_MAX
from lychgate.gateway.http.timer import Deadline
from lychgate.gateway.http.trailers import TrailerGuard
from lychgate.gateway.http.writer import Batch, Writer

if TYPE_CHECKING:
    from lychgate.gateway.http.upstream import UpstreamConnection

MAX_RESPONSE_HEAD = 64 * 1024  # bytes of fields in an upstream's response head
MAX_RESPONSE_FIELDS = 256
_FRAMING_FIELDS = frozenset({b"content-length", b"transfer-encoding"})
_MAX_LENGTH = 2**63 - 1  # the largest Content-Length a signed 64-bit integer holds
# Lower-cased field names as seen from upstreams: a memo (bounded), not configuration.
_NAMES: dict[bytes, bytes] = {}
_NAMES_MAX = 1024


class Framing(enum.Enum):
    NONE = 0  # no content
    LENGTH = 1  # Content-Length
    CHUNKED = 2  # Transfer-Encoding: chunked
    EOF = 3  # until the upstream closes


class Failure(enum.Enum):
    """Why an upstream's response did not arrive whole; its value is what the logs say.

    The client gets a 504 for ``TIMEOUT`` and a 502 for the others.
    """

    CLOSED = "upstream closed the connection before its response ended"
    MALFORMED = "upstream sent a malformed response"
    HEAD_TOO_LONG = "upstream response head too long"
    TRAILERS_TOO_LONG = "upstream trailer fields too long"
    UNFRAMED = "upstream response under a transfer coding other than chunked alone"
    HTTP10_CODED = "upstream HTTP/1.0 response with Transfer-Encoding (RFC 9112 section 6.1)"
    TIMEOUT = "upstream read timed out"

    @property
    def kind(self) -> str:
        """The failure's word for the metric's ``kind`` label (:mod:`.failures`)."""
        if self is Failure.TIMEOUT:
            return "read_timeout"
        if self is Failure.HTTP10_CODED:
            return "malformed"  # faulty framing: the metric's kinds stay the documented few
        return self.name.lower()


class ResponseSink(Protocol):
    """The exchange that a busy connection reports to."""

    def upstream_interim(self, status: int, headers: list[tuple[bytes, bytes]]) -> None: ...

    def upstream_head(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        framing: Framing,
        length: int | None,
    ) -> None: ...

    def upstream_body(self, data: bytes) -> None: ...

    def upstream_done(self, conn: UpstreamConnection, reusable: bool) -> None: ...

    def upstream_failed(self, failure: Failure, got_bytes: bool) -> None: ...

    def upstream_upgraded(
        self, conn: UpstreamConnection, headers: list[tuple[bytes, bytes]], tail: bytes
    ) -> None: ...

    def upstream_write_paused(self) -> None: ...

    def upstream_write_resumed(self) -> None: ...


def _http_version(parser: HttpResponseParser) -> str:
    """The response's version, "1.1" or "1.0"; refused otherwise: llhttp also reads HTTP/0.9
    and 2.0 status lines."""
    version: str = parser.get_http_version()
    if version not in ("1.1", "1.0"):
        raise Refused(Failure.MALFORMED)
    return version


class Refused(Exception):
    """Raised from a parser callback: the response is one we will not relay (502)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.value)
        self.failure = failure


class ResponseFraming(asyncio.Protocol):
    """The base layer of :class:`.UpstreamConnection`; see the module docstring."""

    # All the slots, for both layers; the layer above declares none of its own.
    __slots__ = (
        "_complete",
        "_deadline",
        "_eof",
        "_forget",
        "_framing",
        "_got_bytes",
        "_head_bytes",
        "_head_request",
        "_head_size",
        "_headers",
        "_in_body",
        "_interim",
        "_keep_alive",
        "_parser",
        "_read_timeout",
        "_reading_paused",
        "_reusable",
        "_sink",
        "_status",
        "_trailers",
        "batch",
        "idle_since",
        "key",
        "out",
        "owner",
        "tcp",
        "transport",
        "write_buffer_high",
    )

    def __init__(self, key: tuple[str, bool], batch: Batch, write_buffer_high: int) -> None:
        self.key = key  # the pool's key for this upstream
        self.batch = batch
        self.write_buffer_high = write_buffer_high
        self.transport: asyncio.Transport | None = None
        # Under an https upstream's TLS transport, the socket's (.upstream_connect): closed
        # once our close_notify has left, not 30 s later (.tls_close). None for http and unix.
        self.tcp: asyncio.Transport | None = None
        self.out: Writer | None = None
        self.idle_since = 0.0
        self.owner: str | None = None  # whose requests it carries (see .pool)
        self._sink: ResponseSink | None = None
        # Made with the connection (a refused connect makes none), dropped with it: the parser
        # holds our bound methods, a reference cycle that only the cyclic GC would free.
        self._parser: HttpResponseParser | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_size = 0  # bytes of field names and values in this head
        self._head_bytes = 0  # bytes read while no final head was complete
        self._status = 0
        self._framing = Framing.NONE
        self._head_request = False
        self._in_body = False  # past the final head: further fields are trailers
        self._interim = False
        self._complete = False
        self._reusable = True
        self._keep_alive = True
        self._got_bytes = False
        self._eof = False  # the upstream ended its side cleanly (FIN; over TLS, close_notify)
        self._read_timeout = 60.0
        self._deadline: Deadline | None = None
        self._reading_paused = False
        self._forget: Callable[[UpstreamConnection], None] | None = None
        self._trailers = TrailerGuard()

    # -- llhttp callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete or self._sink is None:
            self._reusable = False  # a second response to one request: response splitting
        self._headers = []
        self._head_size = 0
        self._in_body = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._in_body:
            # Trailer fields: dropped (RFC 9110 section 6.5.1 lets a proxy discard them),
            # once counted (lychgate.gateway.http.trailers).
            if self._trailers.field(len(name) + len(value), MAX_RESPONSE_HEAD):
                raise Refused(Failure.TRAILERS_TOO_LONG)
            return
        headers = self._headers
        self._head_size += len(name) + len(value)
        if self._head_size > MAX_RESPONSE_HEAD or len(headers) >= MAX_RESPONSE_FIELDS:
            raise Refused(Failure.HEAD_TOO_LONG)
        lowered = _NAMES.get(name)
        if lowered is None:
            lowered = name.lower()
            if len(_NAMES) < _NAMES_MAX and len(name) <= MEMO_NAME_MAX:
                _NAMES[name] = lowered
        headers.append((lowered, value))

    def on_headers_complete(self) -> None:
        sink = self._sink
        if sink is None or self._complete:
            return
        parser = self._parser
        assert parser is not None  # it is calling
        status = parser.get_status_code()
        headers = self._headers
        if not 100 <= status <= 599:
            # llhttp reads any three digits; RFC 9110 section 15 gives 100 to 599 a meaning,
            # and a client or cache may take another apart differently.
            raise Refused(Failure.MALFORMED)
        if status < 200:
            _http_version(parser)  # refused unless HTTP/1.x
        if status < 200 and status != 101:
            # A 1xx ends at its head (RFC 9110 section 15.2), but llhttp reads content for one
            # other than 100, 102 and 103 that states a length or coding: that content would
            # reach the client unframed, ahead of the real response. Refused instead.
            if any(name in _FRAMING_FIELDS for name, _ in headers):
                raise Refused(Failure.MALFORMED)
            self._interim = True  # llhttp completes it as a message of its own
            sink.upstream_interim(status, headers)
            return
        self._status = status
        if status == 101:
            return  # HttpParserUpgrade follows; a 101 without Upgrade fails the parse instead
        keep_alive = self._keep_alive = parser.should_keep_alive()
        self._in_body = True
        length: int | None = None
        coding: bytes | None = None
        for name, value in headers:
            if name == b"content-length":
                length = int(value)  # llhttp accepted it: digits only, no duplicates
                if length > _MAX_LENGTH:
                    # Passed on as it is, it would be read by a client that holds lengths in
                    # a signed 64-bit integer (Go, curl, Chromium) as an error or as none.
                    raise Refused(Failure.MALFORMED)
            elif name == b"transfer-encoding":
                coding = value if coding is None else coding + b", " + value
        if coding is not None or not keep_alive:
            # The version is read (at a cost: httptools formats it) only where it could
            # change the framing. An HTTP/1.1 keep-alive answer is the common case; llhttp
            # reads 0.9 and 2.0 as 1.0, which is kept alive only with a length, unambiguous.
            version = _http_version(parser)
            if version == "1.0" and coding is not None:
                # RFC 9112 section 6.1: the framing is faulty, even beside a Content-Length
                # (which llhttp refuses anyway) and on a response without content. llhttp
                # would undo a chunked coding that an HTTP/1.0 recipient ignores.
                raise Refused(Failure.HTTP10_CODED)
        if self._head_request or status in (204, 304):
            framing = Framing.NONE
            self._complete = True  # llhttp would wait for content a HEAD response never has
            if coding is not None or (status == 204 and length):
                # A 204 may state no framing (RFC 9110 section 8.6, RFC 9112 section 6.1), and
                # a 304's coding only says what a 200 would have had; an app that frames either
                # may send the content too (a lone "0" chunk is a classic), later than this
                # read: the next request's answer would begin with it. A 304's Content-Length
                # is the representation's (RFC 9110 section 8.6): common, and no sign of that.
                self._reusable = False
        elif coding is not None:
            if coding != b"chunked":
                codings = [c.strip().lower() for c in coding.split(b",")]
                if b"chunked" in codings[:-1]:
                    # Chunked twice (RFC 9112 section 6.1 forbids it): llhttp undoes it once,
                    # and the client would be told it is chunked twice while chunked once.
                    raise Refused(Failure.MALFORMED)
                if codings != [b"chunked"]:
                    # A coding we would have to undo: none but chunked may be sent to a
                    # client that did not ask for it in TE (RFC 9112 section 7.4), which the
                    # gateway never forwards, and no browser undoes one; an HTTP/1.0 client
                    # would get the coded bytes unlabelled. nginx refuses them too.
                    raise Refused(Failure.UNFRAMED)
            framing = Framing.CHUNKED
        elif length is not None:
            framing = Framing.LENGTH
        else:
            framing = Framing.EOF
            self._keep_alive = False
        self._framing = framing
        sink.upstream_head(status, headers, framing, length)

    def on_chunk_header(self) -> None:
        self._trailers.chunk_header()

    def on_body(self, body: bytes) -> None:
        self._trailers.after_chunk = False
        sink = self._sink
        if self._complete or sink is None:
            self._reusable = False  # content after a HEAD response's head
            return
        sink.upstream_body(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if self._status != 101:
            self._complete = True
