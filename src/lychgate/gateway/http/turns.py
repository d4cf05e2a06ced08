"""Answering a client connection's requests in turn, and the timers that bound its waits.

Theory of operation
-------------------
Exactly one request is *active*: the handler decides it, and it is answered. The next is
dispatched only when the active response has been handed to the transport, so responses go out
strictly in request order however far the client pipelines (RFC 9112 section 9.3.2).

One :class:`.Deadline` runs the timers: while nothing is active, a partial head must complete
within ``header_timeout`` of its first byte (408, slowloris) and a keep-alive connection may
stay idle for ``idle_timeout``. The first head is bounded from the accept instead: it must be
complete within ``header_timeout`` of it, TLS handshake included (:meth:`accepted_from`), so
neither waiting before its first byte nor a slow handshake adds a second ``header_timeout``,
and bytes that start no head (llhttp skips blank lines before a request) do not move it. Nor do
they restart the idle wait between requests, which runs from the end of the last response (from
when the client has taken it, when its writes were paused) (RFC 9112 section 2.2 lets a server
ignore such lines; a client sending a bare CRLF every few seconds kept its connection open for
ever). A request each ``idle_timeout`` does keep it open, as it should: each is answered, and
logged. While a request is active, the upstream's read timeout governs instead.

A connection holds an llhttp parser (about a kilobyte, most of it the bound methods it calls
back) only while it has bytes to parse: none until its first bytes come, and none once a
keep-alive wait has lasted :data:`SHED_AFTER` (``_shed``: a new one is made with the next
bytes, in the state a parser is in between two requests). Ten thousand idle connections hold
ten megabytes less. ``_parser`` None with ``_shed`` false means HTTP is over.

This is the middle layer of :class:`.ClientConnection`, on :mod:`.ending`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from lychgate.errors import UsageError
from lychgate.gateway.http.ending import ConnectionEnding
from lychgate.gateway.http.errors import error_page
from lychgate.gateway.http.headers import http_date, local_head
from lychgate.gateway.http.proxy import Exchange
from lychgate.gateway.http.request import PAUSE_BUFFER, Request
from lychgate.gateway.http.unsent import StallWatch, reset_on_close
from lychgate.gateway.types import Forward, Local, Principal, Respond
from lychgate.ids import AppSlug

# The name it had before the connection was split in layers: log configurations may use it.
log = logging.getLogger("lychgate.gateway.http.connection")

#: Seconds into a keep-alive wait after which the connection lets go of its parser (.ending).
SHED_AFTER: Final = 0.25

_NO_CONTENT = frozenset({204, 304})


class ConnectionTurns(ConnectionEnding):
    """The middle layer of :class:`.ClientConnection`; see the module docstring."""

    __slots__ = ()  # declared by ConnectionEnding

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
            if not self._queue:
                self._ahead_bytes = 0
            if self._active is None and not self._lingering:
                if self._closing or (self._eof and not self._queue):
                    self._close_now()
                elif not self._queue and not paused:
                    self._wait_for_client()
            if self._paused & PAUSE_BUFFER:
                parsing = self._parsing
                if (
                    len(self._queue) <= self._limits.max_pipelined
                    and self._ahead_bytes <= self._ahead_pause
                    and (parsing is None or parsing.buffered <= self._limits.write_buffer_high)
                ):
                    self.resume_reading(PAUSE_BUFFER)
        finally:
            self._dispatching = False

    def _dispatch(self, req: Request) -> None:
        ctx = self._ctx
        self._active = req
        ctx.stats.requests_total += 1
        ctx.stats.requests_active += 1
        if not self._write_paused:
            self._deadline.clear()
        self._head_timed = self._idle_timed = False
        if req.error is not None or req.head is None:
            self.fail(req, req.error or 400, None, True, req.why)
            return
        try:
            decision: object = ctx.handler(req.head)  # checked below: a bug must not crash us
        except Exception:
            log.exception("the request handler raised; answering 500 (request %s)", self._rid(req))
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
            log.error(
                "handler returned %r; answering 500 (request %s)", type(decision), self._rid(req)
            )
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
            log.error(
                "a local endpoint failed; answering 500 (request %s)", self._rid(req), exc_info=exc
            )
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
        tail += b"x-request-id: %s\r\n%s" % (self._rid(req).encode("ascii"), self._ctx.hsts)
        if close:
            tail += b"connection: close\r\n"
        elif req.head.http_version == "1.0":
            tail += b"connection: keep-alive\r\n"
        try:
            head = local_head(status, answer.headers, tail)
        except UsageError:
            log.exception("refusing to send a malformed local answer (request %s)", self._rid(req))
            self.fail(req, 500, None, close, "malformed local answer")
            return
        if body and req.head.method != "HEAD" and status not in _NO_CONTENT:
            head += body
        self.out.write(head)
        self.finish(req, status, answer.app, close, answer.reason)

    def _rid(self, req: Request) -> str:
        """The id of ``req``, made now if it has none yet (:mod:`.request_ids`)."""
        rid = req.rid
        if not rid:
            rid = req.rid = self._ctx.ids.new()
        return rid

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
            status,
            http_date(),
            close=close,
            head_only=head_only,
            extra=self._ctx.hsts,
            rid=self._rid(req),
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

    # -- slow readers and timers ----------------------------------------------------------

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
            self._idle_timed = False  # the idle wait starts again once the client has read
            self._wait_for_client()
        if self._responder is not None:
            self._responder.client_write_resumed()

    def _wait_for_client(self) -> None:
        """Nothing to answer: time the partial head, or the idle keep-alive wait. Neither
        moves once set: a head's deadline at its first byte (for the first, at the accept),
        the idle wait when the response before it ended. Reads that start no head (blank
        lines, which llhttp skips) come here too, and must not restart either."""
        if self._in_head:
            if not self._head_timed:
                self._head_timed = True
                self._deadline.set(self._limits.header_timeout)
        elif not (self._head_timed or self._idle_timed):
            self._idle_timed = True
            delay = self._idle_delay
            now = self._loop.time()
            self._idle_ends = now + delay
            # First the shed (_on_timeout: _shed_parser), then the rest of the wait.
            self._deadline.set(SHED_AFTER if delay > SHED_AFTER else delay, now)

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
            or not self._idle_timed
        ):
            return False
        new = idle_of(app)
        if new is None:
            new = self._limits.idle_timeout
        old = self._idle_delay
        left = self._deadline.left()  # until the parser is shed, or the wait's end
        if new >= old or left is None:
            return False
        self._idle_delay = new
        self._idle_ends -= old - new
        self._deadline.set(max(0.0, min(left, self._idle_ends - self._loop.time())))
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
        elif not self._queue and not self._shed_parser():
            self._close_now()  # idle keep-alive: closed silently (RFC 9112 section 9.8)

    def _shed_parser(self) -> bool:
        """A keep-alive wait has lasted SHED_AFTER: let go of the parser (.ending) and wait
        out the rest. Returns whether the wait goes on. The parser stays while the content of
        a request answered early is still coming (read and dropped), the wait all the same."""
        if (
            not self._idle_timed
            or self._parser is None
            or self._in_head
            or self._closing
            or self._eof
            or self._tail is not None
        ):
            return False
        left = self._idle_ends - self._loop.time()
        if left <= 0:
            return False
        if self._parsing is None:
            self._parser = None
            self._shed = True
        self._deadline.set(left)
        return True
