"""Streaming both ways with backpressure (lychgate.gateway.http.proxy, .connection, .upstream).

200 MB go through the gateway in each direction while the receiving side stalls first; the
peak resident memory of the whole test process (client, gateway and upstream share it) must
grow by less than 32 MB, so nothing on the way buffers the body.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.client import get
from gateway.conftest import Connect, Start, forward_to
from gateway.upstreams import raw_upstream, read_head
from gateway.waiting import eventually, steady
from lychgate.gateway.http import Limits

pytestmark = [pytest.mark.loopback, pytest.mark.slow]

TOTAL = 200 * 1024 * 1024
CHUNK = 1024 * 1024
BOUND = 32 * 1024 * 1024


def _peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


async def test_download_is_streamed_with_bounded_memory(gateway: Start, connect: Connect) -> None:
    block = b"d" * CHUNK
    written = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal written
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % TOTAL)
        for _ in range(TOTAL // CHUNK):
            writer.write(block)
            written += CHUNK
            await writer.drain()
        await reader.read()  # until the gateway closes

    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        _reset_peak()
        before = _rss()
        await c.send(get())
        await c.reader.readuntil(b"\r\n\r\n")
        # The client stalls: the upstream must be held back. Every buffer on the way fills
        # and the upstream's writes stop; without backpressure they would run to the end.
        await steady(lambda: written, what="the upstream held back")
        assert written < TOTAL
        assert _peak_rss() - before < BOUND
        received = 0
        async with asyncio.timeout(60):
            while received < TOTAL:
                data = await c.reader.read(CHUNK)
                assert data
                received += len(data)
        assert received == TOTAL
        assert _peak_rss() - before < BOUND


async def test_upload_is_streamed_with_bounded_memory(gateway: Start, connect: Connect) -> None:
    release = asyncio.Event()
    got = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal got
        await read_head(reader)
        await release.wait()  # the upstream stalls: the client must be held back
        while got < TOTAL:
            data = await reader.read(CHUNK)
            if not data:
                break
            got += len(data)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await reader.read()  # until the gateway closes

    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        _reset_peak()
        before = _rss()
        await c.send(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % TOTAL)
        block = b"u" * CHUNK
        sent = 0

        async def upload() -> None:
            nonlocal sent
            for _ in range(TOTAL // CHUNK):
                c.writer.write(block)
                sent += CHUNK
                await c.writer.drain()

        async with asyncio.timeout(60):
            sending = asyncio.create_task(upload())
            # Every buffer on the way fills and the client's writes stop; without
            # backpressure the gateway would take all of it.
            await steady(lambda: sent, what="the client held back")
            assert sent < TOTAL
            assert _peak_rss() - before < BOUND
            release.set()
            await sending
            r = await c.read_response()
        assert r.status == 200
        assert got == TOTAL
        assert _peak_rss() - before < BOUND


async def test_chunked_upload_is_streamed_to_the_upstream_as_it_comes(
    gateway: Start, connect: Connect
) -> None:
    first = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        assert await reader.readuntil(b"first\r\n")
        first.set()
        await reader.readuntil(b"0\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
        await c.send(b"5\r\nfirst\r\n")
        async with asyncio.timeout(10):
            await first.wait()  # reached the upstream before the client finished
        await c.send(b"0\r\n\r\n")
        assert (await c.read_response()).status == 200


async def test_a_client_that_stops_reading_is_cut(gateway: Start, connect: Connect) -> None:
    upstream_done = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % TOTAL)
        try:
            for _ in range(TOTAL // CHUNK):
                writer.write(b"s" * CHUNK)
                await writer.drain()
        except ConnectionError:
            upstream_done.set()  # the gateway dropped the upstream with the client

    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url), limits=Limits(send_timeout=0.3))
        c = await connect(gw.port)
        await c.send(get())  # and never read
        async with asyncio.timeout(10):
            await upstream_done.wait()
        await eventually(lambda: gw.open_connections == 0)
