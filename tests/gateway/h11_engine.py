"""The whole engine against an h11 upstream, without sockets: the harness of the smuggling and
desync properties (test_smuggling.py, test_response_desync.py).

:func:`run_engine` feeds client bytes, in the reads given, to a real :class:`ClientConnection`
whose handler forwards every request except those under ``/deny`` (refused with 403) and lets
only ``/ws`` upgrade. The real exchange, pool connection and response parser carry each
forwarded request to an :class:`H11Upstream`: h11, an independent parser, behind a fake
transport. It records every request it parses and answers each with raw bytes from an
:data:`Answer` (by default a plain ``ok``), delivered like TCP: in order, in reads of
``cut`` bytes. The loop is run until nothing is left to deliver.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import h11
import uvloop

from gateway.fakes import FakeTransport, feed_client
from lychgate.gateway.http import Limits
from lychgate.gateway.http.context import ServerContext
from lychgate.gateway.http.pool import UpstreamPool, unverified_client_context
from lychgate.gateway.http.tunnel_registry import TunnelRegistry
from lychgate.gateway.http.upstream import UpstreamConnection
from lychgate.gateway.types import Decision, Forward, Handler, RequestHead, Respond, Upstream

#: Read sizes to split answers (and client bytes) into; 0 means all at once.
READ_SIZES: Final = (0, 1, 2, 3, 7, 16)
UPSTREAM = Upstream("http://upstream.invalid")


def ok(request: h11.Request) -> tuple[bytes, bool]:
    """A well-behaved upstream's answer: ``ok``, keep-alive."""
    body = b"" if request.method == b"HEAD" else b"ok"
    return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n" + body, False


Answer = Callable[[h11.Request], tuple[bytes, bool]]


@dataclass
class Seen:
    """The upstream's side: what it parsed, (method, target, body) per request, and errors."""

    answer: Answer = ok  # the raw bytes sent back, and whether the upstream then closes
    cut: int = 0  # when not 0, answers arrive in reads of this many bytes
    pending: int = 0  # reads scheduled and not yet delivered
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    connections: int = 0  # connections the pool opened


