"""Small real upstream servers for loopback tests, on 127.0.0.1 ephemeral ports.

* :func:`http_upstream` parses with h11 (an independent parser, so a framing bug in the engine
  shows up as a disagreement) and runs an ``app`` per request.
* :func:`raw_upstream` hands each connection's streams to a coroutine, for responses that h11
  would refuse to produce (close-delimited bodies, extra bytes, bad framing, silence).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import h11

#: The fields of a WebSocket handshake (its key is RFC 6455's own example, section 1.3)...
WS_FIELDS = (
    "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)
#: ...and an upstream's answer to it, with the Sec-WebSocket-Accept that the RFC gives for that
#: key: the tunnel opens behind it.
SWITCHED = (
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
)


@dataclass
class Seen:
    """A request as the upstream received it."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    http_version: str

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


class Reply:
    """Writes one response through h11."""

    def __init__(self, conn: h11.Connection, writer: asyncio.StreamWriter) -> None:
        self._conn = conn
        self._writer = writer

    async def _send(self, event: h11.Event) -> None:
        data = self._conn.send(event)
        if data:
            self._writer.write(data)
            await self._writer.drain()

    async def info(self, status: int, headers: list[tuple[str, str]] | None = None) -> None:
        await self._send(h11.InformationalResponse(status_code=status, headers=headers or []))

    async def head(self, status: int, headers: list[tuple[str, str]] | None = None) -> None:
        await self._send(h11.Response(status_code=status, headers=headers or []))

    async def body(self, data: bytes) -> None:
        await self._send(h11.Data(data=data))

    async def end(self) -> None:
        await self._send(h11.EndOfMessage())

    async def send(
        self, status: int = 200, body: bytes = b"", headers: list[tuple[str, str]] | None = None
    ) -> None:
        hs = list(headers or [])
        if not any(k.lower() == "content-length" for k, _ in hs):
            hs.append(("content-length", str(len(body))))
        await self.head(status, hs)
        if body:
            await self.body(body)
        await self.end()


App = Callable[[Seen, Reply], Awaitable[None]]


@dataclass
class Upstream:
    """A running test upstream."""

    server: asyncio.Server
    seen: list[Seen] = field(default_factory=list)
    writers: set[asyncio.StreamWriter] = field(default_factory=set)
    connections: int = 0
    tls: bool = False

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"


async def echo(seen: Seen, reply: Reply) -> None:
    """Answers with a short description of the request."""
    body = f"{seen.method} {seen.target} {len(seen.body)}".encode()
    await reply.send(200, body, [("x-upstream", "echo")])


async def _serve_h11(
    up: Upstream, app: App, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            request: h11.Request | None = None
            body = bytearray()
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    conn.receive_data(data)
                    if not data and request is None:
                        return
                    continue
                if isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    return
            assert request is not None
            seen = Seen(
                method=request.method.decode(),
                target=request.target.decode(),
                headers=[(k.decode(), v.decode("latin-1")) for k, v in request.headers],
                body=bytes(body),
                http_version=request.http_version.decode(),
            )
            up.seen.append(seen)
            await app(seen, Reply(conn, writer))
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except (ConnectionError, h11.RemoteProtocolError):
        return
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def http_upstream(
    app: App = echo, *, ssl: ssl.SSLContext | None = None
) -> AsyncIterator[Upstream]:
    """An h11 upstream running ``app`` for each request."""
    holder: list[Upstream] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up = holder[0]
        up.connections += 1
        up.writers.add(writer)
        try:
            await _serve_h11(up, app, reader, writer)
        finally:
            up.writers.discard(writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl)
    up = Upstream(server, tls=ssl is not None)
    holder.append(up)
    try:
        yield up
    finally:
        await _stop(up)


async def _stop(up: Upstream) -> None:
    up.server.close()
    for writer in list(up.writers):
        writer.transport.abort()
    await up.server.wait_closed()
    await asyncio.sleep(0)


Raw = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_upstream(serve: Raw) -> AsyncIterator[Upstream]:
    """An upstream that runs ``serve`` on each connection's streams."""
    holder: list[Upstream] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up = holder[0]
        up.connections += 1
        up.writers.add(writer)
        try:
            await serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            up.writers.discard(writer)
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    up = Upstream(server)
    holder.append(up)
    try:
        yield up
    finally:
        await _stop(up)


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """The raw request head (through the blank line)."""
    return await reader.readuntil(b"\r\n\r\n")
