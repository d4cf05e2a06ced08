"""A listener behind a TCP load balancer: read its PROXY header, then serve the client.

With ``proxy_protocol`` on, every connection to the gateway's public listeners must come from
one of ``trusted_proxies`` and begin with a PROXY header (:mod:`.proxy_header`; at most
:data:`~.proxy_header.MAX_SIZE` bytes), as nginx's ``listen ... proxy_protocol`` requires.
:class:`ProxyAcceptor` makes one :class:`_Reading` per accepted socket, which:

1. cuts the socket at once unless its peer is trusted: anyone else could name any address;
2. reads the header, within ``header_timeout`` of the accept (as a head is due), cutting the
   socket if it is malformed or late, and saying so in the log (throttled: the balancer is
   misconfigured, or something else reaches the port);
3. hands the socket to the listener's own protocol (:class:`.ClientConnection`, or the TLS
   accept path, :mod:`.tls_accept`), told the client's address and when the socket was
   accepted (what the header took counts against the first head), and gives it the bytes
   that came after the header.

From then on the client's address is the header's everywhere the peer's was: the
per-client connection cap, ``X-Forwarded-For``, the access log, and the question whether the
client's own ``X-Forwarded-*`` are believed (only if it is itself one of ``trusted_proxies``,
an HTTP proxy behind the balancer; a TCP balancer sends none, and a host of those networks
could name any client anyway, in a header of its own). A header that names no client (a
balancer's health check) leaves the balancer's address. Nothing changes for a listener
without ``proxy_protocol``: its factory is the protocol's own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol, cast

from lychgate.gateway.http.clientcap import peer_ip
from lychgate.gateway.http.failures import Throttle
from lychgate.gateway.http.proxy_header import BadProxyHeader, parse

log = logging.getLogger(__name__)


class FromProxy(Protocol):
    """A listener's protocol, which a :class:`_Reading` hands its socket to."""

    def accepted_from(self, ip: str, when: float) -> None:
        """The socket was accepted at ``when`` (the loop's clock) for the client ``ip``. Called
        before ``connection_made``."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None: ...

    def data_received(self, data: bytes) -> None: ...


class ProxyAcceptor:
    """One listener's PROXY header reading: its protocol factory, and the sockets reading."""

    __slots__ = ("loop", "pending", "refusals", "serve", "throttle", "timeout", "trusts")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        serve: Callable[[], FromProxy],
        trusts: Callable[[str], bool],
        timeout: float,
    ) -> None:
        self.loop = loop
        self.serve = serve  # the protocol each socket becomes once its header is read
        self.trusts = trusts  # the peers whose header is believed: the trusted proxies
        self.timeout = timeout
        self.pending: set[_Reading] = set()
        self.throttle = Throttle(loop.time)
        #: Sockets cut, by reason: ``untrusted_peer``, ``malformed``, ``late`` (for metrics).
        self.refusals: dict[str, int] = {}

    def protocol(self) -> asyncio.Protocol:
        """The protocol factory to give ``loop.create_server``."""
        return _Reading(self)

    def close(self) -> int:
        """Cut every socket still reading its header (the listener shuts down); returns how
        many."""
        cut = list(self.pending)
        for reading in cut:
            reading.cut()
        return len(cut)

    def refused(self, peer: str, reason: str, why: str) -> None:
        """Count a socket cut for ``reason`` (one of :attr:`refusals`' keys), and say ``why``
        in the log (throttled)."""
        self.refusals[reason] = self.refusals.get(reason, 0) + 1
        more = self.throttle.due(why)
        if more is not None:
            log.warning("proxy_protocol: cut a connection from %s: %s%s", peer, why, more)


class _Reading(asyncio.Protocol):
    """One accepted socket until its PROXY header is read (see the module docstring)."""

    __slots__ = ("_accepted", "_acceptor", "_data", "_peer", "_tcp", "_timer")

    def __init__(self, acceptor: ProxyAcceptor) -> None:
        self._acceptor = acceptor
        self._tcp: asyncio.Transport | None = None  # None once cut or handed over
        self._peer = ""
        self._data = b""
        self._accepted = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tcp = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        acceptor = self._acceptor
        self._peer = peer = peer_ip(tcp)
        if not acceptor.trusts(peer):
            acceptor.refused(
                peer, "untrusted_peer", "not one of trusted_proxies, which alone may send a header"
            )
            tcp.abort()
            return
        self._tcp = tcp
        self._accepted = acceptor.loop.time()
        acceptor.pending.add(self)
        self._timer = acceptor.loop.call_at(self._accepted + acceptor.timeout, self._late)

    def data_received(self, data: bytes) -> None:
        tcp = self._tcp
        if tcp is None:
            return
        data = self._data + data if self._data else data
        try:
            header = parse(data)
        except BadProxyHeader as exc:
            self._acceptor.refused(self._peer, "malformed", str(exc))
            self._cut()
            return
        if header is None:
            self._data = data  # under MAX_SIZE: parse refuses a longer header
            return
        self._forget()
        served = self._acceptor.serve()
        served.accepted_from(header.client or self._peer, self._accepted)
        tcp.set_protocol(cast(asyncio.Protocol, served))
        served.connection_made(tcp)
        rest = data[header.size :]
        if rest and not tcp.is_closing():
            served.data_received(rest)

    def eof_received(self) -> bool | None:
        self._cut()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        self._tcp = None

    def cut(self) -> None:
        """The listener shuts down while this header is awaited."""
        self._cut()

    def _late(self) -> None:
        self._acceptor.refused(self._peer, "late", "no complete header within header_timeout")
        self._cut()

    def _cut(self) -> None:
        tcp = self._tcp
        self._forget()
        if tcp is not None:
            tcp.abort()

    def _forget(self) -> None:
        """Nothing more for this object to do: it no longer owns the socket."""
        self._acceptor.pending.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._tcp = None
        self._data = b""
