"""When the gateway closes an https upstream connection it does not wait for the app's
close_notify.

The event loop's TLS layer sends our close_notify, then waits up to 30 s for the app's before
it closes the socket: an app that sends none, nor closes, kept every connection the pool let go
of (idle, evicted, not reusable, a tunnel's end) open for 30 s more. RFC 8446 section 6.1 does
not ask the side that closes to wait, and the gateway no longer does, as with its clients
(``test_tls_close``): the socket closes once our close_notify has left.

The app drives TLS by hand over memory BIOs (:class:`HandDriven`): it answers, and never sends
close_notify nor closes; it notes when the gateway's FIN (or reset) came. Real sockets on
loopback, trustme certificates.

An https upstream is now reached by TCP, then TLS on it (.upstream_connect); the rest shows that
what a connect did before it still does: a certificate refused is a 502 of kind ``tls`` and
leaks neither socket nor slot, a handshake never answered is the connect timeout's 504, and
bytes an app sends before the handshake fail it as they did.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest
import trustme

from gateway.client import RawClient, get
from gateway.conftest import Answers, Connect, Start, forward_to, upgrade_to
from gateway.test_garbage_cycles import Cycles
from gateway.test_tls import _trusting
from gateway.test_tls_deadline import SlowTls
from gateway.upstreams import SWITCHED, WS_FIELDS, Raw, raw_upstream
from gateway.upstreams import Upstream as RawUpstream
from gateway.waiting import eventually
from lychgate.gateway.http import GatewayServer
from lychgate.gateway.http.pool import UpstreamError, UpstreamPool
from lychgate.gateway.http.upstream import UpstreamConnection
from lychgate.gateway.http.upstream_connect import open_tls
from lychgate.gateway.http.writer import Batch
from lychgate.gateway.types import Decision, Handler, RequestHead, Upstream

pytestmark = pytest.mark.loopback

PROMPT = 5.0  # a hang guard well under the TLS layer's 30 s; the close itself takes ms
ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


class HandDriven(SlowTls):
    """The server's side of a :class:`SlowTls`: an https app's connection, its TLS driven by
    hand, that never sends close_notify (the event loop's TLS layer would answer ours)."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ctx: ssl.SSLContext
    ) -> None:
        super().__init__(reader, writer, ctx, server_side=True)

    async def handshake(self, hello_over: float = 0.0) -> None:
        await super().handshake(hello_over)
        self._decrypt()  # a request that came with the client's Finished

    async def request(self) -> bytes:
        return await self.read_until(b"\r\n\r\n")


class App:
    """An https app of :class:`HandDriven` connections, each running ``serve``; records when
    each one's TCP connection ended."""

    def __init__(self, ctx: ssl.SSLContext, serve: Callable[[HandDriven], Awaitable[None]]):
        self.ctx, self.serve = ctx, serve
        self.ended: list[float] = []  # the loop's clock when each connection ended

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tls = HandDriven(reader, writer, self.ctx)
        try:
            await tls.handshake()
            await self.serve(tls)
            await tls.until_tcp_closed()  # a close_notify is left unanswered
        except (ConnectionError, ssl.SSLError):
            pass  # closed, or the gateway refused the handshake (an alert, or just the close)
        finally:
            self.ended.append(asyncio.get_running_loop().time())


def _https(up: RawUpstream) -> str:
    return f"https://127.0.0.1:{up.port}"


@pytest.fixture
def app_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    return ctx


async def _answer_each(tls: HandDriven) -> None:
    """Answer requests until the gateway closes (or a test's end)."""
    while True:
        head = await tls.request()
        await tls.send(ANSWER[:-2] if head.startswith(b"HEAD ") else ANSWER)


async def _switch(tls: HandDriven) -> None:
    await tls.request()
    await tls.send(SWITCHED)


async def _banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """No TLS server: it speaks first (as SSH does), then reads the ClientHello, and leaves."""
    writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
    await writer.drain()
    await reader.read(65536)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@contextlib.asynccontextmanager
async def _through(
    gateway: Start, connect: Connect, route: Callable[[str], Handler], serve: Raw, **options: Any
) -> AsyncIterator[tuple[GatewayServer, RawClient]]:
    """A client of a gateway that sends what it asks, by ``route(url)``, to an app on
    loopback running ``serve`` on each connection, reached over https."""
    async with raw_upstream(serve) as up:
        gw = await gateway(route(_https(up)), **options)
        yield gw, await connect(gw.port)


async def _ended_after(ended: list[float], since: float) -> float:
    """Seconds from ``since`` until the app's first connection ended (waited for)."""
    await eventually(lambda: ended, PROMPT, "the app's socket closed")
    return ended[0] - since


