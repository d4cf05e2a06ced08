"""A client that reads slowly but steadily is not cut as if it had stopped (send_timeout).

The timeout used to end only when the gateway's write buffer fell below its low-water mark,
which the kernel allows only once a good part of the socket's send buffer is free: a download
read at 16 KiB/s was cut after a minute, and a WebSocket the same way; a busy tunnel whose
reader paused the other side was closed as idle too. Now the bytes still to send are counted
four times per timeout (lychgate.gateway.http.unsent), and only a whole timeout with nothing
taken cuts, with a reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable

import pytest

from gateway.client import get
from gateway.conftest import Start, forward_to, upgrade_to
from gateway.upstreams import SWITCHED, WS_FIELDS, Raw, raw_upstream, read_head
from gateway.waiting import eventually
from lychgate.gateway.http.limits import Limits
from lychgate.gateway.http.unsent import StallWatch

pytestmark = pytest.mark.loopback

SEND_TIMEOUT = 0.4
PIECE = 4096  # bytes read per turn...
EVERY = 0.05  # ...every this many seconds: 80 KiB/s, far less than the upstream sends


DOWNLOAD = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n"
HANDSHAKE = get(extra=WS_FIELDS)


def _flooding(head: bytes) -> Raw:
    """An upstream that answers with ``head`` (a download's, or a 101), then bytes without end."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(head)
        chunk = b"x" * 65536
        with contextlib.suppress(ConnectionError):
            while True:
                writer.write(chunk)
                await writer.drain()

    return serve


@contextlib.asynccontextmanager
async def _sent(
    port: int, request: bytes, rcvbuf: int | None = None
) -> AsyncIterator[socket.socket]:
    """A non-blocking client socket that sent ``request`` (closed on leaving)."""
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    try:
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, request)
        yield sock
    finally:
        sock.close()


async def _read_slowly(
    port: int, request: bytes, seconds: float, still_open: Callable[[], bool] = lambda: True
) -> tuple[int, bool]:
    """Send ``request``, then read a little at a time for ``seconds``: (bytes read, cut).
    Cut too when ``still_open()`` turns false (the gateway may let the kernel send what it
    had queued before the end reaches the client)."""
    loop = asyncio.get_running_loop()
    got = 0
    async with _sent(port, request, rcvbuf=PIECE) as sock:
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


async def test_a_slow_steady_reader_of_a_long_download_is_not_cut(gateway: Start) -> None:
    async with raw_upstream(_flooding(DOWNLOAD)) as up:
        gw = await gateway(forward_to(up.url), limits=Limits(send_timeout=SEND_TIMEOUT))
        got, cut = await _read_slowly(gw.port, get("/big"), 8 * SEND_TIMEOUT)
    assert not cut, f"cut after {got} bytes"
    assert got > 8 * SEND_TIMEOUT / EVERY * PIECE / 2


async def test_a_slow_steady_reader_of_a_busy_tunnel_is_not_cut_nor_called_idle(
    gateway: Start,
) -> None:
    # The idle timeout is short too: the upstream's side is paused while the client reads
    # slowly, so nothing is read from it, yet bytes are passing all the time.
    limits = Limits(send_timeout=SEND_TIMEOUT, tunnel_idle_timeout=SEND_TIMEOUT)
    async with raw_upstream(_flooding(SWITCHED)) as up:
        gw = await gateway(upgrade_to(up.url), limits=limits)
        still_open = lambda: gw.open_tunnels == 1  # noqa: E731 (the 101 came: it was open)
        got, cut = await _read_slowly(gw.port, HANDSHAKE, 8 * SEND_TIMEOUT, still_open)
        assert not cut, f"cut after {got} bytes"
        await eventually(lambda: gw.open_tunnels == 0, what="tunnel closed by the client")


class _Buffered(asyncio.WriteTransport):
    """A transport whose unsent bytes the test sets (no socket: the buffer alone counts)."""

    def __init__(self) -> None:
        super().__init__()
        self.held = 0

    def get_write_buffer_size(self) -> int:
        return self.held


def test_the_watch_cuts_a_whole_timeout_after_the_last_byte_taken() -> None:
    peer = _Buffered()
    peer.held = 1000
    watch = StallWatch(peer, timeout=60.0, now=0.0)
    assert watch.every == 15.0
    peer.held = 900  # the peer's kernel filled its receive buffer right after the pause
    assert not watch.stopped(peer, 15.0)
    assert not watch.stopped(peer, 30.0)
    assert not watch.stopped(peer, 45.0)
    assert not watch.stopped(peer, 60.0)
    assert watch.stopped(peer, 75.0)  # sixty seconds after the look that saw it take some
    steady = StallWatch(peer, timeout=60.0, now=0.0)
    for look in range(1, 40):
        peer.held -= 10  # a slow reader: some at every look, however little
        assert not steady.stopped(peer, look * 15.0)
    never = StallWatch(peer, timeout=60.0, now=0.0)
    assert [never.stopped(peer, t) for t in (15.0, 30.0, 45.0, 60.0)] == [False] * 3 + [True]


async def _never_read(port: int, request: bytes, seconds: float) -> float | None:
    """Send ``request`` and read nothing: seconds until the gateway cut the connection (seen
    by reading once at the end), None if it did not within ``seconds``."""
    start = time.monotonic()
    async with _sent(port, request) as sock:
        while time.monotonic() - start < seconds:
            await asyncio.sleep(0.05)
            try:
                info = sock.getsockopt(socket.SOL_TCP, socket.TCP_INFO, 1)
            except OSError:
                return time.monotonic() - start
            if info[0] in (7, 8):  # TCP_CLOSE, TCP_CLOSE_WAIT: reset, or the end came
                return time.monotonic() - start
        return None


async def test_a_client_that_never_reads_is_cut_after_one_timeout_not_two(gateway: Start) -> None:
    # The kernel filling the client's receive buffer after the pause looked like reading to
    # a single look at the timeout's end, which gave it a second timeout.
    timeout = 1.0
    async with raw_upstream(_flooding(DOWNLOAD)) as up:
        gw = await gateway(forward_to(up.url), limits=Limits(send_timeout=timeout))
        cut_after = await _never_read(gw.port, get("/big"), 4 * timeout)
    assert cut_after is not None
    assert cut_after < 1.8 * timeout


async def test_a_tunnel_client_that_never_reads_is_reset(gateway: Start) -> None:
    # Closed, not reset, the socket went on holding megabytes in FIN-WAIT for a client that
    # read none of them and was never told the tunnel had ended.
    timeout = 1.0
    async with raw_upstream(_flooding(SWITCHED)) as up:
        gw = await gateway(upgrade_to(up.url), limits=Limits(send_timeout=timeout))
        cut_after = await _never_read(gw.port, HANDSHAKE, 4 * timeout)
        assert cut_after is not None
        assert cut_after < 1.8 * timeout
        await eventually(lambda: gw.open_tunnels == 0, what="tunnel closed")
