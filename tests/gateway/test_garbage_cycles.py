"""Steady traffic leaves no garbage cycles of the engine's objects behind (loopback).

A full collection of the cyclic garbage collector walks every tracked object, a large config
snapshot's included, and stalls the event loop for as long; a worker therefore makes full
collections rare (:mod:`lychgate.gateway.collector`), and traffic must not leave garbage that
only they would free. The engine frees what a connection, a request, an upstream connection and
a tunnel held by reference counting alone, when each ends: every reference cycle among them (a
protocol and the timer that calls it back, a parser and the protocol whose methods it calls, a
request and the exchange that takes its content, a tunnel and its ends) is broken as it ends.

Each test runs traffic with the collector off, waits until everything it opened is closed, then
collects and asserts that nothing unreachable is of our own making: an object of a
``lychgate.`` class, or a frame, coroutine or function of our code (a bound method of one of
our objects included). Cycles that asyncio, uvloop, the test clients and the test upstreams
might make of their own objects are not ours to break, and are left out (none were seen).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import ssl
import types
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

import lychgate
from gateway.client import get
from gateway.conftest import SID, Connect, Start, forward_to, upgrade_to
from gateway.upstreams import SWITCHED, WS_FIELDS, Reply, Seen, http_upstream, raw_upstream
from gateway.upstreams import Upstream as RunningUpstream
from gateway.waiting import PATIENCE, eventually
from gateway.world import World, handler_for, make_app
from lychgate.gateway.accesslog import AccessLog
from lychgate.gateway.http import GatewayServer, Limits
from lychgate.gateway.http.pool import UpstreamPool
from lychgate.gateway.http.tls import CertPair, server_context
from lychgate.gateway.metrics import GatewayMetrics
from lychgate.gateway.runner import response_hook, tunnel_end_hook
from lychgate.gateway.types import Decision, Forward, Local, RequestHead, Respond, Upstream

pytestmark = pytest.mark.loopback

_OURS = str(Path(lychgate.__file__).parent)


def _ours(obj: object) -> bool:
    """Whether ``obj`` is of our making: a lychgate class's instance, or our code running."""
    if isinstance(obj, types.MethodType):
        return _ours(obj.__self__) or _ours(obj.__func__)
    code = None
    if isinstance(obj, types.FrameType):
        code = obj.f_code
    elif isinstance(obj, types.FunctionType):
        code = obj.__code__
    elif isinstance(obj, types.CoroutineType):
        code = obj.cr_code
    if code is not None:
        return code.co_filename.startswith(_OURS)
    module = type(obj).__module__
    return isinstance(module, str) and module.startswith("lychgate.")


def _name(obj: object) -> str:
    if isinstance(obj, types.MethodType):
        return f"bound {obj.__func__.__qualname__}"
    if isinstance(obj, types.FrameType):
        return f"frame of {obj.f_code.co_qualname}"
    if isinstance(obj, (types.FunctionType, types.CoroutineType)):
        return f"{type(obj).__name__} {obj.__qualname__}"
    return type(obj).__qualname__


class Cycles:
    """The collector is off from :meth:`begin`; :meth:`left` names what traffic left to it."""

    def __init__(self) -> None:
        self._enabled = gc.isenabled()
        self._before: list[object] = []

    async def begin(self) -> None:
        """Traffic starts now: what is garbage already (the setup's) is not counted, nor what
        of ours exists already and becomes garbage meanwhile (an earlier test's listener,
        let go of by pytest while this one runs): it is held until the end."""
        await asyncio.sleep(0)
        gc.disable()
        gc.collect()
        self._before = [obj for obj in gc.get_objects() if _ours(obj)]

    async def left(self, *servers: GatewayServer) -> Counter[str]:
        """Once every connection, handshake and tunnel of ``servers`` is gone: what garbage
        cycles of ours a collection finds, by type (empty when none)."""
        await eventually(
            lambda: all(
                s.open_connections == 0 and s.open_tunnels == 0 and s.handshakes == 0
                for s in servers
            ),
            what="every connection closed",
        )
        for _ in range(10):  # connection_lost callbacks, and whatever they schedule
            await asyncio.sleep(0.01)
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            found = Counter(_name(obj) for obj in gc.garbage if _ours(obj))
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            self._before = []
        return found

    def restore(self) -> None:
        if self._enabled:
            gc.enable()


@pytest.fixture
def cycles() -> Iterator[Cycles]:
    watch = Cycles()
    yield watch
    watch.restore()


