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
   plaintext ``503`` (the cap logs the refusal). Otherwise it starts ``loop.start_tls`` on the
   socket, bounded by ``header_timeout`` as before, and runs that coroutine's first step itself,
   before returning: the event loop starts reading the socket as soon as ``connection_made``
   returns (uvloop does, even if it was paused), so the TLS layer must be in place by then, or
   the ClientHello would reach this protocol instead. (With uvloop it may then reach the TLS
   layer before that layer's own ``connection_made``, which ``start_tls`` schedules: it waits
   in the layer's input buffer, and the handshake reads it there. The tests here would fail
   at once if a uvloop upgrade changed that.) Later steps run as the futures it waits on
   complete, as in a task.
2. **Handshake.** ``start_tls`` does not call its protocol's ``connection_made``, and its TLS
   layer may deliver application data before whoever awaits it resumes: a TLS 1.3 client
   commonly sends its first request with its Finished message, and the standard library's
   ``sslproto`` hands it over within the handshake's last step (uvloop's one step later, after
   waking us up). So the ``_Accepting`` is the TLS layer's application protocol meanwhile: data
   that comes once the handshake is done is handed over at once, with the connection, because
   the standard library's layer may read a ``close_notify`` next and close the transport
   before the next loop turn (the request would then be lost).
3. **Hand-over.** When the handshake is done, a :class:`.ClientConnection` that already holds
   the slot (:meth:`.ClientConnection.adopt_client`, so it does not count twice) becomes the
   TLS transport's protocol, gets ``connection_made``, then the kept bytes. From then on it
   gives the slot back exactly once, as on a plain listener: when it closes, or becomes a
   tunnel.

A client also holds at most ``limits.max_handshakes_per_client`` handshakes in progress (64 per
worker; loopback and trusted proxies are not counted, as above): each holds tens of kilobytes
of the TLS layer's memory until it ends, which the event loop's allocator does not hand back,
so a client stalling a thousand used to cost the worker tens of megabytes for good. One over
it is cut before its handshake starts.

A handshake that fails or times out gives the slot back and cuts its socket, and so does one
whose TLS transport is already closing when it is handed over with no request (the client
closed, or sent ``close_notify``, at once: a request sent first was handed over with it, in
step 2). The slot passes on through
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
from typing import Any, cast

from lychgate.gateway.http.clientcap import ClientCap, peer_ip
from lychgate.gateway.http.connection import ClientConnection
from lychgate.gateway.http.context import ServerContext

log = logging.getLogger(__name__)


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

    def protocol(self) -> asyncio.Protocol:
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

    It is the TCP transport's protocol only within ``connection_made``, which puts the TLS
    layer in its place, and then the TLS layer's application protocol until the hand-over.
    """

    __slots__ = ("_acceptor", "_early", "_handshake", "_key", "_shaking", "_tcp", "_waiting")

    def __init__(self, acceptor: TlsAcceptor) -> None:
        self._acceptor = acceptor
        self._tcp: asyncio.Transport | None = None  # None once released or handed over
        self._key: str | None = None  # the client's slot, while this object holds it
        self._shaking: str | None = None  # its slot among the handshakes in progress
        self._handshake: Coroutine[Any, Any, asyncio.Transport | None] | None = None
        self._early = b""  # application data that came before the hand-over
        self._waiting: asyncio.Future[Any] | None = None  # what the handshake waits on

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tcp = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        acceptor = self._acceptor
        ctx = acceptor.ctx
        clients = ctx.clients
        ip = peer_ip(tcp)
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
        self._handshake = ctx.loop.start_tls(
            tcp,
            self,
            acceptor.sslcontext,
            server_side=True,
            ssl_handshake_timeout=acceptor.handshake_timeout,
        )
        # Its first step now, not in a task on the loop's next turn: uvloop starts reading as
        # soon as this returns, and the ClientHello must reach the TLS layer, not this object.
        self._step()

    def data_received(self, data: bytes) -> None:
        self._early += data  # decrypted, before the hand-over: at most a read or two
        waiting = self._waiting
        if waiting is not None and _succeeded(waiting):  # the handshake is done: hand over now
            self._step()

    def eof_received(self) -> bool | None:
        # A close_notify: the TLS layer shuts down and marks its transport closing, so this
        # connection is not handed over (see _handshake_done).
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        # Refused or released before the TLS layer took over, or lost before the hand-over:
        # the TLS transport is closing then, and _handshake_done releases what is left.
        pass

    def cut(self) -> None:
        """The listener shuts down while this handshake is in progress."""
        self._release()  # the handshake then fails (or returns a closed transport): ignored

    def _step(self, fired: object = None) -> None:
        """Run the handshake (``start_tls``) on to its next wait, as a task would."""
        handshake = self._handshake
        if handshake is None or (fired is not None and fired is not self._waiting):
            return  # stepped on already, from data_received (or a wait long past)
        self._waiting = None
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
        self._tcp = None
        conn = ClientConnection(self._acceptor.ctx)
        key, self._key = self._key, None
        if key is not None:
            conn.adopt_client(key)
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

    def _release(self) -> None:
        """No connection comes of this socket: give its client's slot back and cut it."""
        acceptor = self._acceptor
        acceptor.pending.discard(self)
        self._handshake_over()
        key, self._key = self._key, None
        clients = acceptor.ctx.clients
        if key is not None and clients is not None:
            clients.give_back(key)
        tcp, self._tcp = self._tcp, None
        if tcp is not None:
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
