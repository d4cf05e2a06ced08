"""When the gateway closes a TLS connection it does not wait for the client's close_notify.

The event loop's TLS layer sends our close_notify, then waits up to 30 s for the client's
before it closes the socket; a client that never sends one (nor closes) kept its connection,
and its slot among the client's connections, for those 30 s after every close: one
``header_timeout`` or ``idle_timeout`` bought 30 s more. RFC 8446 section 6.1 does not ask
the side that closes to wait, and nginx does not. The socket is closed once our close_notify
and every byte before it have left the process; a slow reader still gets its whole answer.

The client drives TLS by hand over a memory BIO (``SlowTls``): it never sends close_notify,
and it reads only when the test says. Real sockets on loopback, trustme certificates.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import trustme

from gateway.client import get
from gateway.conftest import Start, upgrade_to
from gateway.test_clientcap import _counted
from gateway.test_tls import _pair
from gateway.test_tls_deadline import SlowTls, _slow_tls
from gateway.upstreams import SWITCHED, WS_FIELDS, raw_upstream
from gateway.waiting import eventually
from lychgate.gateway.http import GatewayServer, Limits
from lychgate.gateway.http.tls import server_context
from lychgate.gateway.types import Decision, RequestHead, Respond

pytestmark = pytest.mark.loopback

NAME = "app.example"
BIG = 8 * 1024 * 1024  # more than the socket buffers and the loop's buffers hold together
PROMPT = 3.0  # well under the TLS layer's 30 s; the close itself takes milliseconds


@pytest.fixture
def listener_ctx(ca: trustme.CA, tmp_path: Path) -> ssl.SSLContext:
    return server_context(_pair(ca, tmp_path, NAME))


def _answer(head: RequestHead) -> Decision:
    if head.path == "/big":
        return Respond(200, (("content-type", "application/octet-stream"),), b"x" * BIG)
    return Respond(200, (), head.target.encode())


async def _listener(
    gateway: Start, ctx: ssl.SSLContext, limits: Limits | None = None
) -> GatewayServer:
    return await gateway(_answer, ssl=ctx, limits=limits or Limits(), uncapped=_counted)


async def _closed_at(client: SlowTls) -> float:
    """The loop time when the TCP connection ended (read on until it did)."""
    await client.until_tcp_closed()
    return asyncio.get_running_loop().time()


async def _one_request(client: SlowTls) -> None:
    """Handshake, then one request answered: the connection is idle and kept alive."""
    await client.handshake(hello_over=0.0)
    await client.send(get("/one"))
    await client.read_until(b"/one")


async def test_connection_close_ends_the_socket_without_waiting_for_close_notify(
    gateway: Start, listener_ctx: ssl.SSLContext, ca: trustme.CA
) -> None:
    gw = await _listener(gateway, listener_ctx)
    loop = asyncio.get_running_loop()
    async with _slow_tls(gw.port, ca) as client:
        await client.handshake(hello_over=0.0)
        await client.send(get("/bye", extra="connection: close\r\n"))
        async with asyncio.timeout(PROMPT):
            answer = await client.read_until_closed()  # up to our close_notify
            notified = loop.time()
            closed = await _closed_at(client)
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert answer.endswith(b"/bye")
        assert closed - notified < 1.0
        await eventually(lambda: gw.held_by("127.0.0.1") == 0)
        assert gw.open_connections == 0


async def test_an_idle_connection_is_closed_at_once_when_its_time_is_up(
    gateway: Start, listener_ctx: ssl.SSLContext, ca: trustme.CA
) -> None:
    gw = await _listener(gateway, listener_ctx, Limits(idle_timeout=0.5))
    loop = asyncio.get_running_loop()
    async with _slow_tls(gw.port, ca) as client:
        await _one_request(client)
        answered = loop.time()
        async with asyncio.timeout(PROMPT + 0.5):
            assert await client.read_until_closed() == b""
            closed = await _closed_at(client)
        assert 0.5 - 0.05 <= closed - answered < PROMPT
        await eventually(lambda: gw.held_by("127.0.0.1") == 0)


async def test_a_silent_connection_is_closed_at_its_header_timeout(
    gateway: Start, listener_ctx: ssl.SSLContext, ca: trustme.CA
) -> None:
    gw = await _listener(gateway, listener_ctx, Limits(header_timeout=0.5))
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with _slow_tls(gw.port, ca) as client:
        await client.handshake(hello_over=0.0)
        async with asyncio.timeout(PROMPT + 0.5):
            closed = await _closed_at(client)
        assert closed - started < PROMPT
        await eventually(lambda: gw.held_by("127.0.0.1") == 0)


async def test_a_slow_reader_still_gets_all_of_a_closing_answer(
    gateway: Start, listener_ctx: ssl.SSLContext, ca: trustme.CA
) -> None:
    """The last answer is still in the loop's buffers when the gateway closes: the socket is
    closed only once they have all gone, however long the client waits before reading."""
    gw = await _listener(gateway, listener_ctx)
    async with _slow_tls(gw.port, ca) as client:
        await client.handshake(hello_over=0.0)
        await client.send(get("/big", extra="connection: close\r\n"))
        await asyncio.sleep(1.5)  # reads nothing meanwhile: the buffers fill, then wait
        async with asyncio.timeout(30):
            answer = await client.read_until_closed()
            await _closed_at(client)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert f"content-length: {BIG}".encode() in head.lower()
    assert body == b"x" * BIG
    await eventually(lambda: gw.held_by("127.0.0.1") == 0)


async def _switch_then_leave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An upstream that accepts the WebSocket handshake, sends a few bytes, and closes."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(SWITCHED + b"bye")
    await writer.drain()


async def test_a_tunnel_the_app_ends_closes_the_client_socket_at_once(
    gateway: Start, listener_ctx: ssl.SSLContext, ca: trustme.CA
) -> None:
    loop = asyncio.get_running_loop()
    async with raw_upstream(_switch_then_leave) as up:
        gw = await gateway(upgrade_to(up.url), ssl=listener_ctx, uncapped=_counted)
        async with _slow_tls(gw.port, ca) as client:
            await client.handshake(hello_over=0.0)
            await client.send(get("/tunnel", extra=WS_FIELDS))
            async with asyncio.timeout(PROMPT):
                answer = await client.read_until_closed()
                notified = loop.time()
                closed = await _closed_at(client)
            assert answer.startswith(b"HTTP/1.1 101 ")
            assert answer.endswith(b"bye")
            assert closed - notified < 1.0
            await eventually(lambda: gw.open_tunnels == 0)


async def test_stopping_does_not_wait_on_idle_clients_that_send_no_close_notify(
    gateway: Start, listener_ctx: ssl.SSLContext, ca: trustme.CA, caplog: pytest.LogCaptureFixture
) -> None:
    """An idle keep-alive connection closes at once when the gateway stops: the drain used to
    wait its whole timeout on each one (closing, not yet closed), then log it as busy."""
    gw = await _listener(gateway, listener_ctx)
    loop = asyncio.get_running_loop()
    async with _slow_tls(gw.port, ca) as client:
        await _one_request(client)
        started = loop.time()
        async with asyncio.timeout(PROMPT):
            await gw.close(drain_timeout=10.0)
        assert loop.time() - started < 1.0
        assert "still busy" not in caplog.text
        assert gw.open_connections == 0
