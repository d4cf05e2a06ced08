"""The cap on connections per client, on a TLS listener (lychgate.gateway.http.tls_accept).

A TLS connection counts from the accept, before its handshake: handshakes a client opens and
stalls count too. Real sockets on loopback, trustme certificates; loopback is counted here
(``uncapped=_counted``), as a public client would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from websockets.asyncio.client import connect as ws_connect

from gateway.client import RawClient, Response, get
from gateway.conftest import Connect, Start, upgrade_to
from gateway.test_clientcap import _counted
from gateway.test_tls import _pair, _trusting
from gateway.waiting import eventually
from lychgate.gateway.http import GatewayServer, Limits, start_server
from lychgate.gateway.http.tls import server_context
from lychgate.gateway.types import Decision, Handler, RequestHead, Respond

pytestmark = pytest.mark.loopback

NAME = "app.example"


@pytest.fixture
def listener_ctx(ca: trustme.CA, tmp_path: Path) -> ssl.SSLContext:
    return server_context(_pair(ca, tmp_path, "default.example"), {NAME: _pair(ca, tmp_path, NAME)})


@pytest.fixture
def client_ctx(ca: trustme.CA) -> ssl.SSLContext:
    """Trusts the CA and checks the name: served only with the certificate SNI chose."""
    return _trusting(ca)


@pytest.fixture
def tls13_client(ca: trustme.CA) -> ssl.SSLContext:
    ctx = _trusting(ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


class Seen:
    """A handler that answers every request itself, 200 with its target, and keeps its head."""

    def __init__(self) -> None:
        self.heads: list[RequestHead] = []

    def __call__(self, head: RequestHead) -> Decision:
        self.heads.append(head)
        return Respond(200, (), head.target.encode())


async def _capped(
    gateway: Start,
    handler: Handler,
    ctx: ssl.SSLContext,
    cap: int,
    header_timeout: float = Limits().header_timeout,
) -> GatewayServer:
    """A TLS listener that counts loopback clients, at most ``cap`` connections each."""
    limits = Limits(max_connections_per_client=cap, header_timeout=header_timeout)
    return await gateway(handler, ssl=ctx, limits=limits, uncapped=_counted)


async def _served(connect: Connect, port: int, ctx: ssl.SSLContext) -> Response:
    """A new TLS connection's answer to one GET."""
    client = await connect(port, ssl_context=ctx, server_hostname=NAME)
    await client.send(get("/served"))
    return await client.read_response()


async def _stalled(connect: Connect, port: int, n: int, sent: bytes = b"") -> list[RawClient]:
    """``n`` TCP connections to a TLS port that send ``sent`` and never finish a ClientHello."""
    stalled = [await connect(port) for _ in range(n)]
    if sent:
        for client in stalled:
            await client.send(sent)
    return stalled


def _holds(gw: GatewayServer, held: int, handshakes: int) -> Callable[[], bool]:
    return lambda: gw.held_by("127.0.0.1") == held and gw.handshakes == handshakes


