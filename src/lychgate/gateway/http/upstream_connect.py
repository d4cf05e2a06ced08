"""Opening an https upstream connection: TCP first, then TLS on it, both transports kept.

Theory of operation
-------------------
``loop.create_connection(ssl=...)`` hands back the TLS transport alone, and a TLS transport the
gateway closes keeps its socket until the app's ``close_notify`` comes, up to 30 s
(:mod:`.tls_close`): every https connection the gateway closed (idle past its time, evicted,
not reusable, or a tunnel's end) to an app that sends none, nor closes, stayed open that long.
:func:`open_tls` therefore reaches an https upstream in two steps, both within the caller's
bound (the upstream's connect timeout, around the two as it was around the one):

1. **TCP.** ``create_connection`` with a :class:`_Connecting` protocol. A TLS server says
   nothing before our ClientHello, but whatever one does send (a banner: no TLS server) is
   kept, reading paused, and handed to the TLS layer before its handshake starts (through
   the buffered-read interface, as :mod:`.tls_accept` hands over a client's first bytes): the
   handshake fails on it as when the TLS layer was there from the start. A socket that the
   app closed meanwhile fails as a close during the handshake did (``ConnectionResetError``).
2. **TLS.** ``start_tls`` with what ``create_connection`` was given: the verifying context
   (the unverifying one for an app that opted out), SNI and the name checked for the URL's
   host (RFC 6066 section 3), and the same handshake bound. It raises what the one-step
   connect raised (``SSLCertVerificationError`` for a certificate not trusted), which
   :func:`.pool.connect_failure` words as before.

``start_tls`` does not call its protocol's ``connection_made``: the :class:`.UpstreamConnection`
gets it here, with the TLS transport, before any of the app's bytes can reach it (uvloop hands
over application data a loop step after waking whoever awaits ``start_tls``; the standard
library's loop may hand it within the handshake's last step, and bytes the app sends unasked
make the connection one never reused, as on an idle connection). After a failed handshake both
loops' TLS layers call its ``connection_lost``, with no ``connection_made`` before: it holds
nothing yet, and the pool has not counted it. A connection already closing when the handshake
returns (the app closed at once, or sent its own ``close_notify``) is refused as one closed
during the handshake.

Whatever fails, or is cancelled (the connect timeout), the socket is aborted here rather than
left to the loop: uvloop's ``start_tls`` closes only the TLS transport then, which closes the
socket only once the handshake has begun (a second abort does nothing).

The connection keeps the TCP transport (:attr:`.UpstreamConnection.tcp`), so that its closes,
and its tunnel's (:mod:`.tunnel`), close the socket once our ``close_notify`` has left
(:func:`.tls_close.close_when_sent`, RFC 8446 section 6.1). Plain http and unix upstreams are
opened as before, by one ``create_connection``, and take no step of this.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import cast

from lychgate.gateway.http.upstream import UpstreamConnection


class _Connecting(asyncio.Protocol):
    """The TCP transport's protocol until ``start_tls`` puts its TLS layer in its place."""

    __slots__ = ("early", "transport")

    def __init__(self) -> None:
        self.early = b""  # what the app sent before our ClientHello
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not paused here: uvloop starts reading after this returns, whatever it did.
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        self.early += data
        if self.transport is not None:
            self.transport.pause_reading()  # one read: the handshake fails on its first bytes


def _hand_over(tcp: asyncio.Transport, early: bytes) -> None:
    """Give the TLS layer that ``start_tls`` just put in place what the app sent before it,
    ahead of the layer's ``connection_made`` (which starts the handshake)."""
    layer = tcp.get_protocol()
    if isinstance(layer, _Connecting):
        return  # start_tls failed before putting its layer in place
    layer = cast(asyncio.BufferedProtocol, layer)
    into = memoryview(layer.get_buffer(len(early)))
    n = min(len(into), len(early))  # the whole of one read, or all a handshake would look at
    into[:n] = early[:n]
    layer.buffer_updated(n)


async def open_tls(
    loop: asyncio.AbstractEventLoop,
    conn: UpstreamConnection,
    host: str,
    port: int,
    ctx: ssl.SSLContext,
    handshake_timeout: float,
) -> None:
    """Connect ``conn`` to ``host:port`` over TLS (see the module docstring). Raises what a
    connect with ``ssl=ctx`` raised, the socket closed."""
    tcp, connecting = await loop.create_connection(_Connecting, host, port)
    early: asyncio.Handle | None = None
    try:
        if tcp.is_closing():
            raise ConnectionResetError  # what the TLS layer says of a close in its handshake
        if connecting.early:
            # Runs once start_tls has put its layer in place, before the layer starts.
            early = loop.call_soon(_hand_over, tcp, connecting.early)
        tls = await loop.start_tls(
            tcp,
            conn,
            ctx,
            server_hostname=host,  # SNI and the name checked (RFC 6066 section 3)
            ssl_handshake_timeout=handshake_timeout,
        )
        if tls is None or tls.is_closing():
            raise ConnectionResetError  # closed as the handshake ended
    except BaseException:
        if early is not None:
            early.cancel()
        tcp.abort()
        raise
    conn.tcp = tcp
    conn.connection_made(tls)
