"""Upgrades and tunnels (lychgate.gateway.http.tunnel), with a real WebSocket upstream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gateway.client import get
from gateway.conftest import SID, Answers, Connect, Start, upgrade_to
from gateway.upstreams import SWITCHED, WS_FIELDS, Raw, raw_upstream, read_head
from gateway.waiting import PATIENCE, eventually
from lychgate.gateway.http.limits import Limits
from lychgate.gateway.http.tunnel import Tunnel, TunnelEnded
from lychgate.gateway.http.tunnel_registry import TunnelRegistry
from lychgate.ids import AppSlug, SessionId

pytestmark = pytest.mark.loopback


async def test_websocket_echo_through_the_gateway(gateway: Start, ws_upstream: str) -> None:
    gw = await gateway(upgrade_to(ws_upstream))
    async with ws_connect(f"ws://127.0.0.1:{gw.port}/ws", max_size=None) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        big = b"x" * (4 * 1024 * 1024)  # larger than every buffer on the way
        await ws.send(big)
        assert await ws.recv() == big
        assert gw.open_tunnels == 1
        assert gw.open_connections == 0  # tunnels are counted apart from HTTP connections
    await eventually(lambda: gw.open_tunnels == 0)


async def test_upgrade_not_allowed_is_403(gateway: Start, ws_upstream: str) -> None:
    gw = await gateway(upgrade_to(ws_upstream, allow=False))
    with pytest.raises(InvalidStatus) as info:
        async with ws_connect(f"ws://127.0.0.1:{gw.port}/ws"):
            pass
    assert info.value.response.status_code == 403


async def test_a_refused_websocket_tells_the_operator_how_to_allow_it(
    gateway: Start, ws_upstream: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Only the access log (off by default) said why a signed-in user's WebSocket got a 403.
    caplog.set_level(logging.INFO, logger="lychgate.gateway.http.proxy")
    gw = await gateway(upgrade_to(ws_upstream, allow=False, app=AppSlug("chat")))
    with pytest.raises(InvalidStatus):
        async with ws_connect(f"ws://127.0.0.1:{gw.port}/ws"):
            pass
    [line] = [r.getMessage() for r in caplog.records if "403" in r.getMessage()]
    assert line == (
        "refused with 403: an Upgrade to app chat, which does not allow WebSockets; if it "
        "should, run: lychgate app update chat --websockets (user user-1)"
    )


async def test_close_session_closes_its_tunnels(gateway: Start, ws_upstream: str) -> None:
    gw = await gateway(upgrade_to(ws_upstream))
    async with ws_connect(f"ws://127.0.0.1:{gw.port}/ws") as ws:
        await ws.send("a")
        assert await ws.recv() == "a"
        assert gw.close_session(SessionId("someone-else")) == 0
        assert gw.close_session(SID) == 1
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                await ws.recv()
    assert gw.open_tunnels == 0
    # The client is told why, between two of the app's frames: a page can show "signed out"
    # rather than reconnect as it would after a bare disconnect (1006).
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "session ended")


async def test_a_tunnel_closed_mid_frame_gets_no_close_frame(
    gateway: Start, connect: Connect
) -> None:
    # The app has sent half a frame: a close frame now would be read as its payload.
    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(SWITCHED + b"\x82\x0aHALF")  # a 10-byte frame, 4 bytes of it
        await writer.drain()
        await reader.read()

    async with raw_upstream(half) as up:
        gw = await gateway(upgrade_to(up.url))
        c = await connect(gw.port)
        await c.send(get(extra=WS_FIELDS))
        await c.reader.readuntil(b"\r\n\r\n")
        assert await c.reader.readexactly(6) == b"\x82\x0aHALF"
        assert gw.close_session(SID) == 1
        assert await c.read_until_closed() == b""


async def test_refused_upgrade_is_relayed_and_closes(gateway: Start, connect: Connect) -> None:
    async def serve_(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\nno")
        await writer.drain()

    async with raw_upstream(serve_) as up:
        gw = await gateway(upgrade_to(up.url))
        c = await connect(gw.port)
        await c.send(get(extra=WS_FIELDS) + get("/next"))
        r = await c.read_response()
        assert (r.status, r.body, r.header("connection")) == (400, b"no", "close")
        assert await c.read_until_closed() == b""  # "/next" was tunnel bytes: never parsed


async def test_bytes_behind_both_heads_reach_the_other_side(
    gateway: Start, connect: Connect
) -> None:
    upstream_got = bytearray()

    async def serve_(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        assert b"upgrade: websocket" in head.lower()
        assert b"connection: upgrade" in head.lower()
        writer.write(SWITCHED + b"from-upstream")
        await writer.drain()
        upstream_got.extend(await reader.readexactly(len(b"early-client-bytes+later")))
        writer.write(b"|bye")
        await writer.drain()

    async with raw_upstream(serve_) as up:
        gw = await gateway(upgrade_to(up.url))
        c = await connect(gw.port)
        await c.send(get(extra=WS_FIELDS) + b"early-client-bytes")
        head = await c.reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"upgrade: websocket" in head.lower()
        assert b"connection: upgrade" in head.lower()
        assert await c.reader.readexactly(len(b"from-upstream")) == b"from-upstream"
        await c.send(b"+later")
        assert await c.read_until_closed() == b"|bye"
        assert bytes(upstream_got) == b"early-client-bytes+later"


async def test_101_to_a_plain_request_is_502(gateway: Start, connect: Connect) -> None:
    async def serve_(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n"
        )
        await writer.drain()
        await asyncio.sleep(1)

    async with raw_upstream(serve_) as up:
        gw = await gateway(upgrade_to(up.url))
        c = await connect(gw.port)
        await c.send(get())
        assert (await c.read_response()).status == 502


# -- idle tunnels -------------------------------------------------------------------------------

IDLE = 0.4


async def test_a_silent_tunnel_is_closed_after_the_idle_timeout(
    gateway: Start, ws_upstream: str
) -> None:
    gw = await gateway(upgrade_to(ws_upstream), limits=Limits(tunnel_idle_timeout=IDLE))
    loop = asyncio.get_running_loop()
    # ping_interval=None: the client's own keep-alive pings would be traffic.
    async with ws_connect(f"ws://127.0.0.1:{gw.port}/ws", ping_interval=None) as ws:
        await ws.send("last words")
        assert await ws.recv() == "last words"
        quiet_since = loop.time()
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(10):
                await ws.recv()
        # Never before the timeout (sweeps count whole periods), whatever the machine's speed.
        assert loop.time() - quiet_since >= IDLE
    await eventually(lambda: gw.open_tunnels == 0)


async def test_a_tunnel_in_use_stays_open_past_the_idle_timeout(
    gateway: Start, ws_upstream: str
) -> None:
    # A message every tenth of the timeout, for twice the timeout: a slow machine stretching
    # a gap nine times over is what it would take to see the tunnel idle.
    idle = 1.0
    gw = await gateway(upgrade_to(ws_upstream), limits=Limits(tunnel_idle_timeout=idle))
    async with ws_connect(f"ws://127.0.0.1:{gw.port}/ws", ping_interval=None) as ws:
        for i in range(20):
            await ws.send(str(i))
            assert await ws.recv() == str(i)
            await asyncio.sleep(idle / 10)
        assert gw.open_tunnels == 1


async def test_with_no_idle_timeout_the_registry_arms_nothing() -> None:
    registry = TunnelRegistry()
    loop = asyncio.get_running_loop()
    a, b = await _socket_pair_transports(loop)
    tunnel = Tunnel(registry, SID, a, b)
    tunnel.start(b"", b"")
    assert registry.count == 1
    assert registry._sweeper is None
    tunnel.close()
    assert registry.count == 0


async def _socket_pair_transports(
    loop: asyncio.AbstractEventLoop,
) -> tuple[asyncio.Transport, asyncio.Transport]:
    left, right = socket.socketpair()
    ta, _ = await loop.create_connection(asyncio.Protocol, sock=left)
    tb, _ = await loop.create_connection(asyncio.Protocol, sock=right)
    return ta, tb


# -- closing a tunnel whose client does not read ------------------------------------------------


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _flood(close_after: bool) -> Raw:
    """An upstream that switches, then sends more than every buffer on the way holds."""

    async def serve_(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(SWITCHED)
        writer.write(b"x" * (8 << 20))
        if close_after:
            writer.close()
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.drain(), 30)

    return serve_


async def _stalled_client(port: int) -> socket.socket:
    """A client that opens a WebSocket and then reads nothing."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, get(extra=WS_FIELDS))
    return sock


