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

:class:`Exchange` is built in two layers, the second a subclass of the first, so that a call
costs what it did in one class: :mod:`.proxy_relay` declares what an exchange holds, relays
the upstream's response and decides what an upstream failure becomes (the upstream-facing
half); this module starts the exchange, sends the request and answers the client connection's
events (the client-facing half).
"""

from __future__ import annotations

import logging
from typing import Final

from lychgate.errors import UsageError
from lychgate.gateway.http.errors import CONTINUE
from lychgate.gateway.http.headers import request_head
from lychgate.gateway.http.pool import UpstreamError
from lychgate.gateway.http.proxy_relay import DONE, RESPONDING, SENT, WAITING, ExchangeRelay
from lychgate.gateway.http.request import PAUSE_UPSTREAM, PIECE_COST
from lychgate.gateway.http.upstream import UpstreamConnection
from lychgate.gateway.types import Forward
from lychgate.ids import AppSlug

log = logging.getLogger(__name__)

_TOO_MUCH: Final = "request content over the body size limit"


class Exchange(ExchangeRelay):
    """One forwarded request; see the module docstrings here and in .proxy_relay."""

    __slots__ = ()  # declared, with the rest of the state, by ExchangeRelay (.proxy_relay)

    # -- start ----------------------------------------------------------------------------

    def start(self) -> None:
        req, fwd, down = self._req, self._fwd, self._down
        if req.upgrade and not fwd.allow_upgrade:
            # The client's bytes after the head belong to a protocol we will not relay; no
            # downgrade to plain HTTP is attempted (documented choice: 403, then close).
            _upgrade_refused(fwd)
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
            log.exception("refusing to forward a malformed head (request %s)", req.rid)
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
        rid = req.rid or self._ctx.ids.new()  # a head made elsewhere (tests) may have none
        if req.upgrade:
            upgrade = ", ".join(head.header_all("upgrade"))
            tail = f"x-request-id: {rid}\r\nconnection: upgrade\r\nupgrade: {upgrade}\r\n"
        else:
            tail = f"x-request-id: {rid}\r\nconnection: keep-alive\r\n"
        if req.chunked:
            tail = f"transfer-encoding: chunked\r\n{tail}"
        elif req.content_length is not None:
            tail = f"content-length: {req.content_length}\r\n{tail}"
        return request_head(head.method, fwd.target, fwd.headers, tail)

    def _connect(self) -> None:
        self._state = WAITING
        self._task = self._ctx.loop.create_task(self._connect_then_attach())

    async def _connect_then_attach(self) -> None:
        try:
            up = await self._ctx.pool.connect(self._fwd.upstream, self._owner)
        except UpstreamError as exc:
            self._task = None
            if self._state != DONE:
                self._upstream_failed(exc.status, exc.kind, str(exc))
            return
        except Exception as exc:
            log.exception(
                "connecting to an upstream failed unexpectedly (request %s)", self._req.rid
            )
            self._task = None
            if self._state != DONE:
                why = f"upstream connect failed: {type(exc).__name__}"
                self._upstream_failed(502, "connect", why)
            return
        self._task = None
        if self._state == DONE:  # the client went away while we connected
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
        self._state = SENT
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
        phase = self._state
        if phase in (SENT, RESPONDING):
            self._send_body(data)
        elif phase == WAITING:
            self._pending.append(data)
            self._pending_bytes += len(data) + PIECE_COST
            if self._pending_bytes > self._ctx.limits.write_buffer_high:
                self._down.pause_reading(PAUSE_UPSTREAM)

    def request_end(self) -> None:
        if self._state in (SENT, RESPONDING):
            self._send_end()

    def request_failed(self, status: int, why: str = "") -> None:
        """The client's content broke a rule (413) or the framing (400)."""
        if self._state == DONE:
            return
        responding = self._state == RESPONDING
        self._state = DONE
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
            out.write_chunk(data)
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
        self._state = DONE
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._drop_upstream()
        return self._fwd.app, self._status  # 0 until the upstream's head came


def _upgrade_refused(fwd: Forward) -> None:
    """Tell the operator why a signed-in user's WebSocket got a 403, and the one command that
    allows it, as a refused cross-origin write is told (the access log alone said it)."""
    who = fwd.who
    if who is not None and fwd.app is not None:
        log.info(
            "refused with 403: an Upgrade to app %s, which does not allow WebSockets; if it "
            "should, run: lychgate app update %s --websockets (user %s)",
            fwd.app,
            fwd.app,
            who.user_id,
        )
