"""Plain HTTP sent to a TLS listener is told so, as nginx does (lychgate.gateway.http.tls_accept).

The accept path reads the client's first bytes before it starts TLS: a capital letter (a
method) gets a plaintext ``400``, then the socket lingers so that the answer is read rather
than lost to a reset. Anything else goes to the TLS handshake as before. Real sockets on
loopback, trustme certificates; loopback is counted here (``uncapped=_counted``), as a public
client would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

import pytest
import trustme

from gateway.client import get
from gateway.conftest import Answers, Connect, Start
from gateway.test_clientcap import _counted
from gateway.test_tls import _pair, _trusting
from gateway.waiting import eventually
from lychgate.gateway.http import GatewayServer, Limits
from lychgate.gateway.http.tls import server_context
from lychgate.gateway.http.tls_accept import PLAIN_HTTP, plain_http_refusal
from lychgate.gateway.types import Decision, RequestHead, Respond

pytestmark = pytest.mark.loopback

NAME = "app.example"


@pytest.fixture
def listener_ctx(ca: trustme.CA, tmp_path: Path) -> ssl.SSLContext:
    return server_context(_pair(ca, tmp_path, NAME))


def _answer(head: RequestHead) -> Decision:
    return Respond(200, (), head.target.encode())


async def _listener(
    gateway: Start, ctx: ssl.SSLContext, answers: Answers, linger: float = 2.0
) -> GatewayServer:
    limits = Limits(max_connections_per_client=4, linger_timeout=linger)
    return await gateway(_answer, ssl=ctx, limits=limits, uncapped=_counted, on_response=answers)


async def _served_over_tls(connect: Connect, port: int, ca: trustme.CA) -> int:
    client = await connect(port, ssl_context=_trusting(ca), server_hostname=NAME)
    await client.send(get("/tls"))
    return (await client.read_response()).status


def test_the_answer_says_why_and_echoes_nothing() -> None:
    page = plain_http_refusal(b"Tue, 01 Dec 2026 00:00:00 GMT", "0123456789abcdef01234567")
    head, _, body = page.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"\r\nconnection: close" in head
    assert b"\r\ncontent-length: %d" % len(body) in head
    assert body == b"400 Bad Request: plain HTTP was sent to the HTTPS port\n"


async def test_plain_http_to_the_tls_port_gets_a_400_that_says_so(
    gateway: Start, connect: Connect, listener_ctx: ssl.SSLContext, ca: trustme.CA
) -> None:
    answers = Answers()
    gw = await _listener(gateway, listener_ctx, answers)
    client = await connect(gw.port)
    await client.send(get("/x", extra="X-Probe: <script>\r\n"))
    r = await client.read_response()
    assert (r.status, r.header("connection")) == (400, "close")
    assert b"plain HTTP was sent to the HTTPS port" in r.body
    assert b"script" not in r.raw_head + r.body  # nothing of the request comes back
    assert await client.read_until_closed() == b""  # then the gateway's half of it closes
    assert answers.seen == [(400, PLAIN_HTTP)]  # recorded like any answer
    assert answers.rids == [r.header("x-request-id")]  # with the id the client was given
    assert gw.held_by("127.0.0.1") == 1  # lingering until the client closes its half
    await client.close()
    await eventually(lambda: gw.held_by("127.0.0.1") == 0 and gw.handshakes == 0)
    assert await _served_over_tls(connect, gw.port, ca) == 200  # TLS as before


async def test_the_400_survives_a_body_still_arriving(
    gateway: Start, connect: Connect, listener_ctx: ssl.SSLContext
) -> None:
    # Closed at once, the socket would answer the rest of the body with a reset, which can
    # destroy the 400 before the client reads it: it lingers, reading and dropping instead.
    answers = Answers()
    gw = await _listener(gateway, listener_ctx, answers, linger=0.5)
    client = await connect(gw.port)
    await client.send(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 300000\r\n\r\n")
    await eventually(lambda: answers.seen)  # answered (and half-closed), none of it read yet
    for _ in range(30):
        await client.send(b"x" * 10000)
    r = await client.read_response()
    assert r.status == 400
    # A client that keeps the socket open is cut at linger_timeout: its slot comes back.
    await eventually(lambda: gw.held_by("127.0.0.1") == 0 and gw.handshakes == 0)


async def test_lingering_drops_a_mebibyte_at_most(
    gateway: Start, connect: Connect, listener_ctx: ssl.SSLContext
) -> None:
    answers = Answers()
    gw = await _listener(gateway, listener_ctx, answers, linger=3600)
    client = await connect(gw.port)
    await client.send(get())
    await eventually(lambda: answers.seen)
    with contextlib.suppress(ConnectionError):
        for _ in range(40):  # 2.5 MiB: cut past the first, long before the linger's hour
            await client.send(b"x" * 65536)
    await eventually(lambda: gw.held_by("127.0.0.1") == 0 and gw.handshakes == 0)


async def test_a_first_byte_that_is_no_method_goes_to_tls(
    gateway: Start, connect: Connect, listener_ctx: ssl.SSLContext
) -> None:
    # Lower case is no method: the handshake refuses it as any bytes that are not TLS,
    # with no plaintext answer.
    answers = Answers()
    gw = await _listener(gateway, listener_ctx, answers)
    client = await connect(gw.port)
    await client.send(b"get / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert b"HTTP/1.1" not in await client.read_until_closed()
    assert answers.seen == []
    await eventually(lambda: gw.held_by("127.0.0.1") == 0 and gw.handshakes == 0)


async def test_a_tls_hello_sent_a_byte_at_a_time_is_served(
    gateway: Start, connect: Connect, listener_ctx: ssl.SSLContext, ca: trustme.CA
) -> None:
    # The first read holds one byte of the hello: the rest reaches the TLS layer itself.
    gw = await _listener(gateway, listener_ctx, Answers())
    ctx = _trusting(ca)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=NAME)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        writer.write(hello[:1])
        await writer.drain()
        await asyncio.sleep(0.05)  # its own read
        writer.write(hello[1:])
        while True:
            incoming.write(await reader.read(65536))
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                writer.write(outgoing.read())
        tls.write(get("/tls"))
        writer.write(outgoing.read())
        plain = b""
        while b"/tls" not in plain:
            incoming.write(await reader.read(65536))
            with contextlib.suppress(ssl.SSLWantReadError):
                plain += tls.read(65536)
        assert plain.startswith(b"HTTP/1.1 200 ")
    finally:
        writer.close()