@pytest.mark.parametrize("how", ["stopped reading", "revoked"])
async def test_a_tunnel_the_gateway_ends_lets_go_of_a_client_that_does_not_read(
    gateway: Start, how: str
) -> None:
    # close() waits for the write buffer to drain, which a client that reads nothing never
    # lets happen: the socket and its buffer were kept for good, counted nowhere. (Such a
    # tunnel is not idle: bytes wait for the client. It ends at send_timeout, as such.)
    limits = Limits(tunnel_idle_timeout=IDLE, send_timeout=IDLE)
    async with raw_upstream(_flood(close_after=False)) as up:
        gw = await gateway(upgrade_to(up.url), limits=limits)
        before = _open_fds()
        sock = await _stalled_client(gw.port)
        try:
            await eventually(lambda: gw.open_tunnels == 1)
            if how == "revoked":
                assert gw.close_session(SID) == 1
            # Only the client's own socket is left: both gateway sockets are gone.
            await eventually(lambda: _open_fds() <= before + 1)
            assert gw.open_tunnels == 0
        finally:
            sock.close()


class _HeldTransport(asyncio.Transport):
    """A transport whose peer reads nothing: close() never finishes while bytes are held."""

    def __init__(self, held: int) -> None:
        super().__init__()
        self.held = held
        self.closing = False
        self.aborted = False

    def get_write_buffer_size(self) -> int:
        return self.held

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.aborted = True
        self.held = 0

    def was_aborted(self) -> bool:  # a call, so that a checker does not narrow it for good
        return self.aborted

    def is_closing(self) -> bool:
        return self.closing

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def test_a_tunnel_that_ends_naturally_cuts_a_side_that_does_not_drain_in_time() -> None:
    registry = TunnelRegistry(drain_timeout=0.1)
    stalled, drained = _HeldTransport(held=1 << 20), _HeldTransport(held=0)
    tunnel = Tunnel(registry, SID, stalled, drained)
    tunnel.start(b"", b"")
    tunnel.close()  # the upstream ended: flush what is held, within the drain timeout
    assert stalled.closing
    assert not stalled.aborted  # given its chance first
    await eventually(stalled.was_aborted)  # at the drain timeout, not the default minute
    assert not drained.was_aborted()  # nothing held there: closed, not cut


