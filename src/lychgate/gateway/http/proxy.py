"""Carrying out a :class:`~lychgate.gateway.types.Forward`: one request through one upstream.

Theory of operation
-------------------
An :class:`Exchange` lives from the dispatch of a forwarded request to the end of its response::

    WAITING ──acquire/connect──► SENT ──upstream head──► RESPONDING ──upstream done──► DONE
       │                          │                          │
       └── connect failed: 502/504 ┴── lost/timeout: 502/504 ┴── lost/timeout: cut the client

* WAITING: no upstream connection yet. An idle pooled one is taken synchronously; otherwise a
  task connects (the only task a forwarded request can cost). Content that arrives meanwhile is
  held here, and the client stops being read once that passes the high-water mark.
* SENT: the head is written upstream (``Expect: 100-continue`` is answered with our own
  ``100 Continue`` now, RFC 9110 section 10.1.1, and not forwarded). Content streams upstream
  as the client's parser yields it: ``Content-Length`` passes through, chunked content is
  re-chunked. When the upstream's write buffer is full the client is not read.
* RESPONDING: the head went to the client (hop-by-hop fields stripped, our framing added).
  Content streams down; a chunked or close-delimited upstream body is re-chunked for an
  HTTP/1.1 client and close-delimited for HTTP/1.0. When the client's write buffer is full the
  upstream is not read.
* DONE: the connection goes back to the pool if both messages completed cleanly.

A reused connection that dies before answering (the upstream closed it while idle) is retried
once on a new connection, for idempotent requests without content only (RFC 9110 section
9.2.2). Before RESPONDING, failures become error pages; after, the client connection is cut,
since a truncated message must not look complete. A 101 to an allowed Upgrade turns both
connections into a tunnel (see :mod:`.tunnel`).

Choices, each tested:

* 1xx: ``100 Continue`` from the upstream is dropped (we sent our own, or none was wanted);
  ``103 Early Hints`` is relayed to HTTP/1.1 clients, dropped for HTTP/1.0; others dropped.
* Only a WebSocket handshake is an Upgrade here (any other is made a plain request by the
  connection: :func:`.parse.is_websocket_handshake`), and only a 101 to ``websocket`` whose
  ``Sec-WebSocket-Accept`` answers the handshake's key opens a tunnel (else 502). One the
  decision does not allow (``Forward.allow_upgrade`` false) gets 403 and the connection
  closes; it is not downgraded to a plain request, because the bytes after the head were
  already taken as tunnel bytes by the parser. A 101 that arrives once
  the session has ended or the gateway is stopping opens no tunnel
  (:attr:`.TunnelRegistry.gate`).
* Trailer fields are dropped both ways (RFC 9110 section 6.5.1 permits it).
* A request's only transfer coding is ``chunked`` (the parser refuses others with 501), and
  its content is re-chunked. So is a response's, and an upstream response under any other
  transfer coding (``gzip, chunked``, ``gzip``) is a 502: the gateway never forwards ``TE``,
  so no client asked for one, and an HTTP/1.0 client would get the coded bytes unlabelled.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final, Protocol

from lychgate.errors import UsageError
from lychgate.gateway.http.context import ServerContext
from lychgate.gateway.http.errors import CONTINUE
from lychgate.gateway.http.headers import request_head, response_head
from lychgate.gateway.http.pool import LOCAL, UpstreamError
from lychgate.gateway.http.request import PAUSE_UPSTREAM, PIECE_COST, Request
from lychgate.gateway.http.upstream import Failure, Framing, UpstreamConnection
from lychgate.gateway.http.writer import Writer
from lychgate.gateway.http.wsframes import accept_for
from lychgate.gateway.types import Forward, Principal, RequestHead
from lychgate.ids import AppSlug

log = logging.getLogger(__name__)

_WAITING, _SENT, _RESPONDING, _DONE = range(4)
_IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_TOO_MUCH: Final = "request content over the body size limit"
_BODY_STALLED: Final = "request content stalled: nothing from the client or the upstream"


class Downstream(Protocol):
    """What an exchange needs from the client connection."""

    out: Writer

    @property
    def write_paused(self) -> bool: ...

    def pause_reading(self, reason: int) -> None: ...

    def resume_reading(self, reason: int) -> None: ...

    def must_close(self, req: Request) -> bool: ...

    def finish(
        self,
        req: Request,
        status: int,
        app: AppSlug | None,
        close: bool,
        reason: str = "",
        idle: float | None = None,
    ) -> None: ...

    def fail(
        self,
        req: Request,
        status: int,
        app: AppSlug | None,
        close: bool,
        reason: str = "",
        idle: float | None = None,
    ) -> None: ...

    def cut(self, req: Request, status: int, app: AppSlug | None, reason: str) -> None: ...

    def into_tunnel(
        self,
        req: Request,
        app: AppSlug | None,
        upstream: asyncio.Transport,
        to_client: bytes,
        who: Principal | None,
    ) -> None: ...


def _switches_to_websocket(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a 101's ``Upgrade`` names ``websocket`` alone, the one protocol asked for
    (lychgate.gateway.http.parse.is_websocket_handshake)."""
    named = [value for name, value in headers if name == b"upgrade"]
    return len(named) == 1 and named[0].strip(b" \t").lower() == b"websocket"


