"""The Python upstreams: an HTTP sink for uploads and a WebSocket echo server.

nginx serves the small and 1 MB bodies, but it cannot echo WebSocket messages, and when it
answers an upload with ``return 200`` it may reply before reading the body, so a proxy in front
of it would measure discarding, not forwarding. The sink reads every byte of the request body
(Content-Length or chunked, parsed by httptools) and only then answers with the byte count, which
the upload client checks.

Run as ``python -m bench.upstream --sink-port P --ws-port Q`` (both on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import cast

import httptools
import uvloop

from bench.procs import LOOPBACK
from bench.wsframes import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameError,
    FrameReader,
    encode_frame,
    upgrade_key,
    upgrade_response,
)

MAX_HEAD = 16 * 1024
UPGRADE_REQUIRED = (
    b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\nContent-Length: 0\r\n"
    b"Connection: close\r\n\r\n"
)


class SinkProtocol(asyncio.Protocol):
    """HTTP/1.1 server that counts request body bytes and answers with the count."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._count = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport implements asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if self._transport is not None:
                self._transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                self._transport.close()

    # httptools parser callbacks
    def on_message_begin(self) -> None:
        self._count = 0

    def on_body(self, body: bytes) -> None:
        self._count += len(body)

    def on_message_complete(self) -> None:
        if self._transport is None:
            return
        body = b"%d\n" % self._count
        keep_alive = self._parser.should_keep_alive()
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n" % len(body)
        if not keep_alive:
            head += b"Connection: close\r\n"
        self._transport.write(head + b"\r\n" + body)
        if not keep_alive:
            self._transport.close()


class EchoProtocol(asyncio.Protocol):
    """WebSocket echo: answers the upgrade, then sends every data message back unmasked.

    A plain GET gets 426 Upgrade Required, which is what the runner's readiness check sees.
    """

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._head = bytearray()
        self._frames: FrameReader | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        if self._frames is None:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                if len(self._head) > MAX_HEAD:
                    transport.close()
                return
            key = upgrade_key(bytes(self._head[:end]))
            data = bytes(self._head[end + 4 :])
            if key is None:
                transport.write(UPGRADE_REQUIRED)
                transport.close()
                return
            transport.write(upgrade_response(key))
            self._frames = FrameReader(expect_masked=True)
            if not data:
                return
        try:
            messages = self._frames.feed(data)
        except FrameError:
            transport.write(encode_frame(OP_CLOSE, (1002).to_bytes(2, "big"), masked=False))
            transport.close()
            return
        out = []
        for m in messages:
            if m.opcode in (OP_TEXT, OP_BINARY):
                out.append(encode_frame(m.opcode, m.payload, masked=False))
            elif m.opcode == OP_PING:
                out.append(encode_frame(OP_PONG, m.payload, masked=False))
            elif m.opcode == OP_CLOSE:  # section 5.5.1: echo the status code, then close
                out.append(encode_frame(OP_CLOSE, m.payload[:2], masked=False))
                transport.write(b"".join(out))
                transport.close()
                return
        if out:
            transport.write(b"".join(out))


async def serve_upstreams(sink_port: int, ws_port: int) -> None:
    """Serve the sink and the echo server until cancelled or killed."""
    loop = asyncio.get_running_loop()
    sink = await loop.create_server(SinkProtocol, LOOPBACK, sink_port, backlog=4096)
    echo = await loop.create_server(EchoProtocol, LOOPBACK, ws_port, backlog=4096)
    async with sink, echo:
        await asyncio.gather(sink.serve_forever(), echo.serve_forever())


def main() -> None:
    """Parse ``--sink-port`` and ``--ws-port`` and serve."""
    parser = argparse.ArgumentParser(prog="python -m bench.upstream")
    parser.add_argument("--sink-port", type=int, required=True)
    parser.add_argument("--ws-port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(serve_upstreams(args.sink_port, args.ws_port))


if __name__ == "__main__":
    main()
