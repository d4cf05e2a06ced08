"""Half-closed tunnels (lychgate.gateway.http.tunnel): a FIN is passed on, not made a close.

Real sockets on loopback. Each side shuts its write side with ``write_eof`` (``shutdown(SHUT_WR)``)
and goes on reading; the other side must get everything still sent to it, and the tunnel must
still end on the gateway's own terms (idle, revoked) meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from pathlib import Path

import pytest
import trustme

from gateway.client import RawClient, get
from gateway.conftest import SID, Connect, Start, upgrade_to
from gateway.test_tls import _pair, _trusting
from gateway.test_tunnel import Ends
from gateway.upstreams import SWITCHED, WS_FIELDS, raw_upstream, read_head
from gateway.waiting import PATIENCE, eventually
from lychgate.gateway.http.limits import Limits
from lychgate.gateway.http.tls import server_context
from lychgate.gateway.http.tunnel import Tunnel, TunnelEnd
from lychgate.gateway.http.tunnel_registry import TunnelRegistry
from lychgate.gateway.http.wsframes import GOING_AWAY, POLICY_VIOLATION, close_frame

pytestmark = pytest.mark.loopback

#: More than every buffer on the way holds: backpressure comes and goes after the FIN.
BIG = os.urandom(3 << 20)
IDLE = 0.4
NAME = "app.example"


async def _open(client: RawClient, early: bytes = b"") -> None:
    """Send a WebSocket handshake (and ``early`` bytes behind it); read the 101."""
    await client.send(get(extra=WS_FIELDS) + early)
    head = await client.reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")


async def _send_big(writer: asyncio.StreamWriter) -> None:
    for i in range(0, len(BIG), 65536):
        writer.write(BIG[i : i + 65536])
        await writer.drain()


async def test_a_client_that_half_closes_gets_the_whole_reply(
    gateway: Start, connect: Connect
) -> None:
    # The client sends its request and shuts its write side; the app answers only once it
    # has read the end of it. Closing both sides at the client's FIN lost the whole answer.
    got = bytearray()

    async def answer_at_the_end(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(SWITCHED)
        got.extend(await reader.read())  # to the client's FIN, passed on
        await _send_big(writer)

    ends = Ends()
    async with raw_upstream(answer_at_the_end) as up:
        gw = await gateway(upgrade_to(up.url), on_tunnel_end=ends)
        c = await connect(gw.port)
        await _open(c, early=b"early")
        await c.send(b"+request")
        c.writer.write_eof()
        assert await c.read_until_closed() == BIG
        assert bytes(got) == b"early+request"
        await eventually(lambda: ends.seen != [], what="the tunnel's end recorded")
    [(_, _, why, sent, received, _)] = ends.seen
    assert (why, sent, received) == ("client closed", len(b"early+request"), len(BIG))
    assert gw.open_tunnels == 0


async def test_an_upstream_that_half_closes_still_gets_what_the_client_sends(
    gateway: Start, connect: Connect
) -> None:
    got = bytearray()
    done = asyncio.Event()

    async def greet_and_listen(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(SWITCHED + b"hello")
        writer.write_eof()
        got.extend(await reader.read())  # to the client's FIN
        done.set()

    ends = Ends()
    async with raw_upstream(greet_and_listen) as up:
        gw = await gateway(upgrade_to(up.url), on_tunnel_end=ends)
        c = await connect(gw.port)
        await _open(c)
        assert await c.read_until_closed() == b"hello"  # then the app's FIN, passed on
        assert gw.open_tunnels == 1  # the other way is still open
        await _send_big(c.writer)
        c.writer.write_eof()
        async with asyncio.timeout(PATIENCE):
            await done.wait()
        assert bytes(got) == BIG
        await eventually(lambda: ends.seen != [], what="the tunnel's end recorded")
    [(_, _, why, sent, received, _)] = ends.seen
    assert (why, sent, received) == ("upstream closed", len(BIG), len(b"hello"))
    assert gw.open_tunnels == 0


@pytest.mark.parametrize("how", ["idle", "revoked"])
@pytest.mark.parametrize("half_closed_by", ["client", "upstream"])
async def test_a_half_closed_tunnel_still_ends_on_the_gateways_terms(
    gateway: Start, connect: Connect, half_closed_by: str, how: str
) -> None:
    # Half-closed, and then silent: neither side ends the other way. The idle timeout and
    # revocation close both sides at once, as for any tunnel. The client is told why with a
    # close frame while it can be (only the client shut its write side), never after the
    # app's FIN has been passed on to it: a write after write_eof raises.
    fin_passed, done = asyncio.Event(), asyncio.Event()

    async def serve_(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(SWITCHED)
        if half_closed_by == "upstream":
            writer.write_eof()
        else:
            assert await reader.read() == b""  # the client's FIN, passed on
            fin_passed.set()
        await done.wait()  # silent meanwhile

    ends = Ends()
    loop = asyncio.get_running_loop()
    limits = Limits(tunnel_idle_timeout=IDLE if how == "idle" else 3600)
    async with raw_upstream(serve_) as up:
        gw = await gateway(upgrade_to(up.url), on_tunnel_end=ends, limits=limits)
        c = await connect(gw.port)
        opened = loop.time()
        await _open(c)
        if half_closed_by == "client":
            c.writer.write_eof()
            async with asyncio.timeout(PATIENCE):
                await fin_passed.wait()
        else:
            assert await c.read_until_closed() == b""  # the app's FIN, passed on
        assert gw.open_tunnels == 1  # half-closed, and open
        if how == "revoked":
            assert gw.close_session(SID) == 1
        # The record is made once both of the gateway's connections are gone.
        await eventually(lambda: ends.seen != [], what="the tunnel's end recorded")
        told = await c.read_until_closed()
        done.set()
    [(_, _, why, _, _, _)] = ends.seen
    assert why == ("idle (tunnel_idle_timeout)" if how == "idle" else "session ended")
    if half_closed_by == "client":
        assert told == close_frame(GOING_AWAY if how == "idle" else POLICY_VIOLATION, why)
    else:
        assert told == b""
    if how == "idle":
        assert loop.time() - opened >= IDLE
    assert gw.open_tunnels == 0


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def listener_ctx(ca: trustme.CA, tmp_path: Path) -> ssl.SSLContext:
    return server_context(_pair(ca, tmp_path, NAME), {})


@pytest.fixture
def client_ctx(ca: trustme.CA) -> ssl.SSLContext:
    return _trusting(ca)


async def test_over_tls_a_half_close_closes_both_sides(
    gateway: Start, connect: Connect, listener_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> None:
    # TLS has no half-close (the TLS transport cannot write_eof): the app's FIN closes the
    # tunnel, after what it sent before it, as a close does.
    closed = asyncio.Event()

    async def greet_and_listen(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(SWITCHED + b"hello")
        writer.write_eof()
        await reader.read()  # the gateway's close
        closed.set()

    ends = Ends()
    async with raw_upstream(greet_and_listen) as up:
        gw = await gateway(upgrade_to(up.url), ssl=listener_ctx, on_tunnel_end=ends)
        c = await connect(gw.port, ssl_context=client_ctx, server_hostname=NAME)
        await _open(c)
        assert await c.read_until_closed() == b"hello"
        async with asyncio.timeout(PATIENCE):
            await closed.wait()
        await eventually(lambda: ends.seen != [], what="the tunnel's end recorded")
    [(_, _, why, _, _, _)] = ends.seen
    assert why == "upstream closed"


async def test_a_fin_sent_with_the_handshake_reaches_the_app_once_the_tunnel_opens(
    gateway: Start, connect: Connect
) -> None:
    # The client shuts its write side before the 101 comes: the HTTP connection keeps it
    # open to answer, and the tunnel passes the FIN on once it opens. Whether the FIN is read
    # before the 101 or after, the app gets the bytes and the end, and its answer gets back.
    got = bytearray()
    shut = asyncio.Event()

    async def answer_at_the_end(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await shut.wait()
        writer.write(SWITCHED)
        got.extend(await reader.read())  # to the client's FIN
        writer.write(b"reply")

    ends = Ends()
    async with raw_upstream(answer_at_the_end) as up:
        gw = await gateway(upgrade_to(up.url), on_tunnel_end=ends)
        c = await connect(gw.port)
        await c.send(get(extra=WS_FIELDS) + b"early")
        c.writer.write_eof()
        shut.set()
        assert (await c.read_until_closed()).endswith(b"\r\n\r\nreply")
        assert bytes(got) == b"early"
        await eventually(lambda: ends.seen != [], what="the tunnel's end recorded")
    [(_, _, why, sent, received, _)] = ends.seen
    assert (why, sent, received) == ("client closed", len(b"early"), len(b"reply"))


async def test_backpressure_after_a_fin_does_not_read_that_side_again() -> None:
    # Resuming a transport that read its end-of-file reads it again (asyncio and uvloop
    # alike): the upstream's writes draining after the client's FIN must leave the client
    # unread, and the tunnel open the other way.
    loop = asyncio.get_running_loop()
    client, gw_client = socket.socketpair()
    gw_upstream, upstream = socket.socketpair()
    for sock in (client, upstream):
        sock.setblocking(False)
    to_client, _ = await loop.create_connection(asyncio.Protocol, sock=gw_client)
    to_upstream, _ = await loop.create_connection(asyncio.Protocol, sock=gw_upstream)
    tunnel = Tunnel(TunnelRegistry(), SID, to_client, to_upstream)
    tunnel.start(b"", b"")
    try:
        client.shutdown(socket.SHUT_WR)
        assert await loop.sock_recv(upstream, 16) == b""  # the FIN, passed on
        upstream_end = to_upstream.get_protocol()
        assert isinstance(upstream_end, TunnelEnd)
        upstream_end.pause_writing()  # as if its buffer filled, and then drained
        upstream_end.resume_writing()
        assert not to_client.is_reading()  # uvloop's answer (asyncio's says True after an end)
        await loop.sock_sendall(upstream, b"still")
        assert await loop.sock_recv(client, 16) == b"still"
        assert not tunnel.closed
    finally:
        tunnel.close()
        client.close()
        upstream.close()