def _answers_key(headers: list[tuple[bytes, bytes]], head: RequestHead | None) -> bool:
    """Whether a 101's one ``Sec-WebSocket-Accept`` answers the handshake's one
    ``Sec-WebSocket-Key`` (RFC 6455 section 4.1, client step 4): a 101 that does not came
    from something other than a WebSocket server, and a tunnel to it would let the client
    speak HTTP to the app past every rule the gateway applies per request."""
    keys = () if head is None else head.header_all("sec-websocket-key")
    answers = [value for name, value in headers if name == b"sec-websocket-accept"]
    if len(keys) != 1 or len(answers) != 1:
        return False
    return answers[0].strip(b" \t") == accept_for(keys[0].strip(" \t")).encode("ascii")


class Exchange:
    """One forwarded request; see the module docstring."""

    __slots__ = (
        "_answer",
        "_chunk_down",
        "_chunked_up",
        "_close",
        "_ctx",
        "_down",
        "_early",
        "_fwd",
        "_head",
        "_max_body",
        "_pending",
        "_pending_bytes",
        "_req",
        "_retried",
        "_reused",
        "_sent_all",
        "_state",
        "_status",
        "_task",
        "_up",
        "_upstream_full",
    )

    def __init__(self, ctx: ServerContext, down: Downstream, req: Request, fwd: Forward) -> None:
        self._ctx = ctx
        self._down = down
        self._req = req
        self._fwd = fwd
        self._up: UpstreamConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._state = _WAITING
        self._head = b""
        self._answer = b""  # the response head as written to the client
        limit = fwd.max_body_bytes
        self._max_body = ctx.limits.max_body_bytes if limit is None else limit
        self._chunked_up = req.chunked
        self._chunk_down = False
        self._close = False
        self._status = 0
        self._reused = False
        self._sent_all = False
        self._early = False  # the response's head came before the request's content was sent
        self._upstream_full = False  # the upstream stopped reading what we send it
        self._retried = False

    # -- start ----------------------------------------------------------------------------

    def start(self) -> None:
        req, fwd, down = self._req, self._fwd, self._down
        if req.upgrade and not fwd.allow_upgrade:
            # The client's bytes after the head belong to a protocol we will not relay; no
            # downgrade to plain HTTP is attempted (documented choice: 403, then close).
            self._finish_early(403, close=True, reason="upgrade not allowed for this app")
            return
        if (req.content_length or 0) > self._max_body:
            # Refused before any 100 Continue, so the content is never sent (RFC 9110 15.5.14).
            self._finish_early(413, close=True, reason="Content-Length over the body size limit")
            return
        if req.received > self._max_body:  # chunked content, parsed ahead of its turn
            self._finish_early(413, close=True, reason=_TOO_MUCH)
            return
        try:
            self._head = self._build_head()
        except UsageError:
            log.exception("refusing to forward a malformed head")
            self._finish_early(500, close=down.must_close(req), reason="malformed forward head")
            return
        req.sink = self
        pending = req.take_buffer()
        if pending:
            self._pending = pending
            self._pending_bytes = sum(map(len, pending)) + PIECE_COST * len(pending)
        up = self._ctx.pool.acquire(fwd.upstream, self._owner)
        if up is not None:
            self._attach(up, reused=True)
        else:
            self._connect()

    @property
    def _owner(self) -> str | None:
        """Whose upstream connections this request may use (see :mod:`.pool`)."""
        who = self._fwd.who
        return None if who is None else who.user_id

    def _build_head(self) -> bytes:
        req, fwd = self._req, self._fwd
        head = req.head
        assert head is not None
        if req.upgrade:
            tail = f"connection: upgrade\r\nupgrade: {', '.join(head.header_all('upgrade'))}\r\n"
        else:
            tail = "connection: keep-alive\r\n"
        if req.chunked:
            tail = f"transfer-encoding: chunked\r\n{tail}"
        elif req.content_length is not None:
            tail = f"content-length: {req.content_length}\r\n{tail}"
        return request_head(head.method, fwd.target, fwd.headers, tail)

    def _connect(self) -> None:
        self._state = _WAITING
        self._task = self._ctx.loop.create_task(self._connect_then_attach())

    async def _connect_then_attach(self) -> None:
        try:
            up = await self._ctx.pool.connect(self._fwd.upstream, self._owner)
        except UpstreamError as exc:
            self._task = None
            if self._state != _DONE:
                self._upstream_failed(exc.status, exc.kind, str(exc))
            return
        except Exception as exc:
            log.exception("connecting to an upstream failed unexpectedly")
            self._task = None
            if self._state != _DONE:
                why = f"upstream connect failed: {type(exc).__name__}"
                self._upstream_failed(502, "connect", why)
            return
        self._task = None
        if self._state == _DONE:  # the client went away while we connected
            self._ctx.pool.release(up)
            return
        batch = self._ctx.batch
        batch.begin()
        try:
            self._attach(up, reused=False)
        finally:
            batch.end()

    def _attach(self, up: UpstreamConnection, *, reused: bool) -> None:
        req = self._req
        assert req.head is not None
        self._up = up
        self._reused = reused
        self._state = _SENT
        if req.expect_continue and not (req.continue_sent or req.received or req.body_done):
            req.continue_sent = True
            self._down.out.write(CONTINUE)
        up.send(
            self,
            self._head,
            head_request=req.head.method == "HEAD",
            read_timeout=self._fwd.upstream.read_timeout,
        )
        if self._pending:
            pending = self._pending
            self._pending = []
            self._pending_bytes = 0
            for chunk in pending:
                self._send_body(chunk)
            self._down.resume_reading(PAUSE_UPSTREAM)
        if req.body_done:
            self._send_end()
        if self._down.write_paused:
            up.pause_reading()

    # -- request content (from the client's parser) ------------------------------------

    def request_body(self, data: bytes) -> None:
        if self._req.received > self._max_body:
            self.request_failed(413, _TOO_MUCH)
            return
        state = self._state
        if state in (_SENT, _RESPONDING):
            self._send_body(data)
        elif state == _WAITING:
            self._pending.append(data)
            self._pending_bytes += len(data) + PIECE_COST
            if self._pending_bytes > self._ctx.limits.write_buffer_high:
                self._down.pause_reading(PAUSE_UPSTREAM)

    def request_end(self) -> None:
        if self._state in (_SENT, _RESPONDING):
            self._send_end()

    def request_failed(self, status: int, why: str = "") -> None:
        """The client's content broke a rule (413) or the framing (400)."""
        if self._state == _DONE:
            return
        responding = self._state == _RESPONDING
        self._state = _DONE
        self._drop_upstream()
        if responding:
            self._down.cut(self._req, self._status, self._fwd.app, why)
        else:
            self._down.fail(self._req, status, self._fwd.app, True, why)

    def _send_body(self, data: bytes) -> None:
        up = self._up
        assert up is not None
        out = up.out
        assert out is not None
        if self._chunked_up:
            out.write(b"%x\r\n" % len(data))
            out.write(data)
            out.write(b"\r\n")
        else:
            out.write(data)
        up.sent_more()

    def _send_end(self) -> None:
        if self._chunked_up:
            up = self._up
            assert up is not None
            assert up.out is not None
            up.out.write(b"0\r\n\r\n")  # no trailer fields: they were dropped
        self._sent_all = True

    # -- the response (from the upstream connection) ------------------------------------

    def upstream_interim(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        # 100 is ours to send (see _attach); 103 Early Hints is relayed to HTTP/1.1 clients
        # (RFC 8297 section 2); other 1xx are dropped.
        head = self._req.head
        if status == 103 and head is not None and head.http_version == "1.1":
            self._down.out.write(response_head(103, self._fields(headers), b""))

    def upstream_head(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        framing: Framing,
        length: int | None,
    ) -> None:
        req, down = self._req, self._down
        assert req.head is not None
        self._state = _RESPONDING
        self._status = status
        self._early = not self._sent_all
        close = down.must_close(req)
        http10 = req.head.http_version == "1.0"
        if framing is Framing.LENGTH:
            tail = b"content-length: %d\r\n" % (length or 0)
        elif framing is Framing.NONE:
            # HEAD and 304 may state the length of the representation (RFC 9110 8.6).
            tail = b""
            if length is not None and status != 204:
                tail = b"content-length: %d\r\n" % length
        elif http10:
            tail = b""  # HTTP/1.0 knows no chunked: the close delimits the content
            close = True
        else:
            self._chunk_down = True
            tail = b"transfer-encoding: chunked\r\n"
        if close:
            tail += b"connection: close\r\n"
        elif http10:
            tail += b"connection: keep-alive\r\n"
        self._close = close
        hsts = self._ctx.hsts
        if hsts and not any(name == b"strict-transport-security" for name, _ in headers):
            tail += hsts  # the app's own policy, when it sets one, stands
        answer = self._answer = response_head(status, self._fields(headers), tail)
        down.out.write(answer)

    def upstream_body(self, data: bytes) -> None:
        out = self._down.out
        if self._chunk_down:
            out.write(b"%x\r\n" % len(data))
            out.write(data)
            out.write(b"\r\n")
        else:
            out.write(data)

    def upstream_done(self, conn: UpstreamConnection, reusable: bool) -> None:
        self._up = None
        if self._chunk_down:
            self._down.out.write(b"0\r\n\r\n")
        fwd = self._fwd
        if reusable and not self._early and (fwd.who is not None or fwd.app is None):
            # Sent whole before the answer began: an app that answered early may never have
            # read the rest, and may yet answer it, on what would be the next request's turn.
            # Nor one that served nobody (a CORS preflight): a faulty app's late bytes would
            # reach whichever client came next, as the answer to its own preflight.
            self._ctx.pool.release(conn)  # which closes it instead if it is closing
        else:
            conn.close()
        self._state = _DONE
        self._down.finish(self._req, self._status, fwd.app, self._close, "", fwd.idle_timeout)

    def upstream_failed(self, failure: Failure, got_bytes: bool) -> None:
        self._up = None
        state = self._state
        if state == _DONE:
            return
        if state == _RESPONDING:
            # A cut message must not look complete; it still counts as this app's failure.
            self._state = _DONE
            fwd = self._fwd
            self._ctx.failures.report(fwd.upstream.url, fwd.app, failure.kind, failure.value)
            if self._down.out.unwrite(self._answer):
                # It failed within the read that brought its head, so none of it has left:
                # the client can still be told, where a cut would tell it nothing.
                status = 504 if failure is Failure.TIMEOUT else 502
                self._down.fail(self._req, status, fwd.app, True, failure.value, fwd.idle_timeout)
                return
            self._down.cut(self._req, self._status, fwd.app, failure.value)
            return
        if failure is Failure.CLOSED and not got_bytes and self._reused and self._retryable():
            self._retried = True
            self._connect()
            return
        if failure is Failure.TIMEOUT and not self._sent_all and not self._upstream_full:
            # Nothing from the upstream, nor from the client, for the whole timeout, with the
            # content still coming: the client stopped sending, which is no upstream failure.
            # (Unless the upstream stopped reading it: the client then waited on the app.)
            self._finish_early(408, close=True, reason=_BODY_STALLED)
            return
        status = 504 if failure is Failure.TIMEOUT else 502
        self._upstream_failed(status, failure.kind, failure.value)

    def upstream_upgraded(
        self, conn: UpstreamConnection, headers: list[tuple[bytes, bytes]], tail: bytes
    ) -> None:
        req, fwd = self._req, self._fwd
        unasked = None
        if not (req.upgrade and fwd.allow_upgrade):
            unasked = "upstream switched protocols unasked"
        elif not _switches_to_websocket(headers):
            unasked = "upstream switched to another protocol"
        elif not _answers_key(headers, req.head):
            unasked = "upstream's Sec-WebSocket-Accept does not answer the key"
        # The session may have ended, or the gateway begun to stop, while the upstream was
        # answering: a tunnel opened now would escape the closing that already happened.
        refused = None if unasked else self._ctx.tunnels.refusal(fwd.session_id)
        if unasked or refused:
            conn.abort()
            self._up = None
            if unasked:
                self._upstream_failed(502, "unasked_upgrade", unasked)
            elif refused:
                self._finish_early(refused[0], close=True, reason=refused[1])
            return
        self._state = _DONE
        self._up = None
        self._ctx.pool.detach(conn)
        transport = conn.detach()
        self._down.out.write(
            response_head(101, self._fields(headers), b"connection: upgrade\r\n", keep_upgrade=True)
        )
        self._down.into_tunnel(req, fwd.app, transport, tail, fwd.who)

    def upstream_write_paused(self) -> None:
        self._upstream_full = True
        self._down.pause_reading(PAUSE_UPSTREAM)

    def upstream_write_resumed(self) -> None:
        self._upstream_full = False
        self._down.resume_reading(PAUSE_UPSTREAM)

    # -- the client connection's events ---------------------------------------------------

    def client_write_paused(self) -> None:
        if self._up is not None:
            self._up.pause_reading()

    def client_write_resumed(self) -> None:
        if self._up is not None:
            self._up.resume_reading()

    @property
    def app(self) -> AppSlug | None:
        return self._fwd.app

    @property
    def status(self) -> int:
        return self._status

    def client_lost(self) -> tuple[AppSlug | None, int]:
        self._state = _DONE
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._drop_upstream()
        return self._fwd.app, self._status  # 0 until the upstream's head came

    # -- internals ------------------------------------------------------------------------

    def _fields(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """The upstream's response fields as the decision wants them passed on."""
        rewrite = self._fwd.response_fields
        return headers if rewrite is None else rewrite(headers)

    def _retryable(self) -> bool:
        req = self._req
        assert req.head is not None
        return not self._retried and not req.has_body and req.head.method in _IDEMPOTENT

    def _drop_upstream(self) -> None:
        up = self._up
        self._up = None
        if up is not None:
            up.abort()  # mid-message: the connection's framing state is unknown

    def _upstream_failed(self, status: int, kind: str, reason: str) -> None:
        """No usable response from the upstream: count and log it (throttled), answer ``status``."""
        fwd = self._fwd
        app = None if kind == LOCAL else fwd.app  # the gateway's own shortage: no app's fault
        self._ctx.failures.report(fwd.upstream.url, app, kind, reason)
        self._state = _DONE
        self._drop_upstream()
        close = self._down.must_close(self._req)
        self._down.fail(self._req, status, fwd.app, close, reason, fwd.idle_timeout)

    def _finish_early(self, status: int, *, close: bool, reason: str = "") -> None:
        self._state = _DONE
        fwd = self._fwd
        self._down.fail(self._req, status, fwd.app, close, reason, fwd.idle_timeout)
