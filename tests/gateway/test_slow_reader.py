"""A client that pipelines requests and never reads the answers (SECURITY.md 8, slow-read).

The gateway answers some requests itself (a 401 to anyone without a cookie), so such a client
needs no account: it used to get every answer written into a buffer that only grew (5 MB a
second on one connection), with reading never paused and no send timeout ever reached.
"""

from __future__ import annotations

import asyncio
import socket
import tracemalloc

import pytest

from gateway.client import get
from gateway.conftest import Connect, Start, forward_to
from gateway.upstreams import Reply, Seen, http_upstream
from gateway.waiting import PATIENCE, eventually, steady
from lychgate.gateway.http import Limits
from lychgate.gateway.http.ending import HEADS_AHEAD, PARSED_AHEAD
from lychgate.gateway.types import RequestHead, Respond

pytestmark = pytest.mark.loopback

REQUEST = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"


async def test_a_client_that_pipelines_and_never_reads_is_paused_then_cut(gateway: Start) -> None:
    gw = await gateway(
        lambda head: Respond(401, (), b"sign in first\n" * 64),
        limits=Limits(send_timeout=0.5, idle_timeout=60.0),
    )
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and never read
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", gw.port))
    sent = 0
    try:
        # Reading stops once its queue is full and the answers are not read, and the send
        # timeout then cuts it: long before the idle timeout, and before this hang guard.
        async with asyncio.timeout(PATIENCE):
            while True:
                try:
                    await loop.sock_sendall(sock, REQUEST * 2000)
                except OSError:  # reset or broken pipe (a timeout is not caught here)
                    break  # cut: what we wanted
                sent += 1
                await asyncio.sleep(0.01)
    finally:
        sock.close()
    assert sent < 200  # about 5 MB of requests at most before the gateway stopped reading


async def test_content_in_tiny_chunks_held_behind_a_request_stays_small(
    gateway: Start, connect: Connect
) -> None:
    # A chunked upload in 2-byte chunks, pipelined behind a request whose answer is slow:
    # its content is held until its turn. Counted by bytes alone, 128k such pieces fit under
    # the limit, each a 35-byte object and a list slot (about 13x the bytes on the wire).
    release = asyncio.Event()

    async def app(seen: Seen, reply: Reply) -> None:
        if seen.target == "/slow":
            await release.wait()
        await reply.send(200, b"%d" % len(seen.body))

    async with http_upstream(app) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        upload = b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        pieces = 150_000
        tracemalloc.start()
        try:
            await c.send(get("/slow") + upload)
            writing = asyncio.create_task(c.send(b"2\r\nxy\r\n" * pieces + b"0\r\n\r\n"))
            # The gateway reads what it will hold, then stops: its memory stops growing (with
            # no bound it would stop too, once it held all of it).
            await steady(lambda: tracemalloc.get_traced_memory()[0], slack=64 * 1024)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        release.set()
        assert (await c.read_response()).body == b"0"
        assert (await c.read_response()).body == b"%d" % (2 * pieces)  # all of it, in the end
        await writing
    assert peak < 3 * 1024 * 1024, peak


async def test_one_read_of_thousands_of_requests_is_parsed_only_so_far(
    gateway: Start, connect: Connect
) -> None:
    # One 256 KiB read holds about 9,000 requests this small, and every one used to be parsed
    # and queued before reading paused: megabytes per connection. Now the requests parsed
    # ahead stop at PARSED_AHEAD times max_pipelined: those are answered in order, the next
    # one gets a 429, and the connection closes (the client may retry the rest).
    handled: list[str] = []

    def handler(head: RequestHead) -> Respond:
        handled.append(head.target)
        return Respond(200, (), b"ok")

    limits = Limits(max_pipelined=4)
    gw = await gateway(handler, limits=limits)
    c = await connect(gw.port)
    await c.send(b"".join(get(f"/{i}") for i in range(3000)))
    data = await c.read_until_closed()
    allowed = limits.max_pipelined * PARSED_AHEAD
    assert data.count(b"HTTP/1.1 200 ") == allowed
    assert data.count(b"HTTP/1.1 429 ") == 1
    assert data.rstrip().rpartition(b"\r\n\r\n")[2].startswith(b"429 Too Many Requests\n")
    assert handled == [f"/{i}" for i in range(allowed)]


