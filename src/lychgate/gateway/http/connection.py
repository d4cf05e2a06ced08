"""The client side of the engine: one asyncio Protocol per accepted connection.

Theory of operation
-------------------
Bytes from the client go through llhttp (``HttpRequestParser``), strictly: no lenient flag is
ever set (DESIGN.md, known traps). Each complete head becomes a :class:`.Request` at the end of
a queue. Exactly one request is *active*: the handler decides it, and it is answered. The next
is dispatched only when the active response has been handed to the transport, so responses go
out strictly in request order however far the client pipelines (RFC 9112 section 9.3.2).
Dispatch happens after ``feed_data`` returns, never inside a parser callback.

Content follows the request being parsed: to the active request's sink (the forwarding
exchange, which streams it upstream), or buffered on a queued request, or counted and dropped
after a local answer. Reading stops (``pause_reading``) for any of the reasons in
:mod:`.request`: the upstream is full, too much is parsed ahead, or HTTP is over.

Errors are answered in turn: a parse error is queued as an error "request", so earlier
pipelined requests are answered first, then the error page, then the connection closes. After
an error or an unread body the connection *lingers*: it half-closes, reads and drops what the
client still sends for ``linger_timeout``, then closes, so that the client reads the error
instead of a reset.

One :class:`.Deadline` runs the timers: while nothing is active, a partial head must complete
within ``header_timeout`` of its first byte (408, slowloris) and a keep-alive connection may
stay idle for ``idle_timeout``. The first head is bounded from the accept instead: it must be
complete within ``header_timeout`` of it, TLS handshake included (:meth:`accepted_at`), so
neither waiting before its first byte nor a slow handshake adds a second ``header_timeout``,
and bytes that start no head (llhttp skips blank lines before a request) do not move it.
While a request is active, the upstream's read timeout governs instead.

An Upgrade request stops the parser (``HttpParserUpgrade``): the bytes after the head are held
for the tunnel, and on the upstream's 101 the transport is handed to :mod:`.tunnel`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from time import perf_counter
from typing import Final, Protocol, cast

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser

from lychgate.errors import UsageError
from lychgate.gateway.http.clientcap import peer_ip
from lychgate.gateway.http.clientcap import refusal as client_refusal
from lychgate.gateway.http.context import ServerContext
from lychgate.gateway.http.errors import error_page
from lychgate.gateway.http.headers import MEMO_NAME_MAX, http_date, local_head
from lychgate.gateway.http.parse import is_websocket_handshake, make_request
from lychgate.gateway.http.proxy import Exchange
from lychgate.gateway.http.request import PAUSE_BUFFER, PAUSE_HOLD, PIECE_COST, Request
from lychgate.gateway.http.timer import Deadline
from lychgate.gateway.http.tls import sni_of
from lychgate.gateway.http.trailers import TrailerGuard
from lychgate.gateway.http.tunnel import Tunnel
from lychgate.gateway.http.unsent import StallWatch, reset_on_close
from lychgate.gateway.http.writer import Writer
from lychgate.gateway.types import Forward, Local, Principal, RequestHead, Respond
from lychgate.ids import AppSlug

log = logging.getLogger(__name__)
# A head still arriving is bounded by its raw bytes, which hold more than the measure its
# fields are held to (target, and name + value + 4 per field): the method, the version, the
# line ends and spaces around values. This much more is let in before the raw bound refuses,
# so that a head within the limit is never refused for the way TCP split it.
_RAW_HEAD_SLACK: Final = 256
_TOO_MANY_CONNECTIONS: Final = "too many connections from this client"

_NO_CONTENT = frozenset({204, 304})
_MAX_TUNNEL_EARLY = 64 * 1024  # client bytes held while an upgrade is being answered
_LINGER_MAX = 1024 * 1024  # bytes dropped while lingering before we just close
# Decoded, lower-cased field names as seen on the wire: a memo (bounded), not configuration.
_NAMES: dict[bytes, str] = {}
_NAMES_MAX = 1024
# The fields of no head. Never appended to: on_header appends only while _in_head, and
# on_message_begin sets _in_head together with a fresh list.
_NO_FIELDS: list[tuple[str, str]] = []


#: Requests parsed ahead of their turn stop reading at ``max_pipelined``; one read can carry more
#: than that, and beyond this many times it the connection is closed (a 429 for the next).
PARSED_AHEAD: Final = 4


class _Stop(Exception):
    """Raised from a parser callback to stop llhttp; the reason is already recorded."""


class Responder(Protocol):
    @property
    def app(self) -> AppSlug | None:
        """The app the request is forwarded to (None: the control plane)."""
        ...

    @property
    def status(self) -> int:
        """The status of the response sent so far (0: none of it yet)."""
        ...

    def client_write_paused(self) -> None: ...

    def client_write_resumed(self) -> None: ...

    def client_lost(self) -> tuple[AppSlug | None, int]:
        """The client went away; returns the app and the status sent so far (0: none)."""
        ...


# nginx's word for a request whose client closed the connection before its answer ended.
CLIENT_CLOSED: Final = 499
_CLIENT_LEFT: Final = "client closed the connection"


class ClientConnection(asyncio.Protocol):
    """One client connection; see the module docstring."""

    # Slots, not a __dict__: an idle keep-alive connection should cost as little as possible.
    __slots__ = (
        "_active",
        "_batch",
        "_client_ip",
        "_client_key",
        "_closing",
        "_ctx",
        "_cut_why",
        "_deadline",
        "_dispatching",
        "_eof",
        "_error",
        "_head_raw",
        "_head_size",
        "_head_timed",
        "_headers",
        "_idle_app",
        "_idle_delay",
        "_in_head",
        "_limits",
        "_lingered",
        "_lingering",
        "_loop",
        "_max_fields",
        "_max_head",
        "_max_queued",
        "_parser",
        "_parsing",
        "_paused",
        "_queue",
        "_responder",
        "_scheme",
        "_sni",
        "_stall",
        "_tail",
        "_task",
        "_trailers",
        "_transport",
        "_unread",
        "_url",
        "_why",
        "_write_paused",
        "out",
    )

    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx
        self._limits = ctx.limits
        self._max_head = ctx.limits.max_header_bytes
        self._max_fields = ctx.limits.max_headers
        self._max_queued = ctx.limits.max_pipelined * PARSED_AHEAD
        self._scheme = ctx.scheme
        self._batch = ctx.batch
        self._loop = ctx.loop
        self._parser: HttpRequestParser | None = HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self.out: Writer
        self._client_ip = ""
        self._client_key: str | None = None  # what ctx.clients counts this connection as
        self._sni: str | None = None
        # the head being parsed
        self._url = b""
        self._headers = _NO_FIELDS
        self._head_size = 0
        self._head_raw = 0
        self._in_head = False
        self._head_timed = False
        self._trailers = TrailerGuard()
        self._error: int | None = None  # status recorded by a callback before _Stop
        self._why = ""  # and why, for the access log
        # requests
        self._parsing: Request | None = None
        # A list, not a deque: at most max_pipelined requests wait, and an empty deque costs a
        # block of 64 slots on every idle connection.
        self._queue: list[Request] = []
        self._active: Request | None = None
        self._responder: Responder | None = None
        self._task: asyncio.Future[Respond] | None = None
        self._dispatching = False
        # connection state
        self._paused = 0
        self._write_paused = False
        self._stall: StallWatch | None = None  # while writes are paused: is the client reading?
        self._closing = False  # answer nothing more after the active request
        self._cut_why = ""  # why the gateway cut the connection, if it did (abort)
        self._eof = False  # the client half-closed: answer what is queued, then close
        self._lingering = False
        self._lingered = 0
        self._unread = False  # we stopped parsing with client bytes possibly still coming
        self._tail: bytes | None = None  # client bytes after an Upgrade head
        self._idle_delay = self._limits.header_timeout
        self._idle_app: AppSlug | None = None  # whose keep-alive wait _idle_delay is
        self._deadline = Deadline(self._loop, self._on_timeout)

    # -- transport callbacks --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        ctx = self._ctx
        self._transport = transport
        self.out = Writer(transport, ctx.batch)
        transport.set_write_buffer_limits(high=self._limits.write_buffer_high)
        self._client_ip = peer_ip(transport)
        clients = ctx.clients
        if clients is not None and self._client_key is None:  # else taken at accept (TLS)
            key = clients.take(self._client_ip)
            if key is None:  # this client holds too many already: say so, read nothing
                transport.write(client_refusal(http_date()))
                transport.close()
                hook = ctx.on_response
                if hook is not None:  # a response too: logged and counted like any other
                    hook(self._headless(), None, 503, 0.0, _TOO_MANY_CONNECTIONS, None)
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
        self._head_timed = True  # the first head's deadline, from the accept (module docstring)

    def connection_lost(self, exc: Exception | None) -> None:
        ctx = self._ctx
        self._transport = None
        self._parser = None
        self._deadline.cancel()
        self._give_back_client()
        ctx.connections.discard(self)
        if not ctx.connections:
            ctx.idle.set()
        responder = self._responder
        self._responder = None
        app, status = None, 0
        if responder is not None:
            app, status = responder.client_lost()
        if self._task is not None:
            self._task.cancel()
            self._task = None
        active = self._active
        if active is not None:  # its answer never ended: recorded all the same, as it stands
            why = self._cut_why
            if why:  # the gateway's own cut; 503 if no answer had begun
                self._record(active, status or 503, app, why)
            else:
                self._record(active, status or CLIENT_CLOSED, app, _CLIENT_LEFT)
        self._queue.clear()

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:
            self._unparsed(data)
            return
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

    def eof_received(self) -> bool:
        if self._parsing is not None:
            self.abort()  # the client gave up in the middle of a request's content
            return False
        if self._lingering or self._in_head:
            self._close_now()
            return False
        self._eof = True
        self._halt()
        if self._active is None and not self._queue:
            self._close_now()
            return False
        return self._transport is not None and self._transport.get_extra_info("sslcontext") is None

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._transport is not None:  # slow-read: the client must keep reading (.unsent)
            watch = StallWatch(self._transport, self._limits.send_timeout, self._loop.time())
            self._stall = watch
            self._deadline.set(watch.every)
        if self._responder is not None:
            self._responder.client_write_paused()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._stall = None
        if self._active is not None:
            self._deadline.clear()
        elif self._queue:
            self._start_next()  # answers held back while the client was not reading
        elif not self._lingering:
            self._wait_for_client()
        if self._responder is not None:
            self._responder.client_write_resumed()

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
            parser, self._url, self._headers, self._client_ip, self._scheme, self._sni
        )
        self._url = b""  # the head lives on in req: an idle connection keeps none of it
        self._headers = _NO_FIELDS
        if len(self._queue) >= self._max_queued and req.error is None:
            # One read can hold thousands of tiny requests, all parsed before reading pauses:
            # answer those before this one, refuse it, and close (the client may retry them).
            req.error, req.why = 429, "too many pipelined requests"
        self._queue.append(req)
        if req.error is not None:
            req.body_done = True  # its content, if any, is never read
            self._halt()
            raise _Stop
        self._parsing = req
        if len(self._queue) > self._limits.max_pipelined:
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

    # -- the queue ------------------------------------------------------------------------

    def _start_next(self) -> None:
        if self._dispatching or self._transport is None:
            return
        self._dispatching = True
        try:
            # No request is started while the client is not reading our answers: its queue
            # then fills to max_pipelined and reading stops, instead of answers piling up in
            # the write buffer (a client pipelining and never reading). The send timeout
            # that pause_writing set stays the deadline.
            paused = self._write_paused
            while self._active is None and self._queue and not self._closing and not paused:
                self._dispatch(self._queue.pop(0))
                paused = self._write_paused
            if self._active is None and not self._lingering:
                if self._closing or (self._eof and not self._queue):
                    self._close_now()
                elif not self._queue and not paused:
                    self._wait_for_client()
            if self._paused & PAUSE_BUFFER:
                parsing = self._parsing
                if len(self._queue) <= self._limits.max_pipelined and (
                    parsing is None or parsing.buffered <= self._limits.write_buffer_high
                ):
                    self.resume_reading(PAUSE_BUFFER)
        finally:
            self._dispatching = False

    def _dispatch(self, req: Request) -> None:
        ctx = self._ctx
        self._active = req
        ctx.stats.requests_total += 1
        ctx.stats.requests_active += 1
        req.started = perf_counter()
        if not self._write_paused:
            self._deadline.clear()
        self._head_timed = False
        if req.error is not None or req.head is None:
            self.fail(req, req.error or 400, None, True, req.why)
            return
        try:
            decision: object = ctx.handler(req.head)  # checked below: a bug must not crash us
        except Exception:
            log.exception("the request handler raised; answering 500")
            self.fail(req, 500, None, self.must_close(req), "request handler raised")
            return
        if isinstance(decision, Forward):
            req.who = decision.who
            exchange = Exchange(ctx, self, req, decision)
            self._responder = exchange
            exchange.start()
        elif isinstance(decision, Respond):
            self._respond(req, decision)
        elif isinstance(decision, Local):
            req.discard = True
            req.take_buffer()
            task = asyncio.ensure_future(decision.endpoint(req.head), loop=self._loop)
            self._task = task
            task.add_done_callback(self._local_done)
        else:
            log.error("the request handler returned %r; answering 500", type(decision))
            self.fail(req, 500, None, self.must_close(req), "request handler answered nothing")

    def _local_done(self, task: asyncio.Future[Respond]) -> None:
        if self._task is not task:
            return
        self._task = None
        req = self._active
        if task.cancelled() or req is None or self._transport is None:
            return
        exc = task.exception()
        result = None if exc is not None else task.result()
        if not isinstance(result, Respond):
            log.error("a local endpoint failed; answering 500", exc_info=exc)
            self.fail(req, 500, None, self.must_close(req), "gateway endpoint failed")
            return
        self._respond(req, result)

    def _respond(self, req: Request, answer: Respond) -> None:
        assert req.head is not None
        req.discard = True
        req.take_buffer()
        req.who = answer.who
        close = self.must_close(req)
        status = answer.status
        body = answer.body
        tail = b"" if status in _NO_CONTENT else b"content-length: %d\r\n" % len(body)
        tail += self._ctx.hsts
        if close:
            tail += b"connection: close\r\n"
        elif req.head.http_version == "1.0":
            tail += b"connection: keep-alive\r\n"
        try:
            head = local_head(status, answer.headers, tail)
        except UsageError:
            log.exception("refusing to send a malformed local answer")
            self.fail(req, 500, None, close, "malformed local answer")
            return
        if body and req.head.method != "HEAD" and status not in _NO_CONTENT:
            head += body
        self.out.write(head)
        self.finish(req, status, answer.app, close, answer.reason)

    # -- used by the exchange -------------------------------------------------------------

    @property
    def write_paused(self) -> bool:
        return self._write_paused

    def must_close(self, req: Request) -> bool:
        """Whether the response to ``req`` must end the connection (decided before its head)."""
        if not req.keep_alive or req.upgrade or self._closing or self._ctx.draining:
            return True
        if req.body_done:
            return False
        if req.chunked or (req.expect_continue and not req.continue_sent):
            return True  # we cannot tell how much would follow, or whether it will
        remaining = (req.content_length or 0) - req.received
        return remaining > self._limits.max_drain_bytes

    def finish(
        self,
        req: Request,
        status: int,
        app: AppSlug | None,
        close: bool,
        reason: str = "",
        idle: float | None = None,
    ) -> None:
        """The response to the active request has been written in full. ``idle`` is how long
        to wait for the next request (the app's own ``idle_timeout``; None: the listener's)."""
        self._record(req, status, app, reason)
        self._idle_delay = self._limits.idle_timeout if idle is None else idle
        self._idle_app = app
        req.sink = None  # also breaks the request <-> exchange cycle: freed without the GC
        if self._parsing is req:
            req.discard = True
            req.take_buffer()
        if close or self._closing:
            self._close_after(req)
            return
        if self._queue or self._eof or self._paused & PAUSE_BUFFER:
            self._start_next()
        elif not self._dispatching:
            self._wait_for_client()

    def _record(self, req: Request, status: int, app: AppSlug | None, reason: str) -> None:
        """The active request is over: count it, and tell the response hook."""
        ctx = self._ctx
        self._active = None
        self._responder = None
        ctx.stats.requests_active -= 1
        hook = ctx.on_response
        if hook is not None:
            head = req.head
            if head is None:  # refused before its head was whole: the record names the client
                head = self._headless()
            hook(head, app, status, perf_counter() - req.started, reason, req.who)

    def _headless(self) -> RequestHead:
        """The head of a record for an answer given before any head was read: the client."""
        return RequestHead("", "", "", "", (), "", self._client_ip, self._scheme, self._sni)

    def cut(self, req: Request, status: int, app: AppSlug | None, reason: str) -> None:
        """The response to the active request, ``status`` sent, could not be finished (the
        upstream's ended early): record it, then reset the connection."""
        self._record(req, status, app, reason)
        self.abort()

    def fail(
        self,
        req: Request,
        status: int,
        app: AppSlug | None,
        close: bool,
        reason: str = "",
        idle: float | None = None,
    ) -> None:
        """Answer the active request with an error page (its head alone for a HEAD)."""
        head = req.head
        head_only = req.head_only if head is None else head.method == "HEAD"
        # An HTTP/1.0 client keeps its connection only when told so; an error ends it.
        close = close or head is None or head.http_version == "1.0"
        page = error_page(
            status, http_date(), close=close, head_only=head_only, extra=self._ctx.hsts
        )
        self.out.write(page)
        self.finish(req, status, app, close, reason, idle)

    def pause_reading(self, reason: int) -> None:
        transport = self._transport
        if not self._paused and transport is not None and not transport.is_closing():
            transport.pause_reading()
        self._paused |= reason

    def resume_reading(self, reason: int) -> None:
        if self._paused & reason:
            self._paused &= ~reason
            transport = self._transport
            if not self._paused and transport is not None and not transport.is_closing():
                transport.resume_reading()

    def forwarded(self) -> tuple[AppSlug | None, Principal | None, bool] | None:
        """The app and the signed-in user the active request is being forwarded for (its
        response may be a stream that runs for hours), and whether it asks for a tunnel (a
        WebSocket handshake the app is still answering); None when none is."""
        req, exchange = self._active, self._responder
        if req is None or exchange is None:
            return None
        return exchange.app, req.who, req.upgrade

    def give_up(self, why: str) -> None:
        """The gateway stops waiting for the active request's answer (it is stopping): when
        none of the answer was sent, the client gets a 503 page and the connection closes;
        else it is cut, since what was sent must not look like a whole message. The record
        says which: a 503 used to be recorded for a client that got only a reset."""
        req, responder = self._active, self._responder
        if req is None or self._transport is None or (responder is not None and responder.status):
            self.abort(why)
            return
        app = None
        if responder is not None:
            self._responder = None
            app, _ = responder.client_lost()  # lets go of the upstream connection
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.fail(req, 503, app, close=True, reason=why)

    def abort(self, why: str = "") -> None:
        """Cut the connection: what was sent must not look like a complete message. ``why``
        is the gateway's reason, when the cut is its own (the record of a request it ends
        says so rather than that the client left)."""
        if self._transport is not None:
            self._cut_why = why
            self.out.abort()

    def into_tunnel(
        self,
        req: Request,
        app: AppSlug | None,
        upstream: asyncio.Transport,
        to_client: bytes,
        who: Principal | None,
    ) -> None:
        """The upstream answered 101: hand both transports to a tunnel."""
        transport = self._transport
        assert transport is not None
        self.out.flush()  # the 101 head goes before any tunnel byte
        to_upstream = self._tail or b""
        self._tail = None
        self.finish_for_tunnel(req, app)
        session_id = None if who is None else who.session_id
        tunnel = Tunnel(
            self._ctx.tunnels,
            session_id,
            transport,
            upstream,
            app=app,
            who=who,
            head=req.head,
            on_end=self._ctx.on_tunnel_end,
        )
        tunnel.start(to_upstream, to_client)

    def finish_for_tunnel(self, req: Request, app: AppSlug | None) -> None:
        ctx = self._ctx
        self._record(req, 101, app, "")
        self._deadline.cancel()
        self._transport = None  # the tunnel owns it now; this object is done
        self._parser = None
        self._give_back_client()  # tunnels are not counted (see .clientcap)
        ctx.connections.discard(self)
        if not ctx.connections:
            ctx.idle.set()

    def adopt_client(self, key: str) -> None:
        """The client's slot was taken when its socket was accepted (:mod:`.tls_accept`): give
        that one back when done, and take none in :meth:`connection_made`."""
        self._client_key = key

    def accepted_at(self, when: float) -> None:
        """The socket was accepted at ``when`` (the loop's clock), before a TLS handshake
        (:mod:`.tls_accept`): the first head gets what that left of ``header_timeout``. Call
        before :meth:`connection_made`."""
        self._idle_delay = max(0.0, when + self._limits.header_timeout - self._loop.time())

    def _give_back_client(self) -> None:
        key, clients = self._client_key, self._ctx.clients
        if key is not None and clients is not None:
            self._client_key = None
            clients.give_back(key)

    # -- closing --------------------------------------------------------------------------

    def shutdown(self) -> bool:
        """Graceful shutdown: finish the active response, then close; close idle ones now.
        Returns whether it has a response to finish.

        An active request whose content is still arriving is read to its end (an upload
        cannot finish otherwise), and parsing stops there (:meth:`on_message_complete`)."""
        self._closing = True
        parsing = self._parsing
        if parsing is None or parsing is not self._active:
            self._halt()
        if self._active is None:
            self._close_now()
            return False
        return True

    def _halt(self) -> None:
        """HTTP is over on this connection: parse nothing more."""
        self._parser = None
        self._in_head = False
        self.pause_reading(PAUSE_HOLD)

    def _reject(self, status: int, why: str) -> None:
        """A parse error or limit: answer ``status`` in turn, then close."""
        head_only = self._asked_head()  # before _halt lets go of the parser
        self._halt()
        self._unread = True
        req = self._parsing
        self._parsing = None
        if req is None:
            self._queue.append(Request(None, error=status, why=why, head_only=head_only))
        elif req.sink is not None:
            req.sink.request_failed(status, why)
        elif req is self._active or req.discard:
            self._closing = True  # its answer is under way or sent: close after it
            if self._active is None:
                self._close_after(req)
        else:
            req.error, req.why = status, why  # still queued: answered with the error page

    def _asked_head(self) -> bool:
        """Whether the request being parsed is a HEAD, as far as llhttp read it."""
        parser = self._parser
        if parser is None or not self._url:  # the method is read before the target
            return False
        try:
            return parser.get_method() == b"HEAD"
        except Exception:  # llhttp read no method: not a HEAD
            return False

    def _close_after(self, req: Request) -> None:
        """Close after the last response: at once, or lingering when the client may still send."""
        self._closing = True
        transport = self._transport
        if transport is None:
            return
        if req.body_done and req.error is None and not self._unread and not self._tail:
            self._close_now()
            return
        self._halt()
        self._lingering = True
        self.out.flush()
        if transport.can_write_eof():
            transport.write_eof()  # RFC 9112 section 9.6: half-close, then read until EOF
        self._paused = 0
        transport.resume_reading()
        self._deadline.set(self._limits.linger_timeout)

    def _close_now(self) -> None:
        self._closing = True
        self._parser = None
        if self._transport is not None:
            self.out.close()

    def _unparsed(self, data: bytes) -> None:
        """Bytes after HTTP ended: for a pending tunnel, or dropped while lingering."""
        if self._tail is not None:
            self._tail += data
            if len(self._tail) > _MAX_TUNNEL_EARLY:
                self.abort("too much sent before the tunnel opened")
        elif self._lingering:
            self._lingered += len(data)
            if self._lingered > _LINGER_MAX:
                self._close_now()

    def _wait_for_client(self) -> None:
        """Nothing to answer: time the partial head, or the idle keep-alive wait. Neither
        moves a head's deadline once set: at its first byte, or for the first at the accept."""
        if self._in_head:
            if not self._head_timed:
                self._head_timed = True
                self._deadline.set(self._limits.header_timeout)
        elif not self._head_timed:
            self._deadline.set(self._idle_delay)

    def follow_idle(self, idle_of: Callable[[AppSlug], float | None]) -> bool:
        """The config changed: if this connection waits for its next request after a response
        of an app whose keep-alive wait (``idle_of``; None: the listener's) is now shorter,
        wait no longer than the new one from when it went idle. Returns whether it did."""
        app = self._idle_app
        if (
            app is None
            or self._transport is None
            or self._active is not None
            or self._in_head
            or self._queue
            or self._lingering
            or self._write_paused
        ):
            return False
        new = idle_of(app)
        if new is None:
            new = self._limits.idle_timeout
        old = self._idle_delay
        left = self._deadline.left()
        if new >= old or left is None:
            return False
        self._idle_delay = new
        self._deadline.set(max(0.0, left - (old - new)))
        return True

    def _on_timeout(self) -> None:
        if self._transport is None:
            return
        if self._write_paused:
            watch = self._stall
            if watch is not None and not watch.stopped(self._transport, self._loop.time()):
                self._deadline.set(watch.every)  # reading, if slowly
                return
            reset_on_close(self._transport)  # nothing queued for it would be read
            self.abort("the client stopped reading (send_timeout)")
            return
        if self._active is not None:
            return
        if self._lingering:
            self._close_now()
        elif self._in_head and not self._queue:
            self._reject(408, "request head not received in time")  # RFC 9110 15.5.9
            self._start_next()
        elif not self._queue:
            self._close_now()  # idle keep-alive: closed silently (RFC 9112 section 9.8)
