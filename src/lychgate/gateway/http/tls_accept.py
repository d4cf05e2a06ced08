"""The accept path of a TLS listener: the client is counted before its handshake, not after.

Theory of operation
-------------------
``loop.create_server(ssl=...)`` runs the handshake before the connection's protocol exists, so
:class:`.ClientConnection` could count a client (:mod:`.clientcap`) only once its handshake was
done, and a client opening handshakes and stalling them was not counted at all. A TLS listener
therefore serves plain TCP, and :class:`TlsAcceptor` makes one :class:`_Accepting` per accepted
socket:

1. **Accept.** ``connection_made`` takes the client's slot from the listener's
   :class:`.ClientCap`. Over the cap the socket is cut at once: a TLS client could not read the
   plaintext ``503`` (the cap logs the refusal). Otherwise it waits for the client's first
   bytes, at most ``header_timeout`` from the accept, holding no TLS state yet.
2. **First bytes.** A TLS connection starts with a handshake record (content type 22; no TLS
   record type, nor the first byte of an SSL 2 hello, is a capital letter), an HTTP request
   with its method, in capital letters. A first byte that is a capital letter is plain HTTP
   sent to this port (``http://`` on the HTTPS port, or a probe): it is answered as nginx
   does, with a plaintext ``400`` that says so and echoes nothing, recorded with the client's
   address, and the socket lingers as after any error (:mod:`.ending`): half-closed, what
   the client still sends read and dropped for ``linger_timeout`` (and a MiB) at most, so that
   the client reads the answer instead of a reset. Any other first byte goes to TLS, whose
   handshake refuses what is not TLS as before. This object then starts ``loop.start_tls`` on
   the socket, bounded by what is left of ``header_timeout``, and runs that coroutine's first
   step itself, which puts the TLS layer in its place as the TCP transport's protocol
   (``start_tls`` pauses reading, and schedules the layer's ``connection_made`` and the
   resumption). It then gives that layer the bytes it read, as the transport would
   (``get_buffer`` and ``buffer_updated``, the protocol's side of the buffered-read interface,
   which both loops' TLS layers implement): before its ``connection_made`` they wait in its
   input buffer, and the handshake reads them there. The tests here would fail at once if a
   loop upgrade changed that. Later steps run as the futures it waits on complete, as in a
   task.
3. **Handshake.** ``start_tls`` does not call its protocol's ``connection_made``, and its TLS
   layer may deliver application data before whoever awaits it resumes: a TLS 1.3 client
   commonly sends its first request with its Finished message, and the standard library's
   ``sslproto`` hands it over within the handshake's last step (uvloop's one step later, after
   waking us up). So the ``_Accepting`` is the TLS layer's application protocol meanwhile: data
   that comes once the handshake is done is handed over at once, with the connection, because
   the standard library's layer may read a ``close_notify`` next and close the transport
   before the next loop turn (the request would then be lost).
4. **Hand-over.** When the handshake is done, a :class:`.ClientConnection` that already holds
   the slot (:meth:`.ClientConnection.adopt_client`, so it does not count twice) becomes the
   TLS transport's protocol, gets ``connection_made``, then the kept bytes. From then on it
   gives the slot back exactly once, as on a plain listener: when it closes, or becomes a
   tunnel. It is told when the socket was accepted (:meth:`.ClientConnection.accepted_from`):
   the first request head must be complete within ``header_timeout`` of the accept, as on a
   plain listener, and the handshake's time counts against it: a slowloris client that took
   most of the handshake's bound gets no fresh ``header_timeout`` for its head, and is cut
   one ``header_timeout`` after the accept, not two. Later heads on the connection get their
   own, from their first byte.

A client also holds at most ``limits.max_handshakes_per_client`` handshakes in progress (64 per
worker; loopback and trusted proxies are not counted, as above): each holds tens of kilobytes
of the TLS layer's memory until it ends, which the event loop's allocator does not hand back,
so a client stalling a thousand used to cost the worker tens of megabytes for good. One over
it is cut before its handshake starts. A socket counts from its accept, while it waits for its
first bytes too (it holds no TLS state then), and while a plain HTTP request's answer lingers.

A handshake that fails or times out gives the slot back and cuts its socket, and so does one
whose TLS transport is already closing when it is handed over with no request (the client
closed, or sent ``close_notify``, at once: a request sent first was handed over with it, in
step 3), and a socket closed or reset before its first byte. The slot passes on through
:meth:`_Accepting._release` or the hand-over, each of which clears it as it goes, so it is given
back once. :meth:`TlsAcceptor.close` cuts the handshakes in progress when the listener shuts
down: their clients have no request to drain.

The SNI callback on the listener's context (:mod:`.tls`) runs in every handshake as before, so
certificate reloads reach new connections unchanged. Plain-TCP listeners do not use this module.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Coroutine
from typing import Any, Final, cast

from lychgate.gateway.http.clientcap import ClientCap, peer_ip
from lychgate.gateway.http.connection import ClientConnection
from lychgate.gateway.http.context import ServerContext
from lychgate.gateway.http.ending import LINGER_MAX
from lychgate.gateway.http.headers import http_date
from lychgate.gateway.types import headless

log = logging.getLogger(__name__)

# What an accepted socket is doing (_Accepting._stage).
_FIRST: Final = 1  # waiting for its first bytes
_TLS: Final = 2  # in a TLS handshake, then handed over
_PLAIN: Final = 3  # sent plain HTTP: answered, lingering


#: The reason recorded for plain HTTP sent to a TLS listener.
PLAIN_HTTP: Final = "plain HTTP sent to the HTTPS port"
_PLAIN_HTTP_BODY: Final = b"400 Bad Request: plain HTTP was sent to the HTTPS port\n"
_PLAIN_HTTP_REST: Final = (
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\n"
    b"cache-control: no-store\r\n"
    b"connection: close\r\n"
    b"\r\n"
    b"%s"
) % (len(_PLAIN_HTTP_BODY), _PLAIN_HTTP_BODY)


def plain_http_refusal(date: bytes, rid: str) -> bytes:
    """What plain HTTP sent to a TLS listener is told, at ``date`` (an IMF-fixdate), with the
    id its record has (``rid``)."""
    head = b"HTTP/1.1 400 Bad Request\r\ndate: %s\r\nx-request-id: %s\r\n"
    return head % (date, rid.encode("ascii")) + _PLAIN_HTTP_REST


class TlsAcceptor:
    """One TLS listener's accept path: its protocol factory, and its handshakes in progress."""

    __slots__ = ("ctx", "handshake_timeout", "handshakes", "pending", "sslcontext")

    def __init__(
        self,
        ctx: ServerContext,
        sslcontext: ssl.SSLContext,
        handshake_timeout: float,
        handshakes: ClientCap | None = None,
    ) -> None:
        self.ctx = ctx
        self.sslcontext = sslcontext
        self.handshake_timeout = handshake_timeout
        self.pending: set[_Accepting] = set()
        self.handshakes = handshakes  # handshakes in progress, by client (None: not capped)

    def protocol(self) -> _Accepting:
        """The protocol factory to give ``loop.create_server`` (without ``ssl``)."""
        return _Accepting(self)

    def close(self) -> int:
        """Cut every handshake in progress (the listener shuts down); returns how many."""
        cut = list(self.pending)
        for accepting in cut:
            accepting.cut()
        return len(cut)


