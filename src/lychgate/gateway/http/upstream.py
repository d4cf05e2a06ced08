"""One keep-alive connection to an upstream, and the responses it carries.

Theory of operation
-------------------
An :class:`UpstreamConnection` is *idle* (in the pool, no exchange) or *busy* (bound to one
:class:`ResponseSink`, the exchange that sent a request on it). :meth:`send` binds it and
writes the request head; the response is parsed with llhttp (``HttpResponseParser``) and handed
to the sink as it arrives: ``upstream_interim`` for 1xx, ``upstream_head``, ``upstream_body``
for each piece of content, ``upstream_done`` at the end. The connection unbinds itself *after*
``feed_data`` returns, so that the sink may hand it straight to the next request.

The response's framing is classified as its head ends, and framing two parsers could read
apart is refused (502), in :mod:`.upstream_framing`.

A 101 ends HTTP on this connection: llhttp raises ``HttpParserUpgrade`` with the offset where
the tunnel's bytes begin, and the sink takes over the transport. A close-delimited body ends at
a clean close: a FIN, and over TLS a close_notify (RFC 9112 section 9.8). A reset, or a TLS
connection that ends without close_notify (a truncation anyone on the path can make), cuts it,
as any body cut short.

An https connection keeps the TCP transport under its TLS one (:mod:`.upstream_connect`):
:meth:`UpstreamConnection.close` closes the socket as soon as our close_notify has left, not
when the app's comes (up to 30 s later, from an app that sends none: RFC 8446 section 6.1 does
not ask the closing side to wait; :mod:`.tls_close`), and so does the tunnel it may become
(given :attr:`tcp` with the transport). An abort cuts the socket at once, as over plain TCP.

The read timeout is a gap timeout (like nginx's ``proxy_read_timeout``): it runs while a
request is outstanding and restarts on every read, and, while the request's content is still
being sent, on every piece sent too (:meth:`UpstreamConnection.sent_more`): an upload longer
than the timeout is no silent upstream. It is stopped while we ourselves stop reading because
the client is slow, so a slow client never becomes a "slow upstream".

The parser and the read timer call this object back: both are made when the connection is
(a refused connect makes neither) and let go of when it is lost or becomes a tunnel, so that
reference counting alone frees it (:mod:`lychgate.gateway.collector`).

:class:`UpstreamConnection` is built in two layers, the second a subclass of the first, so that
a call costs what it did in one class: :mod:`.upstream_framing` declares what a connection holds
and reads its responses (llhttp's callbacks); this module runs the transport, serves the
exchange and ends each response.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from lychgate.gateway.http.timer import Deadline
from lychgate.gateway.http.tls_close import close_when_sent
from lychgate.gateway.http.upstream_framing import (
    MAX_RESPONSE_HEAD,
    Failure,
    Framing,
    Refused,
    ResponseFraming,
    ResponseSink,
)
from lychgate.gateway.http.writer import Writer


class UpstreamConnection(ResponseFraming):
    """A connection to one upstream, reused across requests while it stays healthy."""

    __slots__ = ()  # declared, with the rest of the state, by ResponseFraming (.upstream_framing)

    # -- transport side -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport = transport
        self.out = Writer(transport, self.batch)
        transport.set_write_buffer_limits(high=self.write_buffer_high)
        self._parser = HttpResponseParser(self)
        self._deadline = Deadline(asyncio.get_running_loop(), self._on_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._parser = None
        if self._deadline is not None:
            self._deadline.cancel()
        forget = self._forget
        self._forget = None
        if forget is not None:
            forget(self)
        sink = self._sink
        self._sink = None
        if sink is None:
            return
        if self._eof and self._in_body and self._framing is Framing.EOF and not self._complete:
            sink.upstream_done(self, False)  # RFC 9112 section 6.3, item 8: close ends it
        else:  # a reset, or TLS without close_notify, cuts it (RFC 9112 sections 8 and 9.8)
            sink.upstream_failed(Failure.CLOSED, self._got_bytes)

    def data_received(self, data: bytes) -> None:
        sink, parser = self._sink, self._parser
        if sink is None or parser is None:
            # Bytes on an idle connection answer nothing we asked: never trust it again.
            self._reusable = False
            self.close()
            return
        self._got_bytes = True
        if not self._in_body:
            self._head_bytes += len(data)
        in_trailers = self._in_body and self._trailers.before_read()
        batch = self.batch
        batch.depth += 1
        try:
            try:
                parser.feed_data(data)
            except (HttpParserUpgrade, HttpParserError) as exc:
                if self._complete:
                    # The response is whole; what follows it in this read answers nothing we
                    # asked (content on a 204, more than its Content-Length): the client gets
                    # its response, and the connection is never used again.
                    self._reusable = False
                    self._finish()
                elif isinstance(exc, HttpParserUpgrade):
                    self._upgraded(sink, data[exc.args[0] :])
                else:
                    refused = exc.__context__  # what a callback raised, if one did
                    failure = refused.failure if isinstance(refused, Refused) else None
                    del refused  # its traceback holds this frame: a cycle, if kept
                    self._fail(failure or Failure.MALFORMED)
                return
            if self._complete:
                self._finish()
            elif not self._in_body and self._head_bytes > 2 * MAX_RESPONSE_HEAD:
                self._fail(Failure.HEAD_TOO_LONG)  # a head (or a run of 1xx heads) unending
            elif in_trailers and self._trailers.after_read(len(data), 2 * MAX_RESPONSE_HEAD):
                self._fail(Failure.TRAILERS_TOO_LONG)  # one endless trailer line
            elif self._deadline is not None and not self._reading_paused:
                self._deadline.set(self._read_timeout)  # the gap timer restarts on each read
        finally:
            batch.depth -= 1
            if not batch.depth and batch.dirty:
                batch.flush_all()

    def eof_received(self) -> bool:
        # A FIN; over TLS, called only for a close_notify: the TCP FIN alone of an unclean
        # close (which an attacker on the path can forge) closes without calling this.
        self._eof = True
        return False  # close our side too

    def pause_writing(self) -> None:
        if self._sink is not None:
            self._sink.upstream_write_paused()

    def resume_writing(self) -> None:
        if self._sink is not None:
            self._sink.upstream_write_resumed()

    # -- used by the exchange -------------------------------------------------------------

    def bind_pool(self, forget: Callable[[UpstreamConnection], None]) -> None:
        """Tell the pool when this connection is gone (``forget(self)`` on close)."""
        self._forget = forget

    def unbind_pool(self) -> None:
        self._forget = None

    @property
    def usable(self) -> bool:
        transport = self.transport
        return transport is not None and not transport.is_closing()

    def send(
        self, sink: ResponseSink, head: bytes, *, head_request: bool, read_timeout: float
    ) -> None:
        """Bind to ``sink`` and write a request head; the content follows through :attr:`out`."""
        assert self.out is not None
        self._sink = sink
        self._head_request = head_request
        self._read_timeout = read_timeout
        self._complete = False
        self._got_bytes = False
        self._reading_paused = False
        self.out.write(head)
        if self._deadline is not None:
            self._deadline.set(read_timeout)

    def sent_more(self) -> None:
        """A piece of the request's content went out: the upstream has more to wait for, so
        the gap timer starts again (a slow upload is no silent upstream)."""
        if self._deadline is not None and self._sink is not None and not self._reading_paused:
            self._deadline.set(self._read_timeout)

    def pause_reading(self) -> None:
        """The client is slow: stop reading, and stop the read timeout with it."""
        if self.transport is not None and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
            if self._deadline is not None:
                self._deadline.clear()

    def resume_reading(self) -> None:
        if self.transport is not None and self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()
            if self._deadline is not None and self._sink is not None:
                self._deadline.set(self._read_timeout)

    def close(self) -> None:
        """Close (never reuse) this connection; its sink is not told."""
        self._sink = None
        out = self.out
        if out is not None:
            out.close()
            tcp = self.tcp
            if tcp is not None:  # https: the socket goes once our close_notify has (.tls_close)
                self.tcp = None
                close_when_sent(out.transport, tcp)

    def abort(self) -> None:
        self._sink = None
        if self.transport is not None:
            self.transport.abort()

    def detach(self) -> asyncio.Transport:
        """Give the transport away (to a tunnel); this object is done. Over https, the caller
        takes :attr:`tcp` first, for the tunnel to close the socket with."""
        assert self.transport is not None
        self._sink = None
        self._forget = None
        self._parser = None
        if self._deadline is not None:
            self._deadline.cancel()
        if self.out is not None:
            self.out.flush()
        return self.transport

    # -- internals --------------------------------------------------------------------------

    def _finish(self) -> None:
        sink = self._sink
        self._sink = None
        self._complete = False
        self._in_body = False
        self._head_bytes = 0
        if self._deadline is not None:
            self._deadline.clear()
        # Never reused after a HEAD: an app that answers HEAD as GET (``do_HEAD = do_GET``)
        # sends content that may arrive only after the head, and would be read as the answer
        # to the next request.
        reusable = self._reusable and self._keep_alive and not self._head_request
        if not reusable:
            self._parser = HttpResponseParser(self)
        if sink is not None:
            sink.upstream_done(self, reusable)

    def _fail(self, failure: Failure) -> None:
        sink = self._sink
        self._sink = None
        self._reusable = False
        if self.transport is not None:
            self.transport.abort()
        if sink is not None:
            sink.upstream_failed(failure, self._got_bytes)

    def _upgraded(self, sink: ResponseSink, tail: bytes) -> None:
        if self._status != 101:
            self._fail(Failure.MALFORMED)
            return
        sink.upstream_upgraded(self, self._headers, tail)

    def _on_timeout(self) -> None:
        if self._sink is not None:
            self._fail(Failure.TIMEOUT)
