"""The upstream-facing half of an :class:`.Exchange`: relaying the upstream's response.

The upstream connection reports to an exchange as its :class:`.ResponseSink`: a 1xx, the head,
each piece of content, the end, a failure, a 101. This layer carries each to the client: the
head with hop-by-hop fields stripped and our framing added, the content re-chunked where it
must be, a 101 into a tunnel once it is checked to answer the handshake; and it decides what a
failure becomes (a retry, an error page, a cut). See :mod:`.proxy` for the exchange's states.

This is the base layer of :class:`.Exchange`; it also declares the exchange's slots and sets
them up, once for both layers. :mod:`.proxy` builds on it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final, Protocol

from lychgate.gateway.http.context import ServerContext
from lychgate.gateway.http.headers import response_head
from lychgate.gateway.http.pool import LOCAL
from lychgate.gateway.http.request import PAUSE_UPSTREAM, Request
from lychgate.gateway.http.upstream import UpstreamConnection
from lychgate.gateway.http.upstream_framing import Failure, Framing
from lychgate.gateway.http.writer import Writer
from lychgate.gateway.http.wsframes import accept_for
from lychgate.gateway.types import Forward, Principal, RequestHead
from lychgate.ids import AppSlug

# The exchange's states (see :mod:`.proxy`).
WAITING, SENT, RESPONDING, DONE = range(4)
_IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
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
        upstream_tcp: asyncio.Transport | None,
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


class ExchangeRelay:
    """The base layer of :class:`.Exchange`; see the module docstrings here and in .proxy."""

    # All the slots, for both layers; the layer above declares none of its own.
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
        self._state = WAITING
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

    if TYPE_CHECKING:  # defined by the layer above

        def _connect(self) -> None: ...  # .proxy

    # -- the response (from the upstream connection) ------------------------------------

    def upstream_interim(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        # 100 is ours to send (see Exchange._attach); 103 Early Hints is relayed to HTTP/1.1 clients
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
        self._state = RESPONDING
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
            out.write_chunk(data)
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
        self._state = DONE
        self._down.finish(self._req, self._status, fwd.app, self._close, "", fwd.idle_timeout)

    def upstream_failed(self, failure: Failure, got_bytes: bool) -> None:
        self._up = None
        phase = self._state
        if phase == DONE:
            return
        if phase == RESPONDING:
            # A cut message must not look complete; it still counts as this app's failure.
            self._state = DONE
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
        self._state = DONE
        self._up = None
        self._ctx.pool.detach(conn)
        upstream_tcp = conn.tcp  # under an https app's TLS: the tunnel closes it (.tls_close)
        transport = conn.detach()
        self._down.out.write(
            response_head(101, self._fields(headers), b"connection: upgrade\r\n", keep_upgrade=True)
        )
        self._down.into_tunnel(req, fwd.app, transport, upstream_tcp, tail, fwd.who)

    def upstream_write_paused(self) -> None:
        self._upstream_full = True
        self._down.pause_reading(PAUSE_UPSTREAM)

    def upstream_write_resumed(self) -> None:
        self._upstream_full = False
        self._down.resume_reading(PAUSE_UPSTREAM)

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
        self._state = DONE
        self._drop_upstream()
        close = self._down.must_close(self._req)
        self._down.fail(self._req, status, fwd.app, close, reason, fwd.idle_timeout)

    def _finish_early(self, status: int, *, close: bool, reason: str = "") -> None:
        self._state = DONE
        fwd = self._fwd
        self._down.fail(self._req, status, fwd.app, close, reason, fwd.idle_timeout)
