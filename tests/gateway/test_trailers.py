"""Trailer fields of chunked content, both ways: dropped, and bounded (SECURITY.md 8).

llhttp buffers a field until it ends, so one endless trailer line after the last chunk would
grow without limit; lychgate.gateway.http.trailers bounds it, and the fields' total, while
content in chunks of any size, split anywhere, is never mistaken for trailer bytes.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from gateway.client import get
from gateway.conftest import Connect, RawRoute, Start, assert_cut, forward_to
from gateway.upstreams import Reply, Seen, http_upstream, read_head
from lychgate.gateway.http import Limits
from lychgate.gateway.http.trailers import TrailerGuard

pytestmark = pytest.mark.loopback

CHUNKED_OK = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
PIECE = b"a" * 8192


async def _endless(writer: asyncio.StreamWriter, up_to: int = 4 * 1024 * 1024) -> int:
    """Write ``PIECE`` after ``PIECE`` until the peer stops reading or ``up_to`` is sent."""
    sent = 0
    with contextlib.suppress(ConnectionError):
        while sent < up_to:
            writer.write(PIECE)
            await writer.drain()
            sent += len(PIECE)
            await asyncio.sleep(0)
    return sent


# -- from upstreams --------------------------------------------------------------------------


async def test_small_trailers_are_dropped_and_the_response_completes(raw_route: RawRoute) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_head(reader)
            writer.write(CHUNKED_OK + b"4\r\nbody\r\n0\r\nX-Sum: abc\r\nX-Other: 1\r\n\r\n")
            await writer.drain()

    async with raw_route(serve) as (c, up):
        for _ in range(2):
            await c.send(get())
            r = await c.read_response()
            assert (r.status, r.body, r.header("x-sum")) == (200, b"body", None)
        assert up.connections == 1  # and the connection is reused


@pytest.mark.parametrize("shape", ["one endless line", "many fields"])
async def test_an_upstream_trailer_flood_cuts_the_response(raw_route: RawRoute, shape: str) -> None:
    sent: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(CHUNKED_OK + b"4\r\nbody\r\n0\r\n")
        if shape == "one endless line":
            writer.write(b"X-T: ")
            sent.append(await _endless(writer))
        else:
            field = b"X-F: " + b"f" * 1000 + b"\r\n"
            for _ in range(200):  # 200 kB of fields: over the 64 KiB of a response head
                writer.write(field)
            await writer.drain()
            await asyncio.sleep(30)  # and never ends them: only the bound can end this

    async with raw_route(serve) as (c, _):
        await c.send(get())
        assert_cut(await c.read_until_closed(), b"body")
    if sent:
        assert sent[0] < 4 * 1024 * 1024  # the gateway stopped reading it


async def test_content_split_after_chunk_headers_is_not_taken_for_trailers(
    raw_route: RawRoute,
) -> None:
    # Every read ends just after a chunk header, and its content comes in the next one: the
    # worst case for telling content from trailers. 2 MiB of it must pass whole.
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(CHUNKED_OK)
        for _ in range(32):
            writer.write(b"10000\r\n")
            await writer.drain()
            await asyncio.sleep(0.002)
            writer.write(b"b" * 0x10000 + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n")
        await writer.drain()
        await asyncio.sleep(0.002)
        writer.write(b"X-Done: 1\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async with raw_route(serve) as (c, _):
        await c.send(get())
        r = await c.read_response()
        assert (r.status, len(r.body)) == (200, 32 * 0x10000)


# -- from clients ----------------------------------------------------------------------------


async def _echo_length(seen: Seen, reply: Reply) -> None:
    await reply.head(200)
    await reply.body(b"%d" % len(seen.body))
    await reply.end()


UPLOAD = b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize("shape", ["one endless line", "many fields"])
async def test_a_client_trailer_flood_is_431(gateway: Start, connect: Connect, shape: str) -> None:
    async with http_upstream(_echo_length) as up:
        gw = await gateway(forward_to(up.url), limits=Limits(max_header_bytes=16 * 1024))
        c = await connect(gw.port)
        await c.send(UPLOAD + b"4\r\ndata\r\n0\r\n")
        if shape == "one endless line":
            await c.send(b"X-T: ")
            sent = await _endless(c.writer, up_to=1024 * 1024)
        else:
            with contextlib.suppress(ConnectionError):
                await c.send(b"".join(b"X-F: %s\r\n" % (b"f" * 1000) for _ in range(40)))
            sent = 0
        r = await c.read_response()
        assert r.status == 431
        assert r.header("connection") == "close"
        assert sent <= 1024 * 1024


async def test_an_upload_split_after_chunk_headers_passes_whole(
    gateway: Start, connect: Connect
) -> None:
    async with http_upstream(_echo_length) as up:
        gw = await gateway(forward_to(up.url), limits=Limits(max_header_bytes=16 * 1024))
        c = await connect(gw.port)
        await c.send(UPLOAD)
        for _ in range(16):
            await c.send(b"8000\r\n")
            await asyncio.sleep(0.002)
            await c.send(b"u" * 0x8000 + b"\r\n")
        await c.send(b"0\r\n")
        await asyncio.sleep(0.002)
        await c.send(b"X-Done: 1\r\n\r\n")
        r = await c.read_response()
        assert (r.status, r.body) == (200, b"%d" % (16 * 0x8000))


# -- the guard alone ---------------------------------------------------------------------------


def test_the_guard_counts_only_reads_that_hold_nothing_but_trailer_bytes() -> None:
    guard = TrailerGuard()
    assert not guard.before_read()  # in a head, or before any chunk: nothing to count
    guard.chunk_header()  # a read ends just after a chunk header ...
    assert guard.before_read()
    guard.after_chunk = False  # ... and the next brings its content (on_body): not trailers
    assert not guard.after_read(100_000, 10)
    assert not guard.before_read()
    guard.chunk_header()  # the last chunk, in a read with content before it: not counted
    assert not guard.after_read(100_000, 10)
    assert guard.before_read()
    assert not guard.after_read(6, 10)  # then reads of trailer bytes alone: counted
    assert guard.before_read()
    assert guard.after_read(6, 10)
    assert not guard.field(8, 10)
    assert guard.field(8, 10)
    guard.chunk_header()  # the next message's chunks start the counts again
    assert not guard.field(8, 10)