async def test_a_tunnel_whose_sides_both_closed_cuts_nothing_later() -> None:
    registry = TunnelRegistry(drain_timeout=0.1)
    a, b = _HeldTransport(held=10), _HeldTransport(held=10)
    tunnel = Tunnel(registry, SID, a, b)
    tunnel.start(b"", b"")
    tunnel.close()
    tunnel.end_lost("test")
    tunnel.end_lost("test")  # both flushed and gone in time
    await asyncio.sleep(0.3)
    assert not a.aborted
    assert not b.aborted


async def test_a_shut_registry_arms_no_sweep() -> None:
    registry = TunnelRegistry(idle_timeout=100.0)
    registry.shut()
    a, b = await _socket_pair_transports(asyncio.get_running_loop())
    tunnel = Tunnel(registry, SID, a, b)
    tunnel.start(b"", b"")
    assert registry._sweeper is None
    tunnel.close()


async def test_a_client_that_stops_reading_is_cut_at_the_send_timeout(
    gateway: Start, connect: Connect
) -> None:
    # The upstream floods; the client reads nothing. Backpressure stops reading the upstream,
    # and after send_timeout (not the hour-long idle timeout) the tunnel is cut.
    stop = asyncio.Event()

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(SWITCHED)
        chunk = b"x" * 65536
        with contextlib.suppress(ConnectionError):
            while not stop.is_set():
                writer.write(chunk)
                await writer.drain()
        stop.set()

    limits = Limits(send_timeout=0.5, tunnel_idle_timeout=3600)
    async with raw_upstream(flood) as up:
        gw = await gateway(upgrade_to(up.url), limits=limits)
        c = await connect(gw.port)  # its reader stops reading at its 1 MiB limit
        await c.send(get(extra=WS_FIELDS))
        await eventually(lambda: gw.open_tunnels == 1, what="tunnel open")
        async with asyncio.timeout(10):
            await stop.wait()  # the upstream's connection was cut under its writes
        await eventually(lambda: gw.open_tunnels == 0, what="tunnel closed")


