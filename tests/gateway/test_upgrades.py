"""Which Upgrades become tunnels, and when a tunnel may still open (lychgate.gateway.http).

Only a WebSocket handshake is tunnelled: any other Upgrade (``h2c`` above all, which would let
a client speak HTTP/2 straight to the app, past every rule the gateway applies per request) is
answered as a plain request, as RFC 9110 section 7.8 allows. And a tunnel whose session ended,
or whose gateway began to stop, while the upstream was answering the handshake never opens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from gateway.client import get
from gateway.conftest import SID, Connect, Start, upgrade_to
from gateway.upstreams import SWITCHED, WS_FIELDS, raw_upstream, read_head
from lychgate.gateway.http import GatewayServer
from lychgate.ids import SessionId

pytestmark = pytest.mark.loopback

WEBSOCKET = WS_FIELDS


async def _plain_answers(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, heads: list[bytes]
) -> None:
    while True:
        heads.append(await read_head(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain")
        await writer.drain()


@pytest.mark.parametrize(
    "request_head",
    [
        get(
            extra="Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMA\r\n"
        ),
        get(extra="Connection: Upgrade\r\nUpgrade: websocket, h2c\r\n"),
        b"GET / HTTP/1.0\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        b"OPTIONS / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    ],
    ids=["h2c", "websocket and h2c", "http/1.0", "not GET"],
)
async def test_other_upgrades_are_answered_as_plain_requests(
    gateway: Start, connect: Connect, request_head: bytes
) -> None:
    heads: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _plain_answers(reader, writer, heads)

    async with raw_upstream(serve) as up:
        gw = await gateway(upgrade_to(up.url))
        c = await connect(gw.port)
        # What follows the head is HTTP again, not tunnel bytes: the next request is answered.
        await c.send(request_head + get("/next"))
        first = await c.read_response()
        assert (first.status, first.body) == (200, b"plain")
        if not request_head.startswith(b"GET / HTTP/1.0"):  # 1.0 without keep-alive closes
            assert (await c.read_response()).body == b"plain"
            assert heads[1].startswith(b"GET /next ")
        assert b"upgrade" not in heads[0].lower()  # the upstream never hears of it
        assert gw.open_tunnels == 0


async def test_a_101_to_another_protocol_than_websocket_is_502(
    gateway: Start, connect: Connect
) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n"
        )
        await writer.drain()
        await asyncio.sleep(1)

    async with raw_upstream(serve) as up:
        gw = await gateway(upgrade_to(up.url))
        c = await connect(gw.port)
        await c.send(get(extra=WEBSOCKET))
        assert (await c.read_response()).status == 502
        assert gw.open_tunnels == 0


@pytest.mark.parametrize(
    ("fields", "answer"),
    [
        (WEBSOCKET, b"Sec-WebSocket-Accept: bm90IHRoZSBhbnN3ZXIgYXQgYWxsIQ==\r\n"),
        (WEBSOCKET, b""),  # none
        (WEBSOCKET, 2 * b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        ("Connection: Upgrade\r\nUpgrade: websocket\r\n", b"Sec-WebSocket-Accept: x\r\n"),
    ],
    ids=["wrong", "missing", "twice", "no key asked"],
)
async def test_a_101_that_does_not_answer_the_key_is_502(
    gateway: Start, connect: Connect, fields: str, answer: bytes
) -> None:
    # Something other than a WebSocket server switched protocols (an app that echoes a status
    # it was given, say): behind a tunnel the client would speak HTTP to the app past every
    # rule the gateway applies per request, its own X-Lychgate-* headers among them.
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
            + answer
            + b"\r\n"
        )
        await writer.drain()
        await asyncio.sleep(1)

    async with raw_upstream(serve) as up:
        gw = await gateway(upgrade_to(up.url))
        c = await connect(gw.port)
        await c.send(get(extra=fields) + get("/smuggled", extra="X-Lychgate-User: admin\r\n"))
        assert (await c.read_response()).status == 502
        assert gw.open_tunnels == 0


async def _held_handshake(
    gateway: Start, connect: Connect, during: Callable[[GatewayServer], Awaitable[None]]
) -> tuple[bytes, int]:
    """A WebSocket handshake whose upstream holds its 101 until ``during()`` has run: what
    the client read, and how many tunnels were open after."""
    release = asyncio.Event()
    asked = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        asked.set()
        await release.wait()
        writer.write(SWITCHED)
        await writer.drain()
        await asyncio.sleep(2)

    async with raw_upstream(serve) as up:
        gw = await gateway(upgrade_to(up.url))
        c = await connect(gw.port)
        await c.send(get(extra=WEBSOCKET))
        await asyncio.wait_for(asked.wait(), 5)
        await during(gw)
        release.set()
        data = await c.read_until_closed()
        return data, gw.open_tunnels


async def test_a_session_ended_during_the_handshake_gets_no_tunnel(
    gateway: Start, connect: Connect
) -> None:
    ended: set[SessionId] = set()

    async def revoke(gw: object) -> None:
        ended.add(SID)  # what the gateway's feed reports, as its revoked set
        gw.gate_tunnels(  # type: ignore[attr-defined]
            lambda sid: (
                (401, "session ended during the WebSocket handshake") if sid in ended else None
            )
        )
        assert gw.close_session(SID) == 0  # type: ignore[attr-defined]  # nothing open yet

    data, tunnels = await _held_handshake(gateway, connect, revoke)
    assert data.startswith(b"HTTP/1.1 401 ")
    assert tunnels == 0


async def test_a_handshake_answered_while_draining_gets_no_tunnel(
    gateway: Start, connect: Connect
) -> None:
    closing: list[asyncio.Task[None]] = []

    async def stop(gw: GatewayServer) -> None:
        closing.append(asyncio.create_task(gw.close(drain_timeout=3)))
        await asyncio.sleep(0.05)  # draining: the handshake is in flight

    data, tunnels = await _held_handshake(gateway, connect, stop)
    await closing[0]
    assert data.startswith(b"HTTP/1.1 503 ")
    assert tunnels == 0