async def test_an_idle_connection_the_pool_sweeps_closes_its_socket_at_once(
    gateway: Start, connect: Connect, ca: trustme.CA, app_ctx: ssl.SSLContext
) -> None:
    app = App(app_ctx, _answer_each)
    pool = UpstreamPool(ssl_context=_trusting(ca), idle_timeout=0.3)
    try:
        async with _through(gateway, connect, forward_to, app, pool=pool) as (_, c):
            await c.send(get())
            assert (await c.read_response()).body == b"ok"
            answered = asyncio.get_running_loop().time()  # back in the pool, idle
            # Swept at most two idle timeouts after (the sweep runs every idle_timeout).
            assert 0.3 - 0.05 <= await _ended_after(app.ended, answered) < 0.6 + 1.0
            assert pool.open_connections == 0  # forgotten (its slot free) with its socket
    finally:
        pool.close()


@pytest.mark.parametrize(
    ("route", "serve", "request_", "status"),
    [
        # Never reused after a HEAD (.upstream): closed once answered.
        (forward_to, _answer_each, get().replace(b"GET", b"HEAD", 1), 200),
        # A tunnel, that the client then leaves: the tunnel closes the app's side.
        (upgrade_to, _switch, get("/ws", extra=WS_FIELDS), 101),
    ],
    ids=["not reused", "a tunnel's end"],
)
async def test_a_connection_the_gateway_closes_closes_its_socket_at_once(
    gateway: Start,
    connect: Connect,
    ca: trustme.CA,
    app_ctx: ssl.SSLContext,
    route: Callable[[str], Handler],
    serve: Callable[[HandDriven], Awaitable[None]],
    request_: bytes,
    status: int,
) -> None:
    app = App(app_ctx, serve)
    trusting = _trusting(ca)
    async with _through(gateway, connect, route, app, upstream_ssl=trusting) as (gw, c):
        await c.send(request_)
        head_request = request_.startswith(b"HEAD ")
        assert (await c.read_response(head_request=head_request)).status == status
        left = asyncio.get_running_loop().time()
        await c.close()
        assert await _ended_after(app.ended, left) < 1.0
        await eventually(lambda: gw.pool.open_connections == 0 and gw.open_tunnels == 0)


async def test_an_untrusted_certificate_is_still_a_tls_failure_and_leaks_nothing(
    gateway: Start, connect: Connect, app_ctx: ssl.SSLContext, system_ssl: ssl.SSLContext
) -> None:
    app = App(app_ctx, _answer_each)
    answers = Answers()
    options = {"upstream_ssl": system_ssl, "on_response": answers}
    async with _through(gateway, connect, forward_to, app, **options) as (gw, c):
        before = _open_fds()  # the client's socket is open already, both ends
        for _ in range(3):
            await c.send(get())
            assert (await c.read_response()).status == 502
        [(_, reason), *_] = answers.seen
        assert reason.startswith("upstream connect failed: TLS certificate not trusted: ")
        assert gw.upstream_failures == {(None, "tls"): 3}
        await eventually(lambda: len(app.ended) == 3, PROMPT, "the app's sockets closed")
        assert gw.pool.open_connections == 0
        await eventually(lambda: _open_fds() == before, PROMPT, "no socket left open")