async def test_stalled_handshakes_count_and_the_next_socket_is_cut_at_once(
    gateway: Start,
    connect: Connect,
    listener_ctx: ssl.SSLContext,
    client_ctx: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gw = await _capped(gateway, Seen(), listener_ctx, 3)
    stalled = await _stalled(connect, gw.port, 3)
    await eventually(_holds(gw, 3, 3))
    with caplog.at_level(logging.WARNING, logger="lychgate.gateway.http.clientcap"):
        over = await connect(gw.port)
        # Cut without the plaintext 503, which a TLS client could not read.
        assert await over.read_until_closed() == b""
        with pytest.raises((ConnectionError, ssl.SSLError)):  # the handshake cut short
            await connect(gw.port, ssl_context=client_ctx, server_hostname=NAME)
    assert "refused a connection: 127.0.0.1 holds 3" in caplog.text
    # The first three are still open, and still counted.
    await asyncio.sleep(0.1)
    assert _holds(gw, 3, 3)()
    assert not any(client.reader.at_eof() for client in stalled)

    for client in stalled:
        await client.close()
    await eventually(_holds(gw, 0, 0))
    assert (await _served(connect, gw.port, client_ctx)).status == 200


@pytest.mark.parametrize("sent", [b"", b"\x16\x03\x01\x00"], ids=["nothing", "half a hello"])
async def test_stalled_handshakes_time_out_and_give_their_slots_back(
    gateway: Start,
    connect: Connect,
    listener_ctx: ssl.SSLContext,
    client_ctx: ssl.SSLContext,
    sent: bytes,
) -> None:
    gw = await _capped(gateway, Seen(), listener_ctx, 2, header_timeout=0.3)
    stalled = await _stalled(connect, gw.port, 2, sent)
    await eventually(_holds(gw, 2, 2))
    for client in stalled:  # cut at the header timeout, long before the loop's minute
        await client.read_until_closed()
    await eventually(_holds(gw, 0, 0))
    assert (await _served(connect, gw.port, client_ctx)).status == 200


async def test_a_tls_connection_counts_once_and_keeps_its_sni(
    gateway: Start, connect: Connect, listener_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> None:
    # One slot: a connection counted at the accept and again after its handshake would be
    # refused by its own count.
    seen = Seen()
    gw = await _capped(gateway, seen, listener_ctx, 1)
    client = await connect(gw.port, ssl_context=client_ctx, server_hostname=NAME)
    for target in ("/one", "/two"):
        await client.send(get(target))
        response = await client.read_response()
        assert (response.status, response.body) == (200, target.encode())
    assert [(h.scheme, h.sni) for h in seen.heads] == [("https", NAME)] * 2
    assert _holds(gw, 1, 0)()
    assert gw.open_connections == 1
    await client.close()
    await eventually(_holds(gw, 0, 0))


async def _finished_with_requests(
    port: int, ctx: ssl.SSLContext, requests: bytes, *, close_notify: bool = False
) -> bytes:
    """Handshake by hand, then send the client's Finished and ``requests`` (and with
    ``close_notify`` the end of its TLS side) in one write, so that the server reads them with
    the end of its handshake; what the server answers, to its close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=NAME)
    answered = bytearray()
    try:
        async with asyncio.timeout(10):
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    writer.write(outgoing.read())
                    incoming.write(await reader.read(65536))
            assert tls.version() == "TLSv1.3"
            tls.write(requests)
            if close_notify:
                with contextlib.suppress(ssl.SSLWantReadError):
                    tls.unwrap()
            writer.write(outgoing.read())  # the Finished, then the requests
            while True:
                try:
                    plain = tls.read(65536)
                except ssl.SSLWantReadError:
                    data = await reader.read(65536)
                    if not data:
                        break
                    incoming.write(data)
                    continue
                except ssl.SSLZeroReturnError:
                    break  # close_notify
                if not plain:
                    break  # close_notify, as SSLObject says it
                answered += plain
    finally:
        writer.close()
    return bytes(answered)


PIPELINED = get("/one") + get("/two", extra="Connection: close\r\n")


def _in_order(answered: bytes) -> list[bytes]:
    return [part[-4:] for part in answered.split(b"HTTP/1.1 ")[1:]]


async def test_requests_sent_with_the_finished_message_are_answered(
    gateway: Start, listener_ctx: ssl.SSLContext, tls13_client: ssl.SSLContext
) -> None:
    gw = await _capped(gateway, Seen(), listener_ctx, 1)
    answered = await _finished_with_requests(gw.port, tls13_client, PIPELINED)
    assert answered.startswith(b"HTTP/1.1 200 ")
    assert _in_order(answered) == [b"/one", b"/two"]
    await eventually(_holds(gw, 0, 0))


@pytest.mark.parametrize("close_notify", [False, True], ids=["open", "then close_notify"])
def test_requests_sent_with_the_finished_message_on_the_standard_event_loop(
    listener_ctx: ssl.SSLContext,
    tls13_client: ssl.SSLContext,
    system_ssl: ssl.SSLContext,
    close_notify: bool,
) -> None:
    # The standard library's sslproto hands such requests to the protocol before start_tls
    # returns (uvloop's does so a step later), and then reads on: a close_notify in the same
    # flight closes its transport before the next loop turn. The requests are still answered.
    async def scenario() -> tuple[bytes, int]:
        gw = await start_server(
            Seen(),
            ssl=listener_ctx,
            upstream_ssl=system_ssl,
            limits=Limits(max_connections_per_client=1),
            uncapped=_counted,
        )
        try:
            answered = await _finished_with_requests(
                gw.port, tls13_client, PIPELINED, close_notify=close_notify
            )
            await eventually(_holds(gw, 0, 0))
            return answered, gw.held_by("127.0.0.1")
        finally:
            await gw.close(drain_timeout=1.0)

    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        answered, held = runner.run(scenario())
    assert _in_order(answered) == [b"/one", b"/two"]
    assert held == 0


@pytest.mark.parametrize(
    "sent",
    [
        b"\x16\x03\x01\x00\x05hello",  # a handshake record that is no ClientHello
        b"\x80\x2e\x01\x00\x02" + b"\x00" * 45,  # an SSLv2 hello
        b"\x00" * 16,  # no TLS record (plain HTTP: test_tls_plain_http)
    ],
    ids=["garbage record", "sslv2", "zeros"],
)
async def test_a_failed_handshake_gives_the_slot_back(
    gateway: Start,
    connect: Connect,
    listener_ctx: ssl.SSLContext,
    client_ctx: ssl.SSLContext,
    sent: bytes,
) -> None:
    gw = await _capped(gateway, Seen(), listener_ctx, 1)
    (client,) = await _stalled(connect, gw.port, 1, sent)
    assert b"HTTP/1.1" not in await client.read_until_closed()  # an alert at most
    await eventually(_holds(gw, 0, 0))
    assert (await _served(connect, gw.port, client_ctx)).status == 200


async def test_loopback_is_not_counted_on_a_tls_listener(
    gateway: Start, connect: Connect, listener_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> None:
    gw = await gateway(Seen(), ssl=listener_ctx, limits=Limits(max_connections_per_client=1))
    await _stalled(connect, gw.port, 3)
    await eventually(_holds(gw, 0, 3))
    assert (await _served(connect, gw.port, client_ctx)).status == 200


async def test_a_tls_websocket_stops_counting_once_it_is_a_tunnel(
    gateway: Start,
    connect: Connect,
    listener_ctx: ssl.SSLContext,
    client_ctx: ssl.SSLContext,
    ws_upstream: str,
) -> None:
    gw = await _capped(gateway, upgrade_to(ws_upstream), listener_ctx, 1)
    url = f"wss://127.0.0.1:{gw.port}/ws"
    async with ws_connect(url, ssl=client_ctx, server_hostname=NAME) as ws:
        await ws.send("hi")
        assert await ws.recv() == "hi"
        assert _holds(gw, 0, 0)()
        # The one slot is free again: another connection is let in (the socket server
        # answers its plain GET).
        assert (await _served(connect, gw.port, client_ctx)).status != 503


async def test_shutdown_cuts_the_handshakes_in_progress(
    gateway: Start, connect: Connect, listener_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> None:
    gw = await _capped(gateway, Seen(), listener_ctx, 8, header_timeout=3600)
    stalled = await _stalled(connect, gw.port, 3, b"\x16\x03\x01")
    idle = await connect(gw.port, ssl_context=client_ctx, server_hostname=NAME)
    await idle.send(get())
    assert (await idle.read_response()).status == 200
    await eventually(_holds(gw, 4, 3))
    async with asyncio.timeout(10):  # a hang guard: the timeouts are an hour
        await gw.close(drain_timeout=3600)
    assert _holds(gw, 0, 0)()
    for client in stalled:
        assert await client.read_until_closed() == b""
    assert await idle.read_until_closed() == b""


async def test_a_client_holds_only_so_many_handshakes_in_progress(
    caplog: pytest.LogCaptureFixture,
    gateway: Start,
    connect: Connect,
    listener_ctx: ssl.SSLContext,
    client_ctx: ssl.SSLContext,
) -> None:
    # Each stalled handshake holds tens of kilobytes of the TLS layer's memory that the
    # allocator keeps once it ends: a client stalling a thousand (its connection cap) cost
    # the worker over 50 MB for good. Handshakes have a cap of their own, far lower.
    limits = Limits(max_connections_per_client=100, max_handshakes_per_client=3)
    gw = await gateway(Seen(), ssl=listener_ctx, limits=limits, uncapped=_counted)
    stalled = await _stalled(connect, gw.port, 3, b"\x16\x03\x01\x00")
    await eventually(_holds(gw, 3, 3))
    with caplog.at_level(logging.WARNING, logger="lychgate.gateway.http.clientcap"):
        over = await connect(gw.port)
        assert await over.read_until_closed() == b""  # cut before its handshake began
    assert "holds 3 (TLS handshakes in progress)" in caplog.text
    await eventually(_holds(gw, 3, 3))  # the cut one gave its connection slot back
    for client in stalled:
        await client.close()
    await eventually(_holds(gw, 0, 0))
    # Connections whose handshakes are done do not count: more than three are served.
    served = [
        await connect(gw.port, ssl_context=client_ctx, server_hostname=NAME) for _ in range(5)
    ]
    for client in served:
        await client.send(get("/served"))
        assert (await client.read_response()).status == 200
