"""Upgrades and tunnels (lychgate.gateway.http.tunnel), with a real WebSocket upstream."""

from __future__ import annotations

import asyncio
import socket

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gateway.client import get
from gateway.conftest import SID, Connect, Start, upgrade_to
from gateway.upstreams import raw_upstream, read_head
from lychgate.gateway.http.limits import Limits
from lychgate.gateway.http.tunnel import Tunnel, TunnelRegistry
from lychgate.ids import SessionId

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
    for _ in range(50):
        if gw.open_tunnels == 0:
            break
        await asyncio.sleep(0.01)
    assert gw.open_tunnels == 0


async def test_upgrade_not_allowed_is_403(gateway: Start, ws_upstream: str) -> None:
    gw = await gateway(upgrade_to(ws_upstream, allow=False))
    with pytest.raises(InvalidStatus) as info:
        async with ws_connect(f"ws://127.0.0.1:{gw.port}/ws"):
            pass
    assert info.value.response.status_code == 403


async def test_close_session_closes_its_tunnels(gateway: Start, ws_upstream: str) -> None:
    gw = await gateway(upgrade_to(ws_upstream))
    async with ws_connect(f"ws://127.0.0.1:{gw.port}/ws") as ws:
        await ws.send("a")
        assert await ws.recv() == "a"
        assert gw.close_session(SessionId("someone-else")) == 0
        assert gw.close_session(SID) == 1
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(2):
                await ws.recv()
    assert gw.open_tunnels == 0


async def test_refused_upgrade_is_relayed_and_closes(gateway: Start, connect: Connect) -> None:
    async def serve_(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\nno")
        await writer.drain()

    async with raw_upstream(serve_) as up:
        gw = await gateway(upgrade_to(up.url))
        c = await connect(gw.port)
        await c.send(get(extra="Connection: Upgrade\r\nUpgrade: websocket\r\n") + get("/next"))
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
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
            b"\r\nfrom-upstream"
        )
        await writer.drain()
        upstream_got.extend(await reader.readexactly(len(b"early-client-bytes+later")))
        writer.write(b"|bye")
        await writer.drain()

    async with raw_upstream(serve_) as up:
        gw = await gateway(upgrade_to(up.url))
        c = await connect(gw.port)
        await c.send(
            get(extra="Connection: Upgrade\r\nUpgrade: websocket\r\n") + b"early-client-bytes"
        )
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
            async with asyncio.timeout(5):
                await ws.recv()
        # Never before the timeout (sweeps count whole periods), whatever the machine's speed.
        assert loop.time() - quiet_since >= IDLE
    for _ in range(50):
        if gw.open_tunnels == 0:
            break
        await asyncio.sleep(0.01)
    assert gw.open_tunnels == 0


async def test_a_tunnel_in_use_stays_open_past_the_idle_timeout(
    gateway: Start, ws_upstream: str
) -> None:
    gw = await gateway(upgrade_to(ws_upstream), limits=Limits(tunnel_idle_timeout=IDLE))
    async with ws_connect(f"ws://127.0.0.1:{gw.port}/ws", ping_interval=None) as ws:
        for i in range(12):  # 1.2 s: three idle timeouts, a message every quarter of one
            await ws.send(str(i))
            assert await ws.recv() == str(i)
            await asyncio.sleep(IDLE / 4)
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