async def test_a_failed_handshake_gives_its_slot_back() -> None:
    """One connection allowed: each failure frees it for the next, which fails the same way
    (a slot kept would make the next one wait, then time out as a 504)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(ctx)  # a CA nobody trusts
    app = App(ctx, _answer_each)
    pool = UpstreamPool(ssl_context=ssl.create_default_context(), max_connections=1)
    try:
        async with raw_upstream(app) as up:
            for _ in range(3):
                with pytest.raises(UpstreamError) as failed:
                    await pool.connect(Upstream(_https(up), connect_timeout=2.0))
                assert (failed.value.kind, failed.value.status) == ("tls", 502)
            assert pool.open_connections == 0
    finally:
        pool.close()


async def test_a_handshake_the_app_never_answers_is_a_connect_timeout_and_closes_the_socket(
    gateway: Start, connect: Connect, ca: trustme.CA
) -> None:
    answers = Answers()
    loop = asyncio.get_running_loop()
    ended: list[float] = []

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)  # the ClientHello, never answered
        await reader.read(65536)  # until the gateway closes
        ended.append(loop.time())

    def route(url: str) -> Handler:
        return forward_to(url, connect_timeout=0.3)

    options = {"upstream_ssl": _trusting(ca), "on_response": answers}
    async with _through(gateway, connect, route, mute, **options) as (gw, c):
        started = loop.time()
        await c.send(get())
        assert (await c.read_response()).status == 504
        assert answers.seen == [(504, "upstream connect timed out")]
        assert gw.upstream_failures == {(None, "connect_timeout"): 1}
        assert await _ended_after(ended, started) < 0.3 + 1.0
        assert gw.pool.open_connections == 0


async def test_an_app_that_speaks_before_the_handshake_fails_it_as_before(
    gateway: Start, connect: Connect, ca: trustme.CA
) -> None:
    """Bytes an app sends as it accepts (a banner: no TLS server) reach the TLS layer, whose
    handshake fails on them, as when it was there from the start."""
    answers = Answers()
    options = {"upstream_ssl": _trusting(ca), "on_response": answers}
    async with _through(gateway, connect, forward_to, _banner, **options) as (gw, c):
        await c.send(get())
        assert (await c.read_response()).status == 502
        [(_, reason)] = answers.seen
        assert reason.startswith("upstream connect failed: TLS handshake failed: ")
        assert gw.upstream_failures == {(None, "tls"): 1}
        await eventually(lambda: gw.pool.open_connections == 0)


class _SlowToReturn:
    """The running loop, but ``create_connection`` returns ``pause`` seconds late: what the app
    sends as it accepts reaches the socket's first protocol, before ``start_tls``."""

    def __init__(self, pause: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._pause = pause
        self.made: tuple[asyncio.BaseTransport, asyncio.BaseProtocol] | None = None

    def __getattr__(self, name: str) -> object:
        return getattr(self._loop, name)

    async def create_connection(self, *args: Any, **kwargs: Any) -> object:
        self.made = await self._loop.create_connection(*args, **kwargs)
        await asyncio.sleep(self._pause)
        return self.made


async def _open_late(slow: _SlowToReturn, port: int, ctx: ssl.SSLContext) -> None:
    conn = UpstreamConnection(("https://x", True), Batch(), 1 << 16)
    loop = cast(asyncio.AbstractEventLoop, slow)
    await open_tls(loop, conn, "127.0.0.1", port, ctx, handshake_timeout=2.0)


async def test_bytes_sent_before_start_tls_reach_the_handshake(ca: trustme.CA) -> None:
    """Read before the TLS layer was in place, they fail the handshake as they failed it when
    the layer was there from the start (create_connection with ssl=)."""
    ctx = _trusting(ca)
    loop = asyncio.get_running_loop()
    async with raw_upstream(_banner) as up:
        with pytest.raises(ssl.SSLError) as at_once:
            await loop.create_connection(
                asyncio.Protocol, "127.0.0.1", up.port, ssl=ctx, server_hostname="127.0.0.1"
            )
        slow = _SlowToReturn(0.2)
        with pytest.raises(ssl.SSLError) as late:
            await _open_late(slow, up.port, ctx)
    assert slow.made is not None
    tcp, connecting = slow.made
    assert getattr(connecting, "early", b"").startswith(b"SSH-2.0-")  # read before start_tls
    assert (type(late.value), late.value.reason) == (type(at_once.value), at_once.value.reason)
    assert tcp.is_closing()


async def test_a_socket_the_app_closed_before_start_tls_fails_as_a_close_in_the_handshake(
    ca: trustme.CA,
) -> None:
    async def leave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pass  # closed as soon as accepted

    async with raw_upstream(leave) as up:
        slow = _SlowToReturn(0.2)
        with pytest.raises(ConnectionResetError):
            await _open_late(slow, up.port, _trusting(ca))
    assert slow.made is not None
    assert slow.made[0].is_closing()


async def test_closing_https_upstreams_leaves_no_garbage_cycles(
    gateway: Start, connect: Connect, ca: trustme.CA, app_ctx: ssl.SSLContext
) -> None:
    """Closed after a HEAD, swept, a tunnel's end, a certificate refused: each frees what it
    held by reference counting alone (see test_garbage_cycles)."""
    untrusted = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(untrusted)
    answering, switching = App(app_ctx, _answer_each), App(app_ctx, _switch)
    refusing = App(untrusted, _answer_each)
    pool = UpstreamPool(ssl_context=_trusting(ca), idle_timeout=0.2)
    cycles = Cycles()
    try:
        async with (
            raw_upstream(answering) as a,
            raw_upstream(switching) as s,
            raw_upstream(refusing) as r,
        ):
            ups = {"/ws": upgrade_to(_https(s)), "/bad": forward_to(_https(r))}

            def handler(head: RequestHead) -> Decision:
                return ups.get(head.path, forward_to(_https(a)))(head)

            gw = await gateway(handler, pool=pool)
            await cycles.begin()
            c = await connect(gw.port)
            for request, status in (
                (get().replace(b"GET", b"HEAD", 1), 200),  # its connection closed after
                (get(), 200),  # a new one, swept once idle
                (get("/bad"), 502),
                (get("/ws", extra=WS_FIELDS), 101),
            ):
                await c.send(request)
                assert (await c.read_response(head_request=b"HEAD" in request)).status == status
            await c.close()
            await eventually(lambda: pool.open_connections == 0, PROMPT)
            await eventually(lambda: len(answering.ended) == 2, PROMPT, "both swept and closed")
            assert not await cycles.left(gw)
    finally:
        cycles.restore()
        pool.close()
