"""Idle client connections hold no parser (lychgate.gateway.http.ending, .turns).

An llhttp parser costs a connection about a kilobyte, most of it the bound methods it calls
back. A connection makes one with its first bytes, and lets go of it once a keep-alive wait
has lasted ``SHED_AFTER``; the next bytes make a new one. None of this may change what the
client sees: the next request is served, pipelined ones in order, the wait still ends at
``idle_timeout`` (not at the shed), and a head dribbled after it still gets its 408.

The parsers are counted from the garbage collector's list of objects, as a black box would.
"""

from __future__ import annotations

import asyncio
import gc

import pytest
from httptools import HttpRequestParser

from gateway.client import RawClient, get
from gateway.conftest import Connect, Start
from gateway.waiting import eventually
from lychgate.gateway.http import Limits
from lychgate.gateway.http.turns import SHED_AFTER
from lychgate.gateway.types import RequestHead, Respond

pytestmark = pytest.mark.loopback

CLIENTS = 20


def _answer(head: RequestHead) -> Respond:
    return Respond(200, (), head.path.encode())


def parsers() -> int:
    """Request parsers alive in this process (the gateway under test runs in it). Compared
    with ``<=`` to a count taken earlier: one that an earlier test left may yet be freed."""
    gc.collect()
    return sum(isinstance(o, HttpRequestParser) for o in gc.get_objects())


async def _served(c: RawClient, path: str) -> None:
    await c.send(get(path))
    assert (await c.read_response()).body == path.encode()


async def test_a_connection_that_sends_nothing_holds_no_parser(
    gateway: Start, connect: Connect
) -> None:
    gw = await gateway(_answer, limits=Limits(header_timeout=30.0))
    before = parsers()
    clients = [await connect(gw.port) for _ in range(CLIENTS)]
    await eventually(lambda: gw.open_connections == CLIENTS, what="all accepted")
    assert parsers() <= before
    await _served(clients[0], "/first")  # its first bytes made one
    assert parsers() <= before + 1


async def test_idle_connections_let_go_of_their_parsers_and_serve_on(
    gateway: Start, connect: Connect
) -> None:
    gw = await gateway(_answer, limits=Limits(idle_timeout=30.0))
    before = parsers()
    clients = [await connect(gw.port) for _ in range(CLIENTS)]
    for i, c in enumerate(clients):
        await _served(c, f"/a{i}")
    await eventually(lambda: parsers() <= before, what="every idle connection's parser gone")
    assert gw.open_connections == CLIENTS  # the waits go on
    for i, c in enumerate(clients):
        await _served(c, f"/b{i}")
    pipelined = clients[0]
    await pipelined.send(get("/c1") + get("/c2") + get("/c3"))
    for path in (b"/c1", b"/c2", b"/c3"):
        assert (await pipelined.read_response()).body == path
    await eventually(lambda: parsers() <= before, what="shed again after the second wait")


async def test_the_wait_still_ends_at_idle_timeout(gateway: Start, connect: Connect) -> None:
    idle = SHED_AFTER + 2.0
    gw = await gateway(_answer, limits=Limits(idle_timeout=idle))
    before = parsers()
    loop = asyncio.get_running_loop()
    c = await connect(gw.port)
    await _served(c, "/only")
    answered = loop.time()
    await eventually(lambda: parsers() <= before, what="the parser shed")
    assert gw.open_connections == 1  # shed, not closed
    assert await c.read_until_closed() == b""
    assert loop.time() - answered >= idle - 1.0  # at the idle timeout, long after the shed
    await eventually(lambda: gw.open_connections == 0, what="closed")


async def test_a_head_dribbled_after_the_shed_gets_its_408(
    gateway: Start, connect: Connect
) -> None:
    gw = await gateway(_answer, limits=Limits(header_timeout=0.4, idle_timeout=30.0))
    before = parsers()
    c = await connect(gw.port)
    await _served(c, "/first")
    await eventually(lambda: parsers() <= before, what="the parser shed")
    head = get("/slow", extra="x-a: " + "b" * 200 + "\r\n")
    dribbling = asyncio.create_task(c.dribble(head, every=0.05))
    try:
        response = await c.read_response()
    finally:
        dribbling.cancel()
    assert response.status == 408
    assert await c.read_until_closed() == b""


async def test_blank_lines_after_the_shed_do_not_restart_the_wait(
    gateway: Start, connect: Connect
) -> None:
    idle = SHED_AFTER + 1.5
    gw = await gateway(_answer, limits=Limits(header_timeout=30.0, idle_timeout=idle))
    before = parsers()
    loop = asyncio.get_running_loop()
    c = await connect(gw.port)
    await _served(c, "/first")
    answered = loop.time()
    await eventually(lambda: parsers() <= before, what="the parser shed")

    async def blank_lines() -> None:
        for _ in range(100):  # 5 s of them: far past the idle timeout
            await c.send(b"\r\n")
            await asyncio.sleep(0.05)

    sender = asyncio.create_task(blank_lines())
    try:
        assert await c.read_until_closed() == b""
    finally:
        sender.cancel()
    assert loop.time() - answered < 5.0  # closed at the idle timeout, under the blank lines


async def test_a_graceful_stop_closes_connections_that_shed(
    gateway: Start, connect: Connect
) -> None:
    gw = await gateway(_answer, limits=Limits(idle_timeout=30.0))
    before = parsers()
    c = await connect(gw.port)
    await _served(c, "/first")
    await eventually(lambda: parsers() <= before, what="the parser shed")
    await gw.close(drain_timeout=5.0)
    assert await c.read_until_closed() == b""
    assert gw.open_connections == 0


async def test_content_still_coming_after_an_early_answer_is_read_and_the_next_served(
    gateway: Start, connect: Connect
) -> None:
    # Answered before its content has all come (a 401 to a form posted with no cookie), a
    # request's last bytes are read and dropped, and the connection serves on. The keep-alive
    # wait used to find the parser busy at SHED_AFTER and close the connection instead: the
    # client, still sending, got a reset, and its next request no answer.
    gw = await gateway(_answer, limits=Limits(idle_timeout=30.0))
    c = await connect(gw.port)
    await c.send(b"POST /early HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n01234")
    response = await c.read_response()
    assert (response.status, response.header("connection")) == (200, None)  # kept alive
    await asyncio.sleep(2 * SHED_AFTER)
    await c.send(b"56789" + get("/next"))
    assert (await c.read_response()).body == b"/next"


async def test_content_that_stops_coming_after_an_early_answer_ends_at_idle_timeout(
    gateway: Start, connect: Connect
) -> None:
    gw = await gateway(_answer, limits=Limits(idle_timeout=SHED_AFTER + 0.5))
    c = await connect(gw.port)
    await c.send(b"POST /early HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n01234")
    assert (await c.read_response()).status == 200
    assert await c.read_until_closed() == b""  # the rest never comes: closed, not held
    await eventually(lambda: gw.open_connections == 0)
