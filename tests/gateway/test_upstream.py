"""Parsing upstream responses (lychgate.gateway.http.upstream): a broken or hostile upstream
must never leak one response into another, or be reused after misbehaving."""

from __future__ import annotations

import asyncio

import pytest

from gateway.client import get
from gateway.conftest import Connect, Start, forward_to
from gateway.upstreams import raw_upstream, read_head

pytestmark = pytest.mark.loopback

REAL = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal"  # what an upstream meant to say


async def test_bytes_after_a_response_are_dropped_with_the_connection(
    gateway: Start, connect: Connect
) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_head(reader)
            # A second, unrequested response in the same write: response splitting.
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsmuggl"
            )
            await writer.drain()

    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        for _ in range(3):
            await c.send(get())
            assert (await c.read_response()).body == b"ok"
        assert up.connections == 3  # never reused


async def test_unsolicited_bytes_on_an_idle_connection(gateway: Start, connect: Connect) -> None:
    answered, dropped = asyncio.Event(), asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await answered.wait()  # the exchange is over: the connection is idle in the pool
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsmuggl")
        await writer.drain()
        if not await reader.read():  # the gateway closed it, not waiting for a next request
            dropped.set()

    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(get())
        assert (await c.read_response()).body == b"ok"
        answered.set()
        async with asyncio.timeout(10):
            await dropped.wait()
        await c.send(get())
        assert (await c.read_response()).body == b"ok"
        assert up.connections == 2


async def test_content_after_a_head_response_is_not_reused(
    gateway: Start, connect: Connect
) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await read_head(reader)
            if head.startswith(b"HEAD"):  # wrongly sends the content too
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody")
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nget")
            await writer.drain()

    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
        r = await c.read_response(head_request=True)
        assert r.header("content-length") == "4"
        await c.send(get())
        assert (await c.read_response()).body == b"get"
        assert up.connections == 2


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\n" + b"".join(b"x-%d: v\r\n" % i for i in range(300)) + b"\r\n",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzzz",
        # A coding before chunked: the gateway forwards no TE, so no client asked for one.
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nzzz\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.2\r\n",
        # A 1xx with content, which llhttp reads for statuses other than 100, 102 and 103:
        # it must not reach the client as bytes ahead of the real response.
        b"HTTP/1.1 150 X\r\nContent-Length: 38\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n" + REAL,
        b"HTTP/1.1 199 X\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nEVIL!\r\n0\r\n\r\n" + REAL,
        # Chunked twice: llhttp undoes it once; the client must not be told it is twice.
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n4\r\nreal\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nreal\r\n0\r\n\r\n",
    ],
    ids=[
        "many_fields",
        "huge_field",
        "gzip_only",
        "gzip_chunked",
        "cl_and_te",
        "bare_lf",
        "bad_status",
        "ssh",
        "interim_with_length",
        "interim_chunked",
        "chunked_twice",
        "two_te_fields",
    ],
)
async def test_bad_upstream_responses_are_502(
    gateway: Start, connect: Connect, response: bytes
) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(response)
        await writer.drain()
        await asyncio.sleep(1)

    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(get())
        r = await c.read_response()
        assert (r.status, r.body) == (502, r.page())
