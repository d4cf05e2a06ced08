"""Blank lines between keep-alive requests (lychgate.gateway.http.turns): no way to stay open.

RFC 9112 section 2.2 lets a server ignore empty lines before a request line, and llhttp skips
them without starting a head. They used to restart the idle keep-alive wait at every read: a
client sending a bare CRLF every few seconds held its connection for ever (a slowloris that
costs it two bytes a read). The idle wait now runs from the end of the last response, and the
next head, however many blank lines came before it, gets ``header_timeout`` from its first
byte. (Blank lines before the first head: tests/gateway/test_connection.py.)
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from gateway.client import RawClient, get
from gateway.conftest import Connect, Start
from lychgate.gateway.http import Limits
from lychgate.gateway.types import RequestHead, Respond

pytestmark = pytest.mark.loopback


def _answer(head: RequestHead) -> Respond:
    return Respond(200, (), head.path.encode())


async def _blank_lines(c: RawClient, every: float, times: int) -> None:
    with contextlib.suppress(ConnectionError):
        for _ in range(times):
            await c.send(b"\r\n")
            await asyncio.sleep(every)


async def _closed_under_blank_lines(c: RawClient) -> float:
    """Send a blank line every 50 ms (for 3 s) from now until the connection closes, silently
    as any idle one; the seconds that took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.TaskGroup() as tg:
        sender = tg.create_task(_blank_lines(c, 0.05, 60))
        assert await c.read_until_closed() == b""
        closed = loop.time() - started
        sender.cancel()
    return closed


async def test_blank_lines_do_not_restart_the_idle_wait(gateway: Start, connect: Connect) -> None:
    gw = await gateway(_answer, limits=Limits(header_timeout=30.0, idle_timeout=0.3))
    c = await connect(gw.port)
    await c.send(get("/first"))
    assert (await c.read_response()).body == b"/first"
    closed = await _closed_under_blank_lines(c)
    assert 0.2 < closed < 2.0  # at the idle timeout, not early, and long before they stop
    assert gw.open_connections == 0


async def test_blank_lines_after_pipelined_requests_do_not_restart_it(
    gateway: Start, connect: Connect
) -> None:
    # The blank lines come with the requests, and after them.
    gw = await gateway(_answer, limits=Limits(header_timeout=30.0, idle_timeout=0.3))
    c = await connect(gw.port)
    await c.send(get("/a") + b"\r\n" + get("/b") + b"\r\n\r\n")
    for path in (b"/a", b"/b"):
        assert (await c.read_response()).body == path
    closed = await _closed_under_blank_lines(c)
    assert 0.2 < closed < 2.0


async def test_a_request_after_blank_lines_is_answered(gateway: Start, connect: Connect) -> None:
    # Ignored, not refused: within the idle wait, a request behind them is served as ever.
    gw = await gateway(_answer, limits=Limits(header_timeout=30.0, idle_timeout=5.0))
    c = await connect(gw.port)
    await c.send(get("/first"))
    assert (await c.read_response()).body == b"/first"
    for _ in range(3):
        await c.send(b"\r\n")
        await asyncio.sleep(0.02)
    await c.send(get("/second"))
    assert (await c.read_response()).body == b"/second"


async def test_the_head_after_blank_lines_gets_header_timeout_from_its_first_byte(
    gateway: Start, connect: Connect
) -> None:
    # Blank lines for a while, then a head dribbled for ever (5 s): it is cut (408) one
    # header_timeout after its first byte, before the idle wait would have ended, and the
    # blank lines before it neither moved that nor bought it more.
    gw = await gateway(_answer, limits=Limits(header_timeout=0.4, idle_timeout=3.0))
    loop = asyncio.get_running_loop()
    c = await connect(gw.port)
    await c.send(get("/first"))
    assert (await c.read_response()).body == b"/first"
    await _blank_lines(c, 0.05, 6)
    head = get("/slow", extra="x-a: " + "b" * 200 + "\r\n")
    began = loop.time()

    async with asyncio.TaskGroup() as tg:
        sender = tg.create_task(c.dribble(head[:-1], 0.02))  # never the last byte
        r = await c.read_response(timeout=20.0)
        cut = loop.time() - began
        sender.cancel()
    assert r.status == 408
    assert 0.4 - 0.02 <= cut < 2.0
