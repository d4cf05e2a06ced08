"""The client side of the engine: one asyncio Protocol per accepted connection.

Theory of operation
-------------------
Bytes from the client go through llhttp (``HttpRequestParser``), strictly: no lenient flag is
ever set (DESIGN.md, known traps). Each complete head becomes a :class:`.Request` at the end of
a queue, and the requests are answered in turn (:mod:`.turns`). Dispatch happens after
``feed_data`` returns, never inside a parser callback.

Content follows the request being parsed: to the active request's sink (the forwarding
exchange, which streams it upstream), or buffered on a queued request, or counted and dropped
after a local answer. Reading stops (``pause_reading``) for any of the reasons in
:mod:`.request`: the upstream is full, too much is parsed ahead, or HTTP is over.

An Upgrade request stops the parser (``HttpParserUpgrade``): the bytes after the head are held
for the tunnel, and on the upstream's 101 the transport is handed to :mod:`.tunnel`.

:class:`ClientConnection` is built in three layers, each a base class of the next, so that a
call costs what it did in one class: :mod:`.ending` declares what a connection holds and how
it ends (errors, lingering, closing, the tunnel); :mod:`.turns` answers the requests in turn
and runs the timers; this module reads and parses.
"""

from __future__ import annotations

import asyncio
from typing import Final, cast

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser

from lychgate.gateway.http.clientcap import peer_ip
from lychgate.gateway.http.clientcap import refusal as client_refusal
from lychgate.gateway.http.ending import CLIENT_CLOSED, NO_FIELDS
from lychgate.gateway.http.headers import MEMO_NAME_MAX, http_date
from lychgate.gateway.http.parse import is_websocket_handshake, make_request
from lychgate.gateway.http.request import PAUSE_BUFFER, PAUSE_HOLD, PIECE_COST, Responder
from lychgate.gateway.http.tls import sni_of
from lychgate.gateway.http.turns import ConnectionTurns
from lychgate.gateway.http.writer import Writer

__all__ = ["CLIENT_CLOSED", "ClientConnection", "Responder"]

# A head still arriving is bounded by its raw bytes, which hold more than the measure its
# fields are held to (target, and name + value + 4 per field): the method, the version, the
# line ends and spaces around values. This much more is let in before the raw bound refuses,
# so that a head within the limit is never refused for the way TCP split it.
_RAW_HEAD_SLACK: Final = 256
_TOO_MANY_CONNECTIONS: Final = "too many connections from this client"

# Decoded, lower-cased field names as seen on the wire: a memo (bounded), not configuration.
_NAMES: dict[bytes, str] = {}
_NAMES_MAX = 1024


class _Stop(Exception):
    """Raised from a parser callback to stop llhttp; the reason is already recorded."""