async def test_pipelining_within_the_bound_is_answered_in_full(
    gateway: Start, connect: Connect
) -> None:
    limits = Limits(max_pipelined=4)
    gw = await gateway(lambda head: Respond(200, (), head.target.encode()), limits=limits)
    c = await connect(gw.port)
    count = limits.max_pipelined * PARSED_AHEAD
    await c.send(b"".join(get(f"/{i}") for i in range(count)))
    for i in range(count):
        response = await c.read_response()
        assert (response.status, response.body) == (200, f"/{i}".encode())
    # ... and the connection stays open for more.
    await c.send(get("/more"))
    assert (await c.read_response()).body == b"/more"


def largest_head(target: str) -> bytes:
    """A head just under the default 16 KiB limit, in 98 fields: parsed, about 30 KB."""
    fields = "".join(f"X-F{i:02d}: {'v' * 150}\r\n" for i in range(97))
    return f"GET {target} HTTP/1.1\r\nHost: test.localhost\r\n{fields}\r\n".encode()


async def _read_answers(loop: asyncio.AbstractEventLoop, sock: socket.socket, count: int) -> bytes:
    """What comes back until ``count`` answers have, or the gateway closes."""
    got = b""
    async with asyncio.timeout(PATIENCE):
        while got.count(b"HTTP/1.1 ") < count:
            chunk = await loop.sock_recv(sock, 65536)
            if not chunk:
                break
            got += chunk
    return got


async def test_the_largest_heads_pipelined_behind_a_slow_answer_hold_little(
    gateway: Start,
) -> None:
    # Counted only by number, sixteen and one read's worth of them were parsed ahead: 29 heads
    # of the largest size, 1 MB at the peak, on one connection. Their bytes count too now.
    release = asyncio.Event()
    seen: list[str] = []

    async def app(request: Seen, reply: Reply) -> None:
        seen.append(request.target)
        if request.target == "/slow":
            await release.wait()
        await reply.send(200, request.target.encode())

    heads = b"".join(largest_head(f"/{i}") for i in range(60))
    loop = asyncio.get_running_loop()
    async with http_upstream(app) as up:
        gw = await gateway(forward_to(up.url))
        with socket.socket() as sock:
            # a raw socket: a stream writer would copy what the gateway has not read yet, and
            # that copy would be counted as the gateway's
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", gw.port))
            await loop.sock_sendall(sock, get("/slow"))
            await eventually(lambda: seen == ["/slow"])
            tracemalloc.start()
            try:
                sending = asyncio.create_task(loop.sock_sendall(sock, heads))
                await steady(lambda: tracemalloc.get_traced_memory()[0], slack=16 * 1024)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            release.set()
            got = await _read_answers(loop, sock, 61)
            sending.cancel()
    assert peak < 512 * 1024, peak
    # Answered in order; a client pipelining so much may be refused the rest (a 429, then the
    # connection closes), as for too many small requests at once.
    answered = got.count(b"HTTP/1.1 200 ")
    assert answered > 3
    assert seen == ["/slow", *(f"/{i}" for i in range(answered - 1))]
    assert got.count(b"HTTP/1.1 429 ") == (0 if answered == 61 else 1)


async def test_a_few_of_the_largest_heads_pipelined_are_all_answered(
    gateway: Start, connect: Connect
) -> None:
    gw = await gateway(lambda head: Respond(200, (), head.target.encode()))
    c = await connect(gw.port)
    count = HEADS_AHEAD * PARSED_AHEAD
    await c.send(b"".join(largest_head(f"/{i}") for i in range(count)))
    for i in range(count):
        response = await c.read_response()
        assert (response.status, response.body) == (200, f"/{i}".encode())
    await c.send(get("/more"))
    assert (await c.read_response()).body == b"/more"
