"""``python -m bench.relay``: the floor of the gateway's architecture, as a benchmark target.

A relay with no features: uvloop, one upstream connection per client connection, and llhttp
(httptools) run over both directions with no callbacks, so each byte is parsed as the gateway
parses it, then forwarded unchanged. No admission, no header rewriting, no pool, no timeouts,
no limits. It is what DESIGN.md calls "a bare asyncio + httptools + uvloop relay": whatever
this process costs per request, the gateway cannot cost less, so the bench prints it beside
the gateway to show how much of the gap to nginx is the architecture and how much is ours.

It is not a proxy anybody should run: it trusts both sides and never closes an idle
connection. After an Upgrade (or any parse error) it stops parsing and pipes raw bytes. With
two sockets per client, 10k idle clients need 20k descriptors: at the usual limit of 20,000
open files a few of them fail, and the bench's notes column says so.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from typing import cast

import uvloop
from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser, HttpResponseParser


class _Nothing:
    """Parser callbacks: none. llhttp still validates and frames every message."""


class _Reading(_Nothing):
    """Parser callbacks that read the head as the gateway does: URL, then decoded fields.

    With ``--read-headers``: the cost of merely looking at each head from Python, which any
    gateway that decides on headers pays, before deciding anything.
    """

    __slots__ = ("fields", "url")

    def __init__(self) -> None:
        self.url = b""
        self.fields: list[tuple[str, str]] = []

    def on_message_begin(self) -> None:
        self.url = b""
        self.fields = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name.decode("latin-1").lower(), value.decode("latin-1")))


class _Side(asyncio.Protocol):
    """One end of a relayed pair: what it reads is parsed, then written to the peer."""

    def __init__(self, parser: HttpRequestParser | HttpResponseParser | None) -> None:
        self.parser = parser
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.pending: list[bytes] = []  # read before the peer was connected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if parser is not None:
            try:
                parser.feed_data(data)
            except (HttpParserUpgrade, HttpParserError):
                self.parser = None  # from here on a tunnel (or garbage): raw bytes
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)
        else:
            self.pending.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.close()

    # Backpressure: a peer that cannot take more stops our reading.
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class _Client(_Side):
    def __init__(self, upstream: tuple[str, int], callbacks: type[_Nothing]) -> None:
        super().__init__(HttpRequestParser(callbacks()))
        self.upstream = upstream
        self.callbacks = callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, side = await loop.create_connection(
                lambda: _Side(HttpResponseParser(self.callbacks())), *self.upstream
            )
        except OSError:
            if self.transport is not None:
                self.transport.close()
            return
        if self.transport is None:
            if side.transport is not None:
                side.transport.close()
            return
        side.peer, self.peer = self, side
        assert side.transport is not None
        if self.pending:
            side.transport.writelines(self.pending)
            self.pending = []


async def serve(
    listen: tuple[str, int], upstream: tuple[str, int], *, read_headers: bool = False
) -> None:
    loop = asyncio.get_running_loop()
    callbacks = _Reading if read_headers else _Nothing
    server = await loop.create_server(lambda: _Client(upstream, callbacks), *listen, backlog=4096)
    async with server:
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__.splitlines()[0])
    p.add_argument("--listen", type=int, required=True, help="port on 127.0.0.1")
    p.add_argument("--upstream", type=int, required=True, help="port on 127.0.0.1")
    p.add_argument(
        "--read-headers",
        action="store_true",
        help="decode every URL and header field into Python objects, as the gateway does",
    )
    args = p.parse_args(argv)
    listen, upstream = ("127.0.0.1", args.listen), ("127.0.0.1", args.upstream)
    uvloop.run(serve(listen, upstream, read_headers=args.read_headers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
