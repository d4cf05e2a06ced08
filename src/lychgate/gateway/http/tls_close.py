"""Closing a TLS connection, a client's or an https app's, without waiting for its
``close_notify``.

Theory of operation
-------------------
When the gateway closes a TLS transport, the event loop's TLS layer sends what is still
buffered, then our ``close_notify``, and then waits for the peer's ``close_notify`` before it
closes the socket: up to 30 s (``ssl_shutdown_timeout``), after which it cuts the socket and
drops whatever the loop still held for it. A client that sends none, nor closes, kept the
socket, its TLS state, and its slot among its client's connections (:mod:`.clientcap`) for
30 s after every close: each ``header_timeout`` or ``idle_timeout`` bought 30 s more. An https
app that sends none kept every connection the gateway closed as long: idle past its time or
not reusable, each still counted meanwhile against the pool's ``max_connections`` for it (the
pool forgets a connection when its socket is gone); evicted, or a tunnel's end, counted nowhere.

RFC 8446 section 6.1 does not ask the side that closes to wait for the other's
``close_notify``, and nginx does not. So once the TLS transport is closing,
:func:`close_when_sent` closes the TCP transport under it as soon as both hold nothing more to
send: our ``close_notify`` and every byte before it have been handed to the kernel, which
sends them before its FIN as after any close. Until then it looks again every
:data:`POLL` seconds; a slow reader therefore still gets its whole answer, bounded as before
by the TLS layer's 30 s. In the common case both buffers are empty at once and the socket
closes with the TLS transport.

The TCP transport is the one TLS was started on. A client's: :mod:`.tls_accept` starts TLS on
the accepted socket, and the connection (:class:`.ClientConnection`) and, after an upgrade, its
tunnel (:mod:`.tunnel`) keep it. An https upstream's: :mod:`.upstream_connect` starts TLS on the
connected socket, and the connection (:class:`.UpstreamConnection`) and its tunnel keep it.
Plain TCP and unix sockets have no TLS layer to wait, and take no part in this.
"""

from __future__ import annotations

import asyncio
from typing import Final

#: Seconds between looks at a closing TLS connection's buffers while they drain.
POLL: Final = 0.1


def close_when_sent(tls: asyncio.WriteTransport, tcp: asyncio.WriteTransport) -> None:
    """Close ``tcp``, the socket under the closing ``tls``, once neither holds bytes to send."""
    if tcp.is_closing():
        return  # the client closed it meanwhile, or the TLS layer's own bound cut it
    if tls.get_write_buffer_size() or tcp.get_write_buffer_size():
        asyncio.get_running_loop().call_later(POLL, close_when_sent, tls, tcp)
        return
    tcp.close()
