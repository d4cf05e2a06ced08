"""How a client connection ends, and what it holds: the base layer of :class:`.ClientConnection`.

Theory of operation
-------------------
Errors are answered in turn: a parse error is queued as an error "request", so earlier
pipelined requests are answered first, then the error page, then the connection closes. After
an error or an unread body the connection *lingers*: it half-closes, reads and drops what the
client still sends for ``linger_timeout``, then closes, so that the client reads the error
instead of a reset.

Otherwise a connection closes at once after its last response, or at a graceful shutdown
after the one under way (:meth:`shutdown`). It is cut (:meth:`abort`) when what was sent must
not look like a whole message. On the upstream's 101 to an Upgrade request its transport is
handed to :mod:`.tunnel`, and this object is done. However the active request ends, one the
client walked away from included, it is recorded (:meth:`_record`).

Whatever ends lets go of what refers back to it, so that reference counting alone frees it
(:mod:`lychgate.gateway.collector`; tests/gateway/test_garbage_cycles.py): a request of its
exchange when it is recorded, a connection of its timer's callback (and its parser) when it
is lost or becomes a tunnel.

This layer also declares the connection's slots and sets them up, once for the three layers:
:mod:`.turns` and :mod:`.connection` build on it.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import TYPE_CHECKING, Final

from httptools import HttpRequestParser

from lychgate.gateway.http.context import ServerContext
from lychgate.gateway.http.request import PAUSE_HOLD, Request, Responder
from lychgate.gateway.http.timer import Deadline
from lychgate.gateway.http.tls_close import close_when_sent
from lychgate.gateway.http.trailers import TrailerGuard
from lychgate.gateway.http.tunnel import Tunnel
from lychgate.gateway.http.unsent import StallWatch
from lychgate.gateway.http.writer import Writer
from lychgate.gateway.types import Principal, RequestHead, Respond, headless
from lychgate.ids import AppSlug

_MAX_TUNNEL_EARLY = 64 * 1024  # client bytes held while an upgrade is being answered
LINGER_MAX: Final = 1024 * 1024  # bytes dropped while lingering before we just close
# The fields of no head. Never appended to: on_header appends only while _in_head, and
# on_message_begin sets _in_head together with a fresh list.
NO_FIELDS: list[tuple[str, str]] = []

#: Requests parsed ahead of their turn stop reading at ``max_pipelined``; one read can carry more
#: than that, and beyond this many times it the connection is closed (a 429 for the next).
PARSED_AHEAD: Final = 4
#: Their heads are weighed in bytes too, since a parsed head of the largest size holds about
#: 30 KB: reading stops past this many heads of ``max_header_bytes`` waiting, and beyond
#: PARSED_AHEAD times it the connection is closed as above.
HEADS_AHEAD: Final = 2

# nginx's word for a request whose client closed the connection before its answer ended.
CLIENT_CLOSED: Final = 499
_CLIENT_LEFT: Final = "client closed the connection"


class ConnectionEnding(asyncio.Protocol):
    """The base layer of :class:`.ClientConnection`; see the module docstring."""

    # Slots, not a __dict__: an idle keep-alive connection should cost as little as possible.
    # All of them are here, for every layer; the layers above declare none of their own.
    __slots__ = (
        "_active",
        "_ahead_bytes",
        "_ahead_max",
        "_ahead_pause",
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
        "_idle_ends",
        "_idle_timed",
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
        "_shed",
        "_sni",
        "_stall",
        "_tail",
        "_task",
        "_tcp",
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
        self._ahead_pause = ctx.limits.max_header_bytes * HEADS_AHEAD
        self._ahead_max = self._ahead_pause * PARSED_AHEAD
        self._scheme = ctx.scheme
        self._batch = ctx.batch
        self._loop = ctx.loop
        self._parser: HttpRequestParser | None = None  # made with the first bytes
        self._shed = True  # no parser, but one is made when bytes come (.turns); else over
        self._transport: asyncio.Transport | None = None
        self._tcp: asyncio.Transport | None = None  # the socket under TLS (see .tls_close)
        self.out: Writer
        self._client_ip = ""
        self._client_key: str | None = None  # what ctx.clients counts this connection as
        self._sni: str | None = None
        # the head being parsed
        self._url = b""
        self._headers = NO_FIELDS
        self._head_size = 0
        self._head_raw = 0
        self._in_head = False
        self._head_timed = False
        self._idle_timed = False  # the wait for the next request is running: not restarted
        self._trailers = TrailerGuard()
        self._error: int | None = None  # status recorded by a callback before _Stop
        self._why = ""  # and why, for the access log
        # requests
        self._parsing: Request | None = None
        # A list, not a deque: at most max_pipelined requests wait, and an empty deque costs a
        # block of 64 slots on every idle connection.
        self._queue: list[Request] = []
        self._ahead_bytes = 0  # the heads queued since the queue was last empty, in bytes
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
        self._idle_ends = 0.0  # when the keep-alive wait under way ends (the loop's time)
        self._deadline = Deadline(self._loop, self._on_timeout)

    if TYPE_CHECKING:  # defined by the layers above

        def pause_reading(self, reason: int) -> None: ...  # .turns

        def _on_timeout(self) -> None: ...  # .turns

        def _forget(self) -> None: ...  # .connection

    # -- transport callbacks --------------------------------------------------------------

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._tcp = None
        self._parser = None
        self._shed = False
        self._deadline.cancel()
        self._give_back_client()
        self._forget()
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

    # -- used by the exchange -------------------------------------------------------------

    def _record(self, req: Request, status: int, app: AppSlug | None, reason: str) -> None:
        """The active request is over: count it, and tell the response hook."""
        ctx = self._ctx
        self._active = None
        self._responder = None
        req.sink = None  # the request <-> exchange cycle, broken: both freed without the GC
        ctx.stats.requests_active -= 1
        hook = ctx.on_response
        if hook is not None:
            head = req.head or self._headless()  # refused before its head was whole: the client
            rid = req.rid or ctx.ids.new()
            hook(head, app, status, perf_counter() - req.started, reason, req.who, rid)

    def _headless(self) -> RequestHead:
        """The head of a record for an answer given before any head was read: the client."""
        return headless(self._client_ip, self._scheme, self._sni)

    def cut(self, req: Request, status: int, app: AppSlug | None, reason: str) -> None:
        """The response to the active request, ``status`` sent, could not be finished (the
        upstream's ended early): record it, then reset the connection."""
        self._record(req, status, app, reason)
        self.abort()

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
        upstream_tcp: asyncio.Transport | None,
        to_client: bytes,
        who: Principal | None,
    ) -> None:
        """The upstream answered 101: hand both transports to a tunnel (and, over TLS, the
        TCP transports under them, which it closes without waiting: :mod:`.tls_close`)."""
        transport = self._transport
        assert transport is not None
        self.out.flush()  # the 101 head goes before any tunnel byte
        to_upstream = self._tail or b""
        self._tail = None
        tcp = self._tcp  # finish_for_tunnel lets go of it
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
            rid=req.rid,
            on_end=self._ctx.on_tunnel_end,
            client_tcp=tcp,
            upstream_tcp=upstream_tcp,
        )
        tunnel.start(to_upstream, to_client, client_ended=self._eof)

    def finish_for_tunnel(self, req: Request, app: AppSlug | None) -> None:
        self._record(req, 101, app, "")
        self._deadline.cancel()
        self._transport = None  # the tunnel owns it now; this object is done
        self._tcp = None
        self._parser = None
        self._shed = False
        self._give_back_client()  # tunnels are not counted (see .clientcap)
        self._forget()

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
        cannot finish otherwise), and parsing stops there
        (:meth:`.ClientConnection.on_message_complete`)."""
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
        self._shed = False
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
        self._shed = False
        transport = self._transport
        if transport is not None:
            self.out.close()
            if self._tcp is not None:
                close_when_sent(transport, self._tcp)

    def _unparsed(self, data: bytes) -> None:
        """Bytes after HTTP ended: for a pending tunnel, or dropped while lingering."""
        if self._tail is not None:
            self._tail += data
            if len(self._tail) > _MAX_TUNNEL_EARLY:
                self.abort("too much sent before the tunnel opened")
        elif self._lingering:
            self._lingered += len(data)
            if self._lingered > LINGER_MAX:
                self._close_now()