class ClientConnection(ConnectionTurns):
    """One client connection; see the module docstrings here, in .turns and in .ending."""

    __slots__ = ()  # declared, with the rest of the state, by ConnectionEnding (.ending)

    # -- set up by the listener, before the first byte ------------------------------------

    def accepted_from(self, ip: str, when: float) -> None:
        """Accepted at ``when`` (the loop's clock) for the client ``ip``, before a TLS handshake
        or a PROXY header: the first head gets what that left of ``header_timeout``. Call
        before :meth:`connection_made`."""
        self._client_ip = ip
        self._idle_delay = max(0.0, when + self._limits.header_timeout - self._loop.time())

    def adopt_client(self, key: str) -> None:
        """The client's slot was taken when its socket was accepted (:mod:`.tls_accept`): give
        that one back when done, and take none in :meth:`connection_made`."""
        self._client_key = key

    def over_tls(self, tcp: asyncio.Transport) -> None:
        """The connection's transport is TLS on ``tcp`` (:mod:`.tls_accept`): closed as soon as
        our last bytes have left, without waiting for the client's close_notify (.tls_close)."""
        self._tcp = tcp

    # -- transport callbacks --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        ctx = self._ctx
        self._transport = transport
        self.out = Writer(transport, ctx.batch)
        transport.set_write_buffer_limits(high=self._limits.write_buffer_high)
        if not self._client_ip:  # else told at accept (TLS, a PROXY header)
            self._client_ip = peer_ip(transport)
        clients = ctx.clients
        if clients is not None and self._client_key is None:  # else taken at accept (TLS)
            key = clients.take(self._client_ip)
            if key is None:  # this client holds too many already: say so, read nothing
                rid = ctx.ids.new()
                transport.write(client_refusal(http_date(), rid))
                transport.close()
                hook = ctx.on_response
                if hook is not None:  # a response too: logged and counted like any other
                    head = self._headless()
                    hook(head, None, 503, 0.0, _TOO_MANY_CONNECTIONS, None, rid)
                return
            self._client_key = key
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self._sni = sni_of(ssl_object)
        ctx.connections.add(self)
        ctx.stats.connections_total += 1
        if ctx.draining:
            transport.close()
            return
        self._deadline.set(self._idle_delay)  # header_timeout, or what the handshake left of it
        self._head_timed = True  # the first head's deadline, from the accept (see .turns)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:
            if not self._shed:  # HTTP is over
                self._unparsed(data)
                return
            parser = self._parser = HttpRequestParser(self)  # the first bytes, or after a wait
            self._shed = False
        if self._in_head or self._parsing is None:
            self._head_raw += len(data)
            in_trailers = False
        else:
            in_trailers = self._trailers.before_read()
        batch = self._batch
        batch.depth += 1
        try:
            try:
                parser.feed_data(data)
            except HttpParserUpgrade as exc:
                tail = data[exc.args[0] :]
                upgrading = self._queue[-1].head if self._queue else None  # the head just parsed
                if upgrading is None or is_websocket_handshake(upgrading):
                    self._tail = tail
                    self._halt()
                    # Read on while the app answers: what the client sends waits in _tail
                    # (bounded), and a client that leaves is seen at once. Paused, its reset
                    # went unseen until the answer, which was then recorded as delivered.
                    self.resume_reading(PAUSE_HOLD)
                else:
                    # Not a tunnel we make: the request is a plain one (it has no content:
                    # parse.py refuses an Upgrade with content), and what follows is HTTP.
                    self._queue[-1].upgrade = False
                    self._parser = HttpRequestParser(self)
                    if tail:
                        self.data_received(tail)
            except HttpParserError as exc:
                if self._parser is not None:  # not stopped on purpose
                    if self._error is None:
                        self._reject(400, f"malformed request: {exc}")  # llhttp's own words
                    else:
                        self._reject(self._error, self._why)
            else:
                if self._in_head and self._head_raw > self._max_head + _RAW_HEAD_SLACK:
                    self._reject(431, "request head too large")  # at most one read beyond
                elif in_trailers and self._trailers.after_read(
                    len(data), self._limits.max_header_bytes
                ):
                    self._reject(431, "trailer fields too large")  # one endless trailer line
            if self._active is None:
                self._start_next()  # also times a partial head (see _wait_for_client)
        finally:
            batch.depth -= 1
            if not batch.depth and batch.dirty:
                batch.flush_all()

    def _forget(self) -> None:
        """Off the server's list: the connection is lost, or its transport is a tunnel's now."""
        ctx = self._ctx
        ctx.connections.discard(self)
        if not ctx.connections:
            ctx.idle.set()

    # -- llhttp callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._parser is None:
            raise _Stop
        self._url = b""
        self._headers = []
        self._head_size = 0
        self._in_head = True

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)
        if len(self._url) > self._max_head:
            self._error, self._why = 414, "request-target too long"
            raise _Stop

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value) + 4
        if not self._in_head:  # a trailer field of chunked content: counted, then dropped
            if self._trailers.field(size, self._limits.max_header_bytes):
                self._error, self._why = 431, "trailer fields too large"
                raise _Stop
            return
        self._head_size += size
        if self._head_size > self._max_head:
            self._error, self._why = 431, "request head too large"
            raise _Stop
        # The field count is checked once, in on_headers_complete: the size check above
        # already bounds the list (every field counts at least four bytes).
        key = _NAMES.get(name)
        if key is None:
            key = name.decode("latin-1").lower()
            if len(_NAMES) < _NAMES_MAX and len(name) <= MEMO_NAME_MAX:
                _NAMES[name] = key
        self._headers.append((key, value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        parser = self._parser
        if parser is None:
            raise _Stop
        self._in_head = False
        self._head_raw = 0
        self._head_timed = False
        if len(self._headers) > self._max_fields:
            self._error, self._why = 431, "too many header fields"
            raise _Stop
        req = make_request(
            parser,
            self._url,
            self._headers,
            self._client_ip,
            self._scheme,
            self._sni,
            self._ctx.ids,
        )
        self._url = b""  # the head lives on in req: an idle connection keeps none of it
        self._headers = NO_FIELDS
        self._ahead_bytes += self._head_size
        if (
            len(self._queue) >= self._max_queued or self._ahead_bytes > self._ahead_max
        ) and req.error is None:
            # One read can hold thousands of tiny requests, or a dozen of the largest heads,
            # all parsed before reading pauses: answer those before this one, refuse it, and
            # close (the client may retry them).
            req.error, req.why = 429, "too many pipelined requests"
        self._queue.append(req)
        if req.error is not None:
            req.body_done = True  # its content, if any, is never read
            self._halt()
            raise _Stop
        self._parsing = req
        if len(self._queue) > self._limits.max_pipelined or self._ahead_bytes > self._ahead_pause:
            self.pause_reading(PAUSE_BUFFER)

    def on_chunk_header(self) -> None:
        self._trailers.chunk_header()

    def on_body(self, body: bytes) -> None:
        self._trailers.after_chunk = False
        req = self._parsing
        if req is None or self._parser is None:
            raise _Stop
        req.received += len(body)
        sink = req.sink
        if sink is not None:
            sink.request_body(body)
        elif req.discard:
            if req.received > self._limits.max_drain_bytes:
                self._halt()
                self._unread = True
                self._closing = True
                if self._active is None:
                    self._close_after(req)
                raise _Stop
        else:
            req.buffer.append(body)
            req.buffered += len(body) + PIECE_COST
            if req.buffered > self._limits.write_buffer_high:
                self.pause_reading(PAUSE_BUFFER)

    def on_message_complete(self) -> None:
        req = self._parsing
        if req is None:
            return
        self._parsing = None
        req.body_done = True
        if req.sink is not None:
            req.sink.request_end()
        if self._closing and self._parser is not None:
            self._halt()  # nothing after this request will be answered: read no further