async def test_a_client_lost_mid_flood_lets_the_app_go_at_once(gateway: Start) -> None:
    # Both ways backed up: the app floods and reads nothing, the client sends and reads
    # nothing. When the client vanishes, the app's socket (megabytes unsent to it, and it
    # blocked writing to us, who no longer read) was held for the whole send_timeout.
    gone = asyncio.Event()

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(SWITCHED)
        chunk = b"x" * 65536
        try:
            while True:
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            gone.set()

    limits = Limits(send_timeout=60.0, tunnel_idle_timeout=3600)
    async with raw_upstream(flood) as up:
        gw = await gateway(upgrade_to(up.url), limits=limits)
        loop = asyncio.get_running_loop()
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.setblocking(False)
        try:
            await loop.sock_connect(client, ("127.0.0.1", gw.port))
            await loop.sock_sendall(client, get(extra=WS_FIELDS))
            await eventually(lambda: gw.open_tunnels == 1, what="tunnel open")
            refused_since = None  # send until nothing is taken for half a second
            while refused_since is None or loop.time() - refused_since < 0.5:
                try:
                    client.send(b"y" * 65536)
                    refused_since = None
                except BlockingIOError:
                    refused_since = refused_since or loop.time()
                    await asyncio.sleep(0.01)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            client.close()  # a reset: the client is lost, not closed
        await eventually(lambda: gw.open_tunnels == 0, what="tunnel closed")
        async with asyncio.timeout(5):  # not the 60 s of send_timeout
            await gone.wait()


