"""A client that reads slowly but steadily is not cut as if it had stopped (send_timeout).

The timeout used to end only when the gateway's write buffer fell below its low-water mark,
which the kernel allows only once a good part of the socket's send buffer is free: a download
read at 16 KiB/s was cut after a minute, and a WebSocket the same way; a busy tunnel whose
reader paused the other side was closed as idle too. Now the bytes still to send are counted
when the timeout comes (lychgate.gateway.http.unsent): a peer that took some gets another.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable

import pytest

from gateway.client import get
from gateway.conftest import Start, forward_to, upgrade_to
from gateway.upstreams import SWITCHED, raw_upstream, read_head
from gateway.waiting import eventually
from lychgate.gateway.http.limits import Limits

pytestmark = pytest.mark.loopback

SEND_TIMEOUT = 0.4
PIECE = 4096  # bytes read per turn...
EVERY = 0.05  # ...every this many seconds: 80 KiB/s, far less than the upstream sends


async def _flood(writer: asyncio.StreamWriter, head: bytes) -> None:
    writer.write(head)
    chunk = b"x" * 65536
    with contextlib.suppress(ConnectionError):
        while True:
            writer.write(chunk)
            await writer.drain()


async def _read_slowly(
    port: int, request: bytes, seconds: float, still_open: Callable[[], bool] = lambda: True
) -> tuple[int, bool]:
    """Send ``request``, then read a little at a time for ``seconds``: (bytes read, cut).
    Cut too when ``still_open()`` turns false (the gateway may let the kernel send what it
    had queued before the end reaches the client)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, PIECE)
    sock.setblocking(False)
    got = 0
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, request)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await asyncio.sleep(EVERY)
            try:
                async with asyncio.timeout(1.0):
                    data = await loop.sock_recv(sock, PIECE)
            except (ConnectionError, TimeoutError):
                return got, True
            if not data or not still_open():
                return got, True
            got += len(data)
        return got, False
    finally:
        sock.close()


async def test_a_slow_steady_reader_of_a_long_download_is_not_cut(gateway: Start) -> None:
    async def download(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await _flood(writer, b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")

    async with raw_upstream(download) as up:
        gw = await gateway(forward_to(up.url), limits=Limits(send_timeout=SEND_TIMEOUT))
        got, cut = await _read_slowly(gw.port, get("/big"), 8 * SEND_TIMEOUT)
    assert not cut, f"cut after {got} bytes"
    assert got > 8 * SEND_TIMEOUT / EVERY * PIECE / 2


async def test_a_slow_steady_reader_of_a_busy_tunnel_is_not_cut_nor_called_idle(
    gateway: Start,
) -> None:
    # The idle timeout is short too: the upstream's side is paused while the client reads
    # slowly, so nothing is read from it, yet bytes are passing all the time.
    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await _flood(writer, SWITCHED)

    limits = Limits(send_timeout=SEND_TIMEOUT, tunnel_idle_timeout=SEND_TIMEOUT)
    handshake = get(extra="Connection: Upgrade\r\nUpgrade: websocket\r\n")
    async with raw_upstream(flood) as up:
        gw = await gateway(upgrade_to(up.url), limits=limits)
        still_open = lambda: gw.open_tunnels == 1  # noqa: E731 (the 101 came: it was open)
        got, cut = await _read_slowly(gw.port, handshake, 8 * SEND_TIMEOUT, still_open)
        assert not cut, f"cut after {got} bytes"
        await eventually(lambda: gw.open_tunnels == 0, what="tunnel closed by the client")
