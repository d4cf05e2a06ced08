"""Starting, observing and gracefully stopping a listener of the HTTP/1.1 engine.

:func:`start_server` binds a listener whose connections carry out what ``handler`` decides.
``reuse_port`` sets SO_REUSEPORT so that several worker processes can each bind the same port
and let the kernel spread connections among them (see :mod:`.workers`).

:meth:`GatewayServer.close` shuts down gracefully: stop accepting, close tunnels and idle
keep-alive connections at once, let in-flight requests finish (their responses say
``Connection: close``) for up to ``drain_timeout``, then cut what is left.

A TLS listener accepts plain TCP and runs each handshake itself (:mod:`.tls_accept`), so that
a client is counted against ``max_connections_per_client`` from the accept; the handshakes in
progress at shutdown are cut at once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl as ssl_module
from collections.abc import Callable, Mapping

from lychgate.gateway.http.clientcap import ClientCap, is_loopback
from lychgate.gateway.http.connection import ClientConnection
from lychgate.gateway.http.context import ResponseHook, ServerContext, ServerStats
from lychgate.gateway.http.limits import Limits
from lychgate.gateway.http.pool import UpstreamPool
from lychgate.gateway.http.proxy_accept import ProxyAcceptor
from lychgate.gateway.http.request_ids import RequestIds, trusts_nobody
from lychgate.gateway.http.tls import client_context
from lychgate.gateway.http.tls_accept import TlsAcceptor
from lychgate.gateway.http.tunnel import TunnelEndHook
from lychgate.gateway.http.tunnel_registry import TunnelRegistry
from lychgate.gateway.http.writer import Batch
from lychgate.gateway.types import Handler, Principal
from lychgate.ids import AppSlug, SessionId

log = logging.getLogger(__name__)

#: Asked of each open tunnel (``True``) and response under way (``False``) with the app and the
#: signed-in user it was admitted for: why it may not go on, or None to keep it.
Refusal = Callable[[AppSlug | None, Principal, bool], str | None]


class GatewayServer:
    """A running listener. Made by :func:`start_server`."""

    def __init__(
        self,
        server: asyncio.Server,
        ctx: ServerContext,
        own_pool: bool,
        tls: TlsAcceptor | None = None,
        proxy: ProxyAcceptor | None = None,
    ) -> None:
        self._server = server
        self._ctx = ctx
        self._own_pool = own_pool
        self._tls = tls
        self._proxy = proxy
        self._closed = False
        self._port = 0
        for sock in server.sockets:
            name = sock.getsockname()
            if isinstance(name, tuple):
                self._port = int(name[1])

    @property
    def port(self) -> int:
        """The bound TCP port (useful after binding port 0); 0 for a unix socket."""
        return self._port

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._server.sockets)

    @property
    def stats(self) -> ServerStats:
        return self._ctx.stats

    @property
    def open_connections(self) -> int:
        """HTTP connections open now (tunnels not included)."""
        return len(self._ctx.connections)

    @property
    def handshakes(self) -> int:
        """Accepted TLS sockets not yet connections: waiting for their first bytes, in a
        handshake, or answering plain HTTP (each counted against its client's connections)."""
        return 0 if self._tls is None else len(self._tls.pending)

    def held_by(self, ip: str) -> int:
        """How many connections ``ip``'s client holds on this listener now, handshakes
        included (0 when it is not counted, or there is no cap)."""
        clients = self._ctx.clients
        return 0 if clients is None else clients.held(ip)

    @property
    def proxy_refusals(self) -> Mapping[str, int]:
        """Sockets cut before HTTP for their PROXY header, by reason (:mod:`.proxy_accept`);
        empty without ``proxy_from``."""
        return {} if self._proxy is None else self._proxy.refusals

    @property
    def open_tunnels(self) -> int:
        return self._ctx.tunnels.count

    @property
    def pool(self) -> UpstreamPool:
        return self._ctx.pool

    def close_session(self, session_id: SessionId) -> int:
        """Close the tunnels (WebSockets) of a revoked session; returns how many."""
        return self._ctx.tunnels.close_session(session_id)

    def close_where(self, refuse: Refusal) -> tuple[int, int]:
        """Close every tunnel, and cut every response under way, whose app and signed-in user
        ``refuse`` no longer admits (it returns why, or None to keep it): a session that ended
        closes its event streams as well as its WebSockets. Returns (tunnels, responses)."""
        tunnels = self._ctx.tunnels.close_where(
            lambda t: None if t.who is None else refuse(t.app, t.who, True)
        )
        cut = 0
        for conn in list(self._ctx.connections):
            forwarded = conn.forwarded()
            if forwarded is None:
                continue
            app, who, handshake = forwarded
            if who is None:
                continue
            why = refuse(app, who, handshake)  # a handshake is asked as the tunnel it would be
            if why is not None:
                conn.abort(why)
                cut += 1
        return tunnels, cut

    def follow_idle(self, idle_of: Callable[[AppSlug], float | None]) -> int:
        """Shorten the keep-alive wait of connections idle after a response of an app whose
        ``idle_of`` (the app's ``idle_timeout``; None: the listener's) is now shorter than the
        one they wait out; returns how many."""
        return sum(conn.follow_idle(idle_of) for conn in list(self._ctx.connections))

    @property
    def upstream_failures(self) -> Mapping[tuple[AppSlug | None, str], int]:
        """Requests no upstream answered, by (app, kind) (:mod:`.failures`)."""
        return self._ctx.failures.counts

    def gate_tunnels(self, gate: Callable[[SessionId | None], tuple[int, str] | None]) -> None:
        """Ask ``gate`` before each tunnel opens (see :attr:`.TunnelRegistry.gate`)."""
        self._ctx.tunnels.gate = gate

    def close_all_open(self) -> int:
        """The config feed has been silent too long: close every tunnel, and cut every response
        under way for a signed-in user (an event stream would outlive any revocation made
        since); returns how many, tunnels and responses."""
        closed = self._ctx.tunnels.close_all("config feed expired")
        _, streams = self.close_where(lambda app, who, tunnel: "config feed expired")
        return closed + streams

    async def serve_forever(self) -> None:
        await self._server.serve_forever()

    async def close(self, drain_timeout: float = 10.0, cut: asyncio.Event | None = None) -> None:
        """Stop accepting, drain in-flight requests for up to ``drain_timeout`` (or until
        ``cut`` is set: a second Ctrl-C), then close."""
        if self._closed:
            return
        self._closed = True
        ctx = self._ctx
        ctx.draining = True
        self._server.close()
        if self._proxy is not None:
            self._proxy.close()  # nor does a socket whose PROXY header is still awaited
        if self._tls is not None:
            self._tls.close()  # a handshake still in progress has nothing to drain
        tunnels = self.open_tunnels
        ctx.tunnels.shut()
        ctx.idle.clear()
        busy = sum(conn.shutdown() for conn in list(ctx.connections))  # idle ones close now
        if busy or tunnels:
            log.info(
                "stopping: %d connection(s) with a request under way get up to %g s; "
                "%d WebSocket(s) closed",
                busy,
                drain_timeout,
                tunnels,
            )
        if ctx.connections and not await _drained(ctx.idle, drain_timeout, cut):
            hurried = cut is not None and cut.is_set()
            log.warning(
                "stopping: %d connection(s) still busy %s, cut",
                len(ctx.connections),
                "at a second Ctrl-C" if hurried else f"after {drain_timeout:g} s",
            )
            why = "second Ctrl-C" if hurried else "drain timeout"
            for conn in list(ctx.connections):
                conn.give_up(f"gateway stopping: {why}")
        if self._own_pool:
            ctx.pool.close()
        await self._server.wait_closed()


async def _drained(idle: asyncio.Event, within: float, cut: asyncio.Event | None) -> bool:
    """Wait until ``idle`` is set (True), or ``within`` s pass or ``cut`` is set (False)."""
    waits = [asyncio.ensure_future(idle.wait())]
    if cut is not None:
        waits.append(asyncio.ensure_future(cut.wait()))
    try:
        await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
    return idle.is_set()


async def start_server(
    handler: Handler,
    *,
    host: str | None = "127.0.0.1",
    port: int = 0,
    limits: Limits | None = None,
    ssl: ssl_module.SSLContext | None = None,
    reuse_port: bool = False,
    sock: socket.socket | None = None,
    backlog: int = 1024,
    on_response: ResponseHook | None = None,
    on_tunnel_end: TunnelEndHook | None = None,
    upstream_ssl: ssl_module.SSLContext | None = None,
    pool: UpstreamPool | None = None,
    uncapped: Callable[[str], bool] = is_loopback,
    hsts: bytes = b"",
    ids_from: Callable[[str], bool] = trusts_nobody,
    proxy_from: Callable[[str], bool] | None = None,
) -> GatewayServer:
    """Listen on ``host:port`` (or ``sock``) and serve what ``handler`` decides.

    ``ssl`` makes it an HTTPS listener (see :func:`.tls.server_context`). ``upstream_ssl``
    verifies https upstreams (default: the system CAs). ``on_response`` is called after every
    response with ``(head, app, status, seconds, reason, who, request_id)``, ``on_tunnel_end``
    after every tunnel (:data:`.TunnelEndHook`). ``uncapped`` names the client addresses
    that ``limits.max_connections_per_client`` does not apply to (:mod:`.clientcap`), and
    ``ids_from`` those whose own ``X-Request-Id`` names a request (:mod:`.request_ids`). ``hsts``,
    a whole ``Strict-Transport-Security`` line, goes into every final answer of an HTTPS
    listener but error pages, unless the app sent its own. ``proxy_from``, when given, names
    the peers that must begin every connection with a PROXY header, which names the client
    (:mod:`.proxy_accept`); anyone else is cut.
    """
    loop = asyncio.get_running_loop()
    limits = limits or Limits()
    own_pool = pool is None
    if pool is None:
        if upstream_ssl is None:
            upstream_ssl = await asyncio.to_thread(client_context)  # reads the CA bundle
        pool = UpstreamPool(
            ssl_context=upstream_ssl, batch=Batch(), write_buffer_high=limits.write_buffer_high
        )
    ctx = ServerContext(
        loop=loop,
        handler=handler,
        limits=limits,
        pool=pool,
        tunnels=TunnelRegistry(
            idle_timeout=limits.tunnel_idle_timeout, drain_timeout=limits.send_timeout
        ),
        scheme="https" if ssl is not None else "http",
        hsts=hsts if ssl is not None else b"",
        ids=RequestIds(ids_from),
        on_response=on_response,
        on_tunnel_end=on_tunnel_end,
        batch=pool.batch,
        clients=(
            ClientCap(limits.max_connections_per_client, exempt=uncapped)
            if limits.max_connections_per_client
            else None
        ),
    )

    def factory() -> ClientConnection:
        return ClientConnection(ctx)

    # A TLS handshake comes before the connection, and its header timeout, exist: bound it
    # the same, or a client that connects and stalls mid-handshake holds a socket for the
    # event loop's default of a minute (slowloris over TLS). The listener itself is plain TCP:
    # the accept path counts the client, then runs the handshake (.tls_accept).
    tls = None
    if ssl is not None:
        # Handshakes in progress have a cap of their own, within the connections' (and off
        # with it: max_connections_per_client = 0).
        shaking = min(limits.max_handshakes_per_client, limits.max_connections_per_client)
        handshakes = None
        if shaking:
            handshakes = ClientCap(shaking, exempt=uncapped, setting="TLS handshakes in progress")
        tls = TlsAcceptor(ctx, ssl, limits.header_timeout, handshakes)
    accept: Callable[[], asyncio.Protocol] = factory if tls is None else tls.protocol
    proxy = None
    if proxy_from is not None:
        own = factory if tls is None else tls.protocol
        proxy = ProxyAcceptor(loop, own, proxy_from, limits.header_timeout)
        accept = proxy.protocol
    if sock is not None:
        server = await loop.create_server(accept, sock=sock, backlog=backlog)
    else:
        server = await loop.create_server(
            accept,
            host,
            port,
            backlog=backlog,
            reuse_port=reuse_port or None,
            reuse_address=True,
        )
    return GatewayServer(server, ctx, own_pool, tls, proxy)