class Ends:
    """An ``on_tunnel_end`` hook that keeps (path, app, why, sent, received, seconds)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, object, str, int, int, float]] = []

    def __call__(self, end: TunnelEnded) -> None:
        assert end.who is not None
        assert end.who.session_id == SID
        self.seen.append((end.head.path, end.app, end.why, end.sent, end.received, end.seconds))


@pytest.mark.parametrize("ended_by", ["client", "revocation"])
async def test_a_tunnels_end_is_recorded_with_why_and_its_bytes(
    gateway: Start, ws_upstream: str, ended_by: str
) -> None:
    ends = Ends()
    gw = await gateway(upgrade_to(ws_upstream), on_tunnel_end=ends)
    async with ws_connect(f"ws://127.0.0.1:{gw.port}/chat") as ws:
        noise = os.urandom(1000)  # incompressible: permessage-deflate cannot shrink it
        await ws.send(noise)
        assert await ws.recv() == noise
        if ended_by == "revocation":
            assert gw.close_session(SID) == 1
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(10):
                    await ws.recv()
    await eventually(lambda: ends.seen != [], what="the tunnel's end recorded")
    [(path, app, why, sent, received, seconds)] = ends.seen
    assert (path, app) == ("/chat", None)
    # The client's frames are masked and carry a header: a little over what it sent.
    assert sent > 1000
    assert received > 1000
    assert seconds > 0
    if ended_by == "revocation":
        assert why == "session ended"
    else:
        assert why in ("client closed", "upstream closed")  # whichever FIN came first


async def test_bytes_behind_either_head_count_in_the_record(
    gateway: Start, connect: Connect
) -> None:
    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(SWITCHED + b"GREETING")  # in the same write as the 101
        await writer.drain()
        await reader.read()

    ends = Ends()
    async with raw_upstream(greet) as up:
        gw = await gateway(upgrade_to(up.url), on_tunnel_end=ends)
        c = await connect(gw.port)
        await c.send(get(extra=WS_FIELDS) + b"EARLY")
        await c.reader.readuntil(b"\r\n\r\n")
        assert await c.reader.readexactly(8) == b"GREETING"
        c.writer.close()
        await eventually(lambda: ends.seen != [], what="the tunnel's end recorded")
    [(_, _, _, sent, received, _)] = ends.seen
    assert (sent, received) == (5, 8)


@pytest.mark.parametrize(
    ("ending", "code", "reason"),
    [
        ("app_change", 1008, "app removed or disabled"),
        ("feed_expired", 1001, "config feed expired"),
        ("stopping", 1001, "gateway stopping"),
    ],
)
async def test_the_close_frame_says_why_the_gateway_closed(
    gateway: Start, ws_upstream: str, ending: str, code: int, reason: str
) -> None:
    gw = await gateway(upgrade_to(ws_upstream))
    async with ws_connect(f"ws://127.0.0.1:{gw.port}/ws") as ws:
        await ws.send("a")
        assert await ws.recv() == "a"
        if ending == "app_change":
            assert gw.close_where(lambda app, who, tunnel: reason) == (1, 0)
        elif ending == "feed_expired":
            assert gw.close_all_open() == 1
        else:
            await gw.close(drain_timeout=1.0)
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                await ws.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (code, reason)


async def test_a_client_that_stops_reading_is_recorded_so_not_as_idle(gateway: Start) -> None:
    # With the idle timeout shorter than send_timeout, a client that read nothing while the
    # app sent on was closed as "idle", and counted as given all the app had sent.
    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(SWITCHED)
        with contextlib.suppress(ConnectionError):
            while True:
                writer.write(b"x" * 65536)
                await writer.drain()

    ends = Ends()
    limits = Limits(send_timeout=1.0, tunnel_idle_timeout=0.3)
    loop = asyncio.get_running_loop()
    async with raw_upstream(flood) as up:
        gw = await gateway(upgrade_to(up.url), limits=limits, on_tunnel_end=ends)
        with socket.socket() as client:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.setblocking(False)
            await loop.sock_connect(client, ("127.0.0.1", gw.port))
            await loop.sock_sendall(client, get(extra=WS_FIELDS))
            await eventually(lambda: ends.seen != [], what="the tunnel's end recorded")
            got = 0
            with contextlib.suppress(ConnectionError):
                while chunk := await loop.sock_recv(client, 65536):
                    got += len(chunk)
    [(_, _, why, _, received, _)] = ends.seen
    assert why == "client stopped reading (send_timeout)"
    assert received <= got - len(SWITCHED), (received, got)  # what it was given, at most


async def test_a_client_that_leaves_before_the_101_is_recorded_as_gone(gateway: Start) -> None:
    # Reading stopped after an Upgrade head, so a client that left went unseen until the
    # app answered: a 200 or a 101 recorded as given to no one, a tunnel opened to it, and
    # an app that took its time counted as the app's read_timeout.
    asked, app_done = asyncio.Event(), asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        asked.set()
        with contextlib.suppress(ConnectionError):
            await reader.read()  # until the gateway lets go of it
        app_done.set()

    answers = Answers()
    async with raw_upstream(slow) as up:
        gw = await gateway(upgrade_to(up.url), on_response=answers)
        loop = asyncio.get_running_loop()
        with socket.socket() as client:
            client.setblocking(False)
            await loop.sock_connect(client, ("127.0.0.1", gw.port))
            await loop.sock_sendall(client, get(extra=WS_FIELDS))
            async with asyncio.timeout(PATIENCE):
                await asked.wait()
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()  # a reset (a half-close is passed on: test_tunnel_half_close.py)
            async with asyncio.timeout(PATIENCE):  # the app is let go of at once
                await app_done.wait()
    assert answers.seen == [(499, "client closed the connection")]
    assert gw.open_tunnels == 0