class _Accepting(asyncio.Protocol):
    """One accepted socket until its handshake is over (see the module docstring).

    It is the TCP transport's protocol until the first bytes come, or to the end for plain
    HTTP, and then the TLS layer's application protocol until the hand-over.
    """

    __slots__ = (
        "_accepted",
        "_acceptor",
        "_dropped",
        "_early",
        "_handshake",
        "_ip",
        "_key",
        "_shaking",
        "_stage",
        "_tcp",
        "_timer",
        "_waiting",
    )

    def __init__(self, acceptor: TlsAcceptor) -> None:
        self._acceptor = acceptor
        self._tcp: asyncio.Transport | None = None  # None once released or handed over
        self._key: str | None = None  # the client's slot, while this object holds it
        self._shaking: str | None = None  # its slot among the handshakes in progress
        self._handshake: Coroutine[Any, Any, asyncio.Transport | None] | None = None
        self._early = b""  # application data that came before the hand-over
        self._waiting: asyncio.Future[Any] | None = None  # what the handshake waits on
        self._accepted = 0.0  # the loop's clock at the accept, whence the first head is timed
        self._ip = ""  # the client's address: the peer's, or a PROXY header's (.proxy_accept)
        self._stage = _FIRST
        self._timer: asyncio.TimerHandle | None = None  # while not TLS: the first bytes, or linger
        self._dropped = 0  # bytes read and dropped while the answer to plain HTTP lingers

    def accepted_from(self, ip: str, when: float) -> None:
        """The socket was accepted at ``when`` for the client ``ip`` (a PROXY header's,
        :mod:`.proxy_accept`): the handshake and the first head are timed from then."""
        self._ip, self._accepted = ip, when

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tcp = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        acceptor = self._acceptor
        ctx = acceptor.ctx
        if not self._ip:  # else told by accepted_from
            self._accepted = ctx.loop.time()
            self._ip = peer_ip(tcp)
        ip = self._ip
        clients = ctx.clients
        if clients is not None:
            key = clients.take(ip)
            if key is None:
                tcp.abort()  # over the cap; a TLS client could not read the plaintext 503
                return
            self._key = key
        self._tcp = tcp
        handshakes = acceptor.handshakes
        if handshakes is not None:
            self._shaking = handshakes.take(ip)
            if self._shaking is None:
                self._release()  # this client stalls too many handshakes already
                return
        if ctx.draining:
            self._release()
            return
        acceptor.pending.add(self)
        self._timer = ctx.loop.call_at(self._accepted + acceptor.handshake_timeout, self._release)

    def data_received(self, data: bytes) -> None:
        stage = self._stage
        if stage == _TLS:
            self._early += data  # decrypted, before the hand-over: at most a read or two
            waiting = self._waiting
            if waiting is not None and _succeeded(waiting):  # the handshake is done: hand over
                self._step()
        elif stage == _FIRST:
            self._first_bytes(data)
        else:  # plain HTTP's rest, read and dropped while its answer lingers
            self._dropped += len(data)
            if self._dropped > LINGER_MAX:
                self._release()

    def _first_bytes(self, data: bytes) -> None:
        tcp = self._tcp
        if tcp is None:
            return  # cut already
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if b"A" <= data[:1] <= b"Z":  # a method, not a TLS record (module docstring, step 2)
            self._refuse_plain_http(tcp)
            return
        acceptor = self._acceptor
        loop = acceptor.ctx.loop
        left = self._accepted + acceptor.handshake_timeout - loop.time()
        if left <= 0:
            self._release()
            return
        self._stage = _TLS
        self._handshake = loop.start_tls(
            tcp, self, acceptor.sslcontext, server_side=True, ssl_handshake_timeout=left
        )
        self._step()  # the TLS layer is the transport's protocol now (or the start failed)
        if self._tcp is None:
            return
        layer = cast(asyncio.BufferedProtocol, tcp.get_protocol())
        view = memoryview(data)
        while view:
            into = memoryview(layer.get_buffer(len(view)))
            n = min(len(into), len(view))
            into[:n] = view[:n]
            layer.buffer_updated(n)
            view = view[n:]

    def _refuse_plain_http(self, tcp: asyncio.Transport) -> None:
        """Answer plain HTTP with a ``400`` that says why, then linger (module docstring)."""
        self._stage = _PLAIN
        ctx = self._acceptor.ctx
        rid = ctx.ids.new()
        tcp.write(plain_http_refusal(http_date(), rid))
        hook = ctx.on_response
        if hook is not None:  # a response too: logged and counted like any other
            head = headless(self._ip, ctx.scheme)
            hook(head, None, 400, 0.0, PLAIN_HTTP, None, rid)
        if tcp.can_write_eof():
            tcp.write_eof()  # RFC 9112 section 9.6: half-close, then read until EOF
        self._timer = ctx.loop.call_later(ctx.limits.linger_timeout, self._release)

    def eof_received(self) -> bool | None:
        if self._stage == _TLS:
            # A close_notify: the TLS layer shuts down and marks its transport closing, so
            # this connection is not handed over (see _handshake_done).
            return None
        self._release(gently=self._stage == _PLAIN)  # the client is done: so are we
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._stage != _TLS:  # the TCP transport's own end, before TLS or without it
            self._tcp = None
            self._release()
        # Else lost before the hand-over: the TLS transport is closing then, and
        # _handshake_done releases what is left.

    def cut(self) -> None:
        """The listener shuts down while this handshake is in progress."""
        self._release()  # the handshake then fails (or returns a closed transport): ignored

    def _step(self, fired: object = None) -> None:
        """Run the handshake (``start_tls``) on to its next wait, as a task would."""
        handshake = self._handshake
        if handshake is None or (fired is not None and fired is not self._waiting):
            return  # stepped on already, from data_received (or a wait long past)
        # The future that fired holds what the handshake raises below, whose traceback holds
        # this frame: let go of it, or the three make a cycle only the collector would free.
        fired = self._waiting = None
        try:
            waiting = handshake.send(None)
        except StopIteration as done:
            self._handshake = None
            self._handshake_done(done.value, None)
        except (Exception, asyncio.CancelledError) as exc:
            self._handshake = None
            self._handshake_done(None, exc)
        else:
            if isinstance(waiting, asyncio.Future):  # as from any asyncio coroutine
                self._waiting = waiting
                waiting.add_done_callback(self._step)
                return
            handshake.close()  # what a task would refuse too ("bad yield")
            self._handshake = None
            self._handshake_done(None, RuntimeError(f"start_tls waited on {waiting!r}"))

    def _handshake_done(self, tls: asyncio.Transport | None, exc: BaseException | None) -> None:
        if exc is not None and not isinstance(exc, OSError | asyncio.CancelledError):
            log.error("a TLS handshake failed unexpectedly", exc_info=exc)
        # An OSError (SSLError, a reset, the timeout) is the client's doing: not logged.
        if self._tcp is None:
            return  # cut already
        if tls is None or tls.is_closing():
            self._release()
        else:
            self._hand_over(tls)

    def _hand_over(self, tls: asyncio.Transport) -> None:
        self._acceptor.pending.discard(self)
        self._handshake_over()
        tcp, self._tcp = self._tcp, None
        conn = ClientConnection(self._acceptor.ctx)
        key, self._key = self._key, None
        if key is not None:
            conn.adopt_client(key)
        if tcp is not None:
            conn.over_tls(tcp)
        # The client's address, and the handshake's time, which counts against the first head.
        conn.accepted_from(self._ip, self._accepted)
        tls.set_protocol(conn)
        try:
            conn.connection_made(tls)
        except Exception:
            log.exception("a TLS connection could not be set up")
            tls.abort()  # its connection_lost, now the connection's, gives the slot back
            return
        early, self._early = self._early, b""
        if early and not tls.is_closing():
            conn.data_received(early)

    def _release(self, gently: bool = False) -> None:
        """No connection comes of this socket: give its client's slot back and cut it (close
        it ``gently``: what was written goes out first)."""
        acceptor = self._acceptor
        acceptor.pending.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._handshake_over()
        key, self._key = self._key, None
        clients = acceptor.ctx.clients
        if key is not None and clients is not None:
            clients.give_back(key)
        tcp, self._tcp = self._tcp, None
        if tcp is not None:
            if gently:
                tcp.close()
            else:
                tcp.abort()
        self._early = b""

    def _handshake_over(self) -> None:
        """Give back this client's slot among the handshakes in progress, once."""
        shaking, self._shaking = self._shaking, None
        handshakes = self._acceptor.handshakes
        if shaking is not None and handshakes is not None:
            handshakes.give_back(shaking)


def _succeeded(future: asyncio.Future[Any]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None