class H11Upstream(FakeTransport):
    """The upstream's end of one pooled connection: h11 reads requests, answers each one."""

    def __init__(self, conn: UpstreamConnection, seen: Seen) -> None:
        super().__init__(conn)
        self.conn = conn
        self.seen = seen
        self.h11 = h11.Connection(h11.SERVER)
        self.request: h11.Request | None = None
        self.body = b""
        self.outbox = bytearray()
        self.sending = False
        self.close_after = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        super().write(data)
        self._parse(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        super().writelines(list_of_data)
        self._parse(b"".join(list_of_data))

    def _parse(self, data: bytes) -> None:
        try:
            self.h11.receive_data(data)
            self._events()
        except h11.RemoteProtocolError as exc:
            self.seen.errors.append(str(exc))

    def _events(self) -> None:
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self.request, self.body = event, b""
            elif isinstance(event, h11.Data):
                self.body += event.data
            elif isinstance(event, h11.EndOfMessage):
                request = self.request
                assert request is not None
                self.seen.requests.append(
                    (request.method.decode(), request.target.decode(), self.body)
                )
                # h11 only keeps the request side in step here; the answer is raw bytes.
                self.h11.send(h11.Response(status_code=204, headers=[]))
                self.h11.send(h11.EndOfMessage())
                self.h11.start_next_cycle()
                answer, close = self.seen.answer(request)
                self._deliver(answer, close)

    def _deliver(self, answer: bytes, close: bool) -> None:
        """Queue an answer: like TCP, the bytes arrive in order, in reads of ``seen.cut``."""
        self.outbox += answer
        self.close_after = self.close_after or close
        if not self.sending:
            self.sending = True
            self.seen.pending += 1
            asyncio.get_running_loop().call_soon(self._send)

    def _send(self) -> None:
        self.seen.pending -= 1
        self.sending = False
        if self.closed:
            return
        cut = self.seen.cut or len(self.outbox)
        data = bytes(self.outbox[:cut])
        del self.outbox[:cut]
        if data:
            self.conn.data_received(data)
        if self.outbox:
            self._deliver(b"", close=False)
        elif self.close_after and not self.closed:
            self.closed = True
            self.conn.eof_received()  # a clean close, as a transport reports a FIN
            self.conn.connection_lost(None)


class H11Pool(UpstreamPool):
    """A pool whose new connections reach an :class:`H11Upstream` instead of a socket."""

    def __init__(self, seen: Seen) -> None:
        super().__init__(ssl_context=unverified_client_context())
        self.seen = seen

    async def connect(self, upstream: Upstream, owner: str | None = None) -> UpstreamConnection:
        conn = UpstreamConnection((upstream.url, upstream.verify_tls), self.batch, 256 * 1024)
        conn.owner = owner
        self.seen.connections += 1
        conn.connection_made(H11Upstream(conn, self.seen))
        return conn


Decided = list[tuple[str, str, bool]]  # method, target, and whether it was forwarded


def _deciding(decided: Decided) -> Handler:
    def handle(head: RequestHead) -> Decision:
        forward = not head.path.startswith("/deny")
        decided.append((head.method, head.target, forward))
        if not forward:
            return Respond(403)
        upgrade = head.path.startswith("/ws")  # the app allows upgrades; /ok does not
        return Forward(UPSTREAM, head.target, (("host", "app"),), app=None, allow_upgrade=upgrade)

    return handle


async def _drive(chunks: list[bytes], seen: Seen, decided: Decided) -> bytes:
    loop = asyncio.get_running_loop()
    pool = H11Pool(seen)
    ctx = ServerContext(
        loop=loop,
        handler=_deciding(decided),
        limits=Limits(max_header_bytes=2048, max_headers=16, max_drain_bytes=256),
        pool=pool,
        tunnels=TunnelRegistry(),
        scheme="http",
        batch=pool.batch,
    )
    transport = await feed_client(ctx, chunks, lambda: _settle(seen), settle_each=True)
    return bytes(transport.written)


async def _settle(seen: Seen) -> None:
    """Run the loop until the upstream has nothing left to deliver, and the engine nothing left
    to do about it (the pool's connect, the next dispatch) for a few turns."""
    quiet = 0
    for _ in range(10_000):
        quiet = 0 if seen.pending else quiet + 1
        if quiet > 4:
            return
        await asyncio.sleep(0)
    raise AssertionError("the exchange never settled")


def run_engine(
    chunks: list[bytes], answer: Answer = ok, cut: int = 0
) -> tuple[Seen, Decided, bytes]:
    """What the upstream saw, what the handler decided, and what the client was sent."""
    seen, decided = Seen(answer, cut), Decided()
    loop = uvloop.new_event_loop()
    try:
        out = loop.run_until_complete(_drive(chunks, seen, decided))
    finally:
        loop.close()
    return seen, decided, out


def client_view(
    out: bytes, methods: list[str]
) -> list[tuple[int, list[tuple[bytes, bytes]], bytes]]:
    """The complete responses a strict client parses from what we wrote, in order.

    h11 must know each request to frame its response (a HEAD's has no content): ``methods``
    are those the handler saw, in order; an error page answers a request it never saw.
    """
    client = h11.Connection(h11.CLIENT)
    responses: list[tuple[int, list[tuple[bytes, bytes]], bytes]] = []
    while True:
        method = methods[len(responses)] if len(responses) < len(methods) else "GET"
        try:
            client.send(h11.Request(method=method, target="/", headers=[("host", "h")]))
            client.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            return responses
        if out:
            client.receive_data(out)  # all that was written (no EOF: the client stays open)
            out = b""
        status, fields, body = 0, [], b""
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return responses
            if isinstance(event, h11.Response):
                status, fields = event.status_code, list(event.headers)
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                responses.append((status, fields, body))
                break
            elif isinstance(event, h11.ConnectionClosed):
                return responses
        try:
            client.start_next_cycle()
        except h11.LocalProtocolError:
            return responses
