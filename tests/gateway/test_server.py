"""Listener lifecycle (lychgate.gateway.http.server): graceful shutdown, SO_REUSEPORT, stats."""

from __future__ import annotations

import asyncio
import logging

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from gateway.client import get
from gateway.conftest import Answers, Connect, Start, forward_to
from gateway.upstreams import Reply, Seen, http_upstream, raw_upstream, read_head
from gateway.waiting import eventually
from lychgate.gateway.http import start_server
from lychgate.gateway.types import Decision, Forward, RequestHead, Respond, Upstream

pytestmark = pytest.mark.loopback


async def test_close_drains_in_flight_requests(gateway: Start, connect: Connect) -> None:
    started = asyncio.Event()

    async def app(seen: Seen, reply: Reply) -> None:
        started.set()
        await asyncio.sleep(0.3)
        await reply.send(200, b"finished")

    async with http_upstream(app) as up:
        gw = await gateway(forward_to(up.url))
        busy = await connect(gw.port)
        idle = await connect(gw.port)
        await idle.send(get())
        await idle.read_response()
        await busy.send(get())
        await started.wait()
        # A drain timeout far past the hang guard: close must end when the request is done.
        closing = asyncio.ensure_future(gw.close(drain_timeout=3600))
        assert await idle.read_until_closed() == b""  # idle: closed at once
        r = await busy.read_response()
        assert (r.status, r.body, r.header("connection")) == (200, b"finished", "close")
        async with asyncio.timeout(10):
            await closing
        with pytest.raises(ConnectionRefusedError):
            await connect(gw.port)  # no longer accepting


async def test_close_drains_an_upload_still_arriving(gateway: Start, connect: Connect) -> None:
    # Its content is read to its end, so that the request can finish; it used to stop being
    # read, and the upload was cut when the drain timeout ran out.
    half = asyncio.Event()

    async def upload(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        content = await reader.readexactly(5)
        half.set()  # forwarded, half its content sent
        content += await reader.readexactly(5)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n" + content)
        await writer.drain()
        await reader.read()  # until the gateway closes

    async with raw_upstream(upload) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nhello")
        await half.wait()
        closing = asyncio.ensure_future(gw.close(drain_timeout=3600))
        await eventually(lambda: not gw.sockets)  # closing: no longer listening
        await c.send(b"world" + get())  # the rest, and a pipelined request, never answered
        r = await c.read_response()
        assert (r.status, r.body, r.header("connection")) == (200, b"helloworld", "close")
        assert await c.read_until_closed() == b""
        async with asyncio.timeout(10):
            await closing
        assert up.connections == 1


async def test_close_cuts_what_outlives_the_drain_timeout(
    gateway: Start, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lychgate.gateway.http.server")
    forwarded = asyncio.Event()

    async def serve_(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        forwarded.set()
        await asyncio.Event().wait()  # never answers: only the drain timeout ends this

    async with raw_upstream(serve_) as up:
        answers = Answers()
        gw = await gateway(forward_to(up.url), on_response=answers)
        c = await connect(gw.port)
        await c.send(get())
        await forwarded.wait()
        async with asyncio.timeout(10):
            await gw.close(drain_timeout=0.2)
        # Nothing of the answer had come: the client is told (it used to get a bare reset,
        # recorded as a 503 it never saw), and the connection closes.
        r = await c.read_response()
        assert (r.status, r.header("connection")) == (503, "close")
        assert await c.read_until_closed() == b""
        assert gw.open_connections == 0
        assert answers.seen == [(503, "gateway stopping: drain timeout")]
    # The operator sees the stop without the access log: what drained, and what was cut.
    assert "1 connection(s) with a request under way get up to 0.2 s" in caplog.text
    assert "1 connection(s) still busy after 0.2 s, cut" in caplog.text


async def test_close_cuts_an_answer_under_way_at_the_drain_timeout(
    gateway: Start, connect: Connect
) -> None:
    streaming = asyncio.Event()

    async def serve_(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf")
        await writer.drain()
        streaming.set()
        await asyncio.Event().wait()  # the rest never comes

    async with raw_upstream(serve_) as up:
        answers = Answers()
        gw = await gateway(forward_to(up.url), on_response=answers)
        c = await connect(gw.port)
        await c.send(get())
        await streaming.wait()
        async with asyncio.timeout(10):
            await gw.close(drain_timeout=0.2)
        received = await c.read_until_closed()
        assert received.startswith(b"HTTP/1.1 200 ")
        assert received.endswith(b"half")  # then the reset: never taken for a whole answer
        assert answers.seen == [(200, "gateway stopping: drain timeout")]  # cut, as sent


async def _echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def test_close_closes_tunnels(gateway: Start) -> None:
    async with serve(_echo, "127.0.0.1", 0) as ws_server:
        port = next(iter(ws_server.sockets)).getsockname()[1]

        def handler(head: RequestHead) -> Decision:
            up = Upstream(f"http://127.0.0.1:{port}")
            return Forward(up, head.target, head.headers, app=None, allow_upgrade=True)

        gw = await gateway(handler)
        async with ws_connect(f"ws://127.0.0.1:{gw.port}/") as ws:
            await ws.send("x")
            await ws.recv()
            await gw.close(drain_timeout=1)
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(10):
                    await ws.recv()
        assert gw.open_tunnels == 0


async def test_reuse_port_lets_two_listeners_share_a_port(gateway: Start, connect: Connect) -> None:
    first = await gateway(lambda head: Respond(200, (), b"one"), reuse_port=True)
    second = await gateway(lambda head: Respond(200, (), b"two"), port=first.port, reuse_port=True)
    assert second.port == first.port
    bodies = set()
    for _ in range(40):
        c = await connect(first.port)
        await c.send(get())
        bodies.add((await c.read_response()).body)
        if len(bodies) == 2:
            break
    assert bodies == {b"one", b"two"}  # the kernel spreads connections over both


async def test_without_reuse_port_the_port_is_taken(gateway: Start) -> None:
    first = await gateway(lambda head: Respond(200))
    with pytest.raises(OSError, match="in use"):
        await start_server(lambda head: Respond(200), port=first.port)


async def test_stats_count_connections_and_requests(gateway: Start, connect: Connect) -> None:
    gw = await gateway(lambda head: Respond(200))
    a = await connect(gw.port)
    b = await connect(gw.port)
    await a.send(get() + get())
    await b.send(get())
    for c, n in ((a, 2), (b, 1)):
        for _ in range(n):
            await c.read_response()
    assert gw.open_connections == 2
    assert gw.stats.connections_total == 2
    assert gw.stats.requests_total == 3
    assert gw.stats.requests_active == 0