async def _exchange(connect: Connect, gw: GatewayServer, *targets: str) -> None:
    """Requests on one keep-alive connection, each answered 200; the client then closes."""
    c = await connect(gw.port)
    for target in targets:
        await c.send(get(target))
        assert (await c.read_response()).status == 200
    await c.close()


# -- HTTP ---------------------------------------------------------------------------------------


async def test_keep_alive_requests(gateway: Start, connect: Connect, cycles: Cycles) -> None:
    async with http_upstream() as up:
        gw = await gateway(forward_to(up.url))
        await cycles.begin()
        await _exchange(connect, gw, "/a", "/b", "/c")
        assert not await cycles.left(gw)


async def test_pipelined_requests(gateway: Start, connect: Connect, cycles: Cycles) -> None:
    async with http_upstream() as up:
        gw = await gateway(forward_to(up.url))
        await cycles.begin()
        c = await connect(gw.port)
        await c.send(get("/1") + get("/2") + get("/3", extra="Connection: close\r\n"))
        for _ in range(3):
            assert (await c.read_response()).status == 200
        assert await c.read_until_closed() == b""
        assert not await cycles.left(gw)


async def test_local_answers(gateway: Start, connect: Connect, cycles: Cycles) -> None:
    async def endpoint(head: RequestHead) -> Respond:
        await asyncio.sleep(0)
        return Respond(200, body=b"local")

    async def failing(head: RequestHead) -> Respond:
        raise RuntimeError("endpoint bug")

    def handler(head: RequestHead) -> Decision:
        if head.path == "/local":
            return Local(endpoint)
        if head.path == "/failing":
            return Local(failing)
        return Respond(204)

    gw = await gateway(handler)
    await cycles.begin()
    c = await connect(gw.port)
    for target, status in (("/local", 200), ("/respond", 204), ("/failing", 500)):
        await c.send(get(target))
        assert (await c.read_response()).status == status
    await c.close()
    assert not await cycles.left(gw)


async def test_a_connection_closed_by_its_idle_timeout(
    gateway: Start, connect: Connect, cycles: Cycles
) -> None:
    async with http_upstream() as up:
        gw = await gateway(forward_to(up.url), limits=Limits(idle_timeout=0.05))
        await cycles.begin()
        c = await connect(gw.port)
        await c.send(get())
        assert (await c.read_response()).status == 200
        assert await c.read_until_closed() == b""
        assert not await cycles.left(gw)


@pytest.mark.parametrize(
    ("sent", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: h\r\n", 408),  # never finished
        (b"GET / HTTP/1.1\r\nHost: h\r\nBad Field: x\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n", 413),
        (get(extra=f"x-big: {'b' * 2000}\r\n"), 431),
        (get() + b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ],
    ids=["408", "400", "413", "431", "400-after-a-request"],
)
async def test_a_connection_closed_after_an_error(
    gateway: Start, connect: Connect, cycles: Cycles, sent: bytes, status: int
) -> None:
    async with http_upstream() as up:
        limits = Limits(
            header_timeout=0.1, max_body_bytes=1000, max_header_bytes=1024, linger_timeout=0.1
        )
        gw = await gateway(forward_to(up.url), limits=limits)
        await cycles.begin()
        c = await connect(gw.port)
        await c.send(sent)
        statuses = []
        with contextlib.suppress(asyncio.IncompleteReadError):
            while True:
                statuses.append((await c.read_response()).status)
        assert statuses[-1] == status
        await c.close()
        assert not await cycles.left(gw)


async def test_a_client_that_leaves_before_its_answer(
    gateway: Start, connect: Connect, cycles: Cycles
) -> None:
    answered = asyncio.Event()

    async def slow(seen: Seen, reply: Reply) -> None:
        await reply.head(200, [("content-length", "10")])
        await reply.body(b"12345")
        await asyncio.sleep(0.2)
        answered.set()

    async with http_upstream(slow) as up:
        gw = await gateway(forward_to(up.url))
        await cycles.begin()
        c = await connect(gw.port)
        await c.send(get())
        await c.reader.readuntil(b"12345")
        c.writer.transport.abort()
        await answered.wait()
        assert not await cycles.left(gw)


async def test_streamed_content_both_ways(gateway: Start, connect: Connect, cycles: Cycles) -> None:
    async def stream(seen: Seen, reply: Reply) -> None:
        await reply.head(200, [("transfer-encoding", "chunked")])
        for piece in (b"a" * 100, seen.body, b"c" * 70_000):
            await reply.body(piece)
        await reply.end()

    async with http_upstream(stream) as up:
        gw = await gateway(forward_to(up.url))
        await cycles.begin()
        c = await connect(gw.port)
        head = b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
        await c.send(head + b"Expect: 100-continue\r\n\r\n")
        assert (await c.read_response()).status == 100
        for _ in range(3):
            await c.send(b"4\r\nbody\r\n")
        await c.send(b"0\r\n\r\n")
        r = await c.read_response()
        assert len(r.body) == 100 + 12 + 70_000
        await c.close()
        assert not await cycles.left(gw)


async def test_the_real_handler_and_hooks(gateway: Start, connect: Connect, cycles: Cycles) -> None:
    # Admission, the gateway's own endpoints, the access log and the metrics, as served.
    async with http_upstream() as up:
        world = World(apps=(make_app("wiki", upstream=up.url),))
        handler, _ = handler_for(world)
        metrics = GatewayMetrics()
        gw = await gateway(handler, on_response=response_hook(metrics, AccessLog()))
        await cycles.begin()
        c = await connect(gw.port)
        cookie = f"Cookie: {world.cookie_name}={world.token()}\r\n"
        for target, extra, status in (
            ("/wiki/page", cookie, 200),  # admitted and forwarded
            ("/wiki/page", "Sec-Fetch-Mode: navigate\r\n", 302),  # sign in first
            ("/wiki/x", "Cookie: lychgate=garbage\r\n", 401),
            ("/.lychgate/healthz", "", 200),  # a local endpoint
        ):
            await c.send(get(target, host=world.default_host, extra=extra))
            assert (await c.read_response()).status == status
        await c.close()
        assert not await cycles.left(gw)


async def test_a_client_over_its_connection_cap(
    gateway: Start, connect: Connect, cycles: Cycles
) -> None:
    gw = await gateway(
        lambda head: Respond(204), limits=Limits(max_connections_per_client=1), uncapped=_counted
    )
    await cycles.begin()
    first, second = await connect(gw.port), await connect(gw.port)
    assert (await second.read_response()).status == 503
    await second.close()
    await first.close()
    assert not await cycles.left(gw)


def _counted(ip: str) -> bool:
    return False  # loopback is counted, as a public client would be


async def test_a_client_that_stops_reading(gateway: Start, cycles: Cycles) -> None:
    gw = await gateway(
        lambda head: Respond(200, (), b"x" * 100_000), limits=Limits(send_timeout=0.2)
    )
    await cycles.begin()
    loop = asyncio.get_running_loop()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and never reads
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", gw.port))
        with contextlib.suppress(OSError):
            async with asyncio.timeout(PATIENCE):
                while True:
                    await loop.sock_sendall(sock, get() * 50)
                    await asyncio.sleep(0.01)
    assert not await cycles.left(gw)


# -- upstream failures and the pool -------------------------------------------------------------


async def test_an_upstream_that_refuses_the_connection(
    gateway: Start, connect: Connect, cycles: Cycles
) -> None:
    with contextlib.closing(_closed_port()) as port:
        gw = await gateway(forward_to(f"http://127.0.0.1:{port.getsockname()[1]}"))
        await cycles.begin()
        c = await connect(gw.port)
        for _ in range(2):
            await c.send(get())
            assert (await c.read_response()).status == 502
        await c.close()
        assert not await cycles.left(gw)


def _closed_port() -> socket.socket:
    """A bound socket that does not listen: connecting to its port is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


async def test_an_upstream_that_times_out_or_breaks_off(
    gateway: Start, connect: Connect, cycles: Cycles
) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if b"/silent" in head:
            await reader.read()  # never answers: 504
        elif b"/eof" in head:  # content delimited by the close
            writer.write(b"HTTP/1.1 200 OK\r\n\r\nto the end")
            await writer.drain()
            writer.close()
        elif b"/cut" in head:  # a head, half the content, and a reset: the client is cut
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")
            await writer.drain()
            writer.transport.abort()
        elif b"/refused" in head:  # a head that llhttp reads and the gateway refuses: 502
            writer.write(b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await reader.read()
        else:  # bytes that are no response: 502
            writer.write(b"nonsense\r\n\r\n")
            await reader.read()

    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url, read_timeout=0.1))
        await cycles.begin()
        for target, status in (
            ("/silent", 504),
            ("/nonsense", 502),
            ("/refused", 502),
            ("/eof", 200),
        ):
            c = await connect(gw.port)
            await c.send(get(target))
            assert (await c.read_response()).status == status
            await c.close()
        c = await connect(gw.port)
        await c.send(get("/cut"))
        await c.read_until_closed()
        await c.close()
        assert not await cycles.left(gw)


async def test_pooled_upstream_connections_closed_by_the_app(
    gateway: Start, connect: Connect, cycles: Cycles
) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(0.05)  # then closes it, idle in the gateway's pool

    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        await cycles.begin()
        await _exchange(connect, gw, "/a")
        await eventually(lambda: gw.pool.open_connections == 0)
        # A reused connection found dead is retried on a new one.
        await _exchange(connect, gw, "/b")
        assert not await cycles.left(gw)


async def test_a_reused_upstream_connection_found_dead(
    gateway: Start, connect: Connect, cycles: Cycles
) -> None:
    served = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        served += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        if served == 1:  # the next request on it is not answered: retried on a new one
            await reader.readuntil(b"\r\n\r\n")
        else:
            await reader.read()

    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        await cycles.begin()
        await _exchange(connect, gw, "/a", "/b")
        assert served == 2
        gw.pool.close()
        assert not await cycles.left(gw)


async def test_requests_that_wait_for_an_upstream_connection(
    gateway: Start, connect: Connect, cycles: Cycles
) -> None:
    release = asyncio.Event()

    async def app(seen: Seen, reply: Reply) -> None:
        if seen.target == "/first":
            await release.wait()
        await reply.send(200, b"ok")

    async with http_upstream(app) as up:
        pool = UpstreamPool(ssl_context=ssl.create_default_context(), max_connections=1)
        gw = await gateway(forward_to(up.url, connect_timeout=1.0), pool=pool)
        await cycles.begin()
        first, second, third = [await connect(gw.port) for _ in range(3)]
        await first.send(get("/first"))
        await eventually(lambda: pool.open_connections == 1)
        await second.send(get("/second"))  # waits for the one connection, then gives up: 504
        assert (await second.read_response()).status == 504
        await third.send(get("/third"))  # waits, and takes it over once it is released
        gone = await connect(gw.port)
        await gone.send(get("/gone"))  # waits, and leaves
        await asyncio.sleep(0.05)
        await gone.close()
        await asyncio.sleep(0.05)
        release.set()
        assert (await first.read_response()).status == 200
        assert (await third.read_response()).status == 200
        for client in (first, second, third):
            await client.close()
        pool.close()
        assert not await cycles.left(gw)


async def test_a_gateway_that_stops(gateway: Start, connect: Connect, cycles: Cycles) -> None:
    async def slow(seen: Seen, reply: Reply) -> None:
        await asyncio.sleep(2.0)
        await reply.send(200, b"late")

    async with http_upstream(slow) as up:
        gw = await gateway(forward_to(up.url))
        await cycles.begin()
        idle, busy = await connect(gw.port), await connect(gw.port)
        await busy.send(get())
        await eventually(lambda: gw.stats.requests_active == 1)
        await gw.close(drain_timeout=0.05)
        assert await idle.read_until_closed() == b""
        assert (await busy.read_response()).status == 503
        await busy.close()
        await idle.close()
        assert not await cycles.left(gw)


# -- tunnels ------------------------------------------------------------------------------------


async def test_websockets_closed_by_either_side(
    gateway: Start, ws_upstream: str, cycles: Cycles
) -> None:
    metrics = GatewayMetrics()
    gw = await gateway(
        upgrade_to(ws_upstream),
        limits=Limits(tunnel_idle_timeout=0.2),
        on_response=response_hook(metrics, AccessLog()),
        on_tunnel_end=tunnel_end_hook(metrics, AccessLog()),
    )
    await cycles.begin()
    url = f"ws://127.0.0.1:{gw.port}/ws"
    async with ws_connect(url) as ws:  # closed by the client
        await ws.send("hello")
        assert await ws.recv() == "hello"
    async with ws_connect(url) as ws:  # by the gateway: the session ended
        await ws.send("bye")
        assert await ws.recv() == "bye"
        assert gw.close_session(SID) == 1
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    async with ws_connect(url) as ws:  # by the gateway: idle
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert not await cycles.left(gw)


async def test_tunnels_half_closed_or_cut_at_a_stop(
    gateway: Start, connect: Connect, cycles: Cycles
) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(SWITCHED)
        await writer.drain()
        await reader.read()  # until the client's FIN, passed on
        writer.write(b"last words")
        await writer.drain()

    async with raw_upstream(serve) as up:
        gw = await gateway(upgrade_to(up.url))
        await cycles.begin()
        c = await connect(gw.port)
        await c.send(get(extra=WS_FIELDS) + b"early bytes")
        assert (await c.read_response()).status == 101
        c.writer.write_eof()
        assert await c.read_until_closed() == b"last words"
        await c.close()
        c = await connect(gw.port)
        await c.send(get(extra=WS_FIELDS))
        assert (await c.read_response()).status == 101
        await gw.close(drain_timeout=0.1)
        await c.read_until_closed()
        await c.close()
        assert not await cycles.left(gw)


async def test_upgrades_refused(gateway: Start, connect: Connect, cycles: Cycles) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(SWITCHED.replace(b"s3pP", b"XXXX"))  # answers another key: 502
        await writer.drain()
        await reader.read()

    async with raw_upstream(serve) as up:
        allowed = await gateway(upgrade_to(up.url))
        refused = await gateway(upgrade_to(up.url, allow=False))
        await cycles.begin()
        for gw, status in ((allowed, 502), (refused, 403)):
            c = await connect(gw.port)
            await c.send(get(extra=WS_FIELDS) + b"tunnel bytes")
            assert (await c.read_response()).status == status
            await c.close()
        assert not await cycles.left(allowed, refused)


# -- TLS ----------------------------------------------------------------------------------------


@pytest.fixture
def tls_listener(ca: trustme.CA, tmp_path: Path) -> ssl.SSLContext:
    cert = ca.issue_cert("app.example")
    cert_file, key_file = tmp_path / "app.crt", tmp_path / "app.key"
    cert.private_key_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    return server_context(CertPair(cert_file, key_file), {})


@contextlib.asynccontextmanager
async def _https_upstream(ca: trustme.CA) -> AsyncIterator[RunningUpstream]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    async with http_upstream(ssl=ctx) as up:
        yield up


async def test_tls_both_ways(
    gateway: Start, connect: Connect, cycles: Cycles, ca: trustme.CA, tls_listener: ssl.SSLContext
) -> None:
    client = ssl.create_default_context()
    ca.configure_trust(client)
    upstream = ssl.create_default_context()
    ca.configure_trust(upstream)
    async with _https_upstream(ca) as up:

        def handler(head: RequestHead) -> Decision:
            verify = head.path != "/unverified"
            return Forward(Upstream(up.url, verify_tls=verify), head.target, head.headers, None)

        gw = await gateway(handler, ssl=tls_listener, upstream_ssl=upstream)
        await cycles.begin()
        c = await connect(gw.port, ssl_context=client, server_hostname="app.example")
        for target in ("/a", "/b", "/unverified"):
            await c.send(get(target))
            assert (await c.read_response()).status == 200
        await c.close()
        c = await connect(gw.port)  # plain HTTP to the TLS port: a 400
        await c.send(get())
        assert (await c.read_response()).status == 400
        await c.close()
        gw.pool.close()  # the https upstream connections, pooled: closed too
        await eventually(lambda: gw.pool.open_connections == 0)
        assert not await cycles.left(gw)


async def test_tls_handshakes_that_fail(
    gateway: Start, connect: Connect, cycles: Cycles, ca: trustme.CA, tls_listener: ssl.SSLContext
) -> None:
    gw = await gateway(
        lambda head: Respond(204), ssl=tls_listener, limits=Limits(header_timeout=0.2)
    )
    await cycles.begin()
    stalled = await connect(gw.port)  # never starts its handshake: cut after header_timeout
    garbage = await connect(gw.port)
    await garbage.send(b"\x16\x03\x01\x00\x05hello")  # no handshake a server can read
    untrusting = ssl.create_default_context()  # does not trust the listener's certificate
    with pytest.raises(ssl.SSLError):
        await connect(gw.port, ssl_context=untrusting, server_hostname="app.example")
    half = await connect(gw.port)
    await half.send(b"\x16\x03\x01")  # half a record, then nothing: cut after header_timeout
    for client in (stalled, garbage, half):
        await client.read_until_closed()
        await client.close()
    assert not await cycles.left(gw)


async def test_a_websocket_over_tls(
    gateway: Start, cycles: Cycles, ca: trustme.CA, tls_listener: ssl.SSLContext, ws_upstream: str
) -> None:
    gw = await gateway(upgrade_to(ws_upstream), ssl=tls_listener)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    await cycles.begin()
    url = f"wss://127.0.0.1:{gw.port}/ws"
    async with ws_connect(url, ssl=client, server_hostname="app.example") as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
    assert not await cycles.left(gw)


async def test_an_https_upstream_not_trusted(
    gateway: Start, connect: Connect, cycles: Cycles, ca: trustme.CA, system_ssl: ssl.SSLContext
) -> None:
    async with _https_upstream(ca) as up:
        gw = await gateway(forward_to(up.url), upstream_ssl=system_ssl)
        await cycles.begin()
        c = await connect(gw.port)
        await c.send(get())
        assert (await c.read_response()).status == 502
        await c.close()
        assert not await cycles.left(gw)
