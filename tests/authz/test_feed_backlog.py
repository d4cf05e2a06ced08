"""authz's feed to a gateway that stops reading: one snapshot waits, and the stream is cut.

A probe paused a gateway (SIGSTOP) while the config kept changing, on PostgreSQL with 10,000
users and 58,000 sessions to end: authz grew from 262 MB to 702 MB in 160 s, some 3 MB per
change, for the snapshots its feed connection queued. Now a connection holds the newest
snapshot it has not sent and no other (lychgate.gateway.feed_serve), and one whose client
accepts nothing for a while is closed (:class:`~lychgate.authz.internal.FeedResponse`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from datetime import timedelta

import pytest
import uvicorn
from fastapi import FastAPI

from authz.conftest import Clock
from authz.feed_call import FeedCall
from fixtures.store import T0, make_session, make_user
from gateway.waiting import PATIENCE, eventually
from lychgate.authz import internal
from lychgate.authz.context import AuthzContext
from lychgate.authz.internal import FeedResponse
from lychgate.authz.snapshots import SnapshotPublisher
from lychgate.gateway.feed_http import FEED_PATH
from lychgate.gateway.feed_wire import SessionsUpdate, UsersUpdate, parse_line
from lychgate.gateway.snapshot import ConfigSnapshot
from lychgate.ids import token_sid

CHANGES = 12
CUT = "accepted nothing for"


def alive(serials: range) -> set[int]:
    """The serials in ``serials`` of the snapshots still held by anything."""
    gc.collect()
    return {
        o.serial for o in gc.get_objects() if isinstance(o, ConfigSnapshot) and o.serial in serials
    }


def applied(lines: list[bytes]) -> ConfigSnapshot:
    """What a gateway holds after ``lines`` (a full snapshot first), as FeedClient applies them."""
    held: ConfigSnapshot | None = None
    for line in lines:
        if not line.strip():
            continue
        message = parse_line(line.rstrip(b"\n"))
        if isinstance(message, SessionsUpdate | UsersUpdate):
            assert held is not None
            assert message.after == held.serial
            held = message.apply(held)
        elif isinstance(message, ConfigSnapshot):
            held = message
    assert held is not None
    return held


@contextlib.asynccontextmanager
async def calling(call: FeedCall) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(call.run())
    try:
        yield task
    finally:
        call.leave()
        call.reading.set()
        await asyncio.wait_for(task, PATIENCE)


async def test_a_gateway_that_reads_nothing_costs_one_snapshot_however_much_changes(
    ctx: AuthzContext, authz: FastAPI, clock: Clock
) -> None:
    # Serials are the clock's milliseconds: this test's own, shared with no other test's
    # snapshots (some are kept at module level).
    clock.now = T0 + timedelta(seconds=7301)
    user = make_user()
    await ctx.store.users.add(user)
    sessions = [make_session(user.id) for _ in range(CHANGES)]
    for session in sessions:
        await ctx.store.sessions.create(session)
    pub: SnapshotPublisher = authz.state.publisher
    await pub.refresh()
    call = FeedCall(authz, ctx.secrets.internal_token.reveal(), accepts=1)
    async with calling(call):
        await eventually(lambda: call.sends == 1)  # the first snapshot; then it stops reading
        first = applied(call.lines()).serial
        serials = [first]
        for session in sessions:  # one change after another, each published
            await ctx.store.sessions.revoke(session.id, clock.now)
            await pub.refresh()
            assert pub.latest is not None
            serials.append(pub.latest.serial)
        assert serials == sorted(set(serials))
        newest = pub.latest
        assert newest is not None
        assert newest.serial - first >= CHANGES
        # The line of the first change is stuck in its send, and the newest waits, once the
        # connection has taken it. Nothing else (they were all queued, 3 MB each at 10,000
        # users).
        since = range(first + 1, newest.serial + 1)

        def one_waiting() -> bool:
            held = alive(since)
            return len(held) <= 2 and newest.serial in held

        await eventually(one_waiting, what="no snapshot but the newest waiting")
        # Reading again, the gateway gets every session ended, in two updates at most.
        call.reading.set()
        call.accepts = None
        await eventually(lambda: applied(call.lines()).serial == newest.serial)
    changes = [line for line in call.lines() if b'"type":"heartbeat"' not in line and line.strip()]
    assert len(changes) <= 3
    assert applied(call.lines()).revoked_sessions >= {token_sid(s.id) for s in sessions}


async def _lines(closed: asyncio.Event, size: int = 2) -> AsyncGenerator[bytes, None]:
    """A feed that never ends: a line every 10 ms; sets ``closed`` when closed."""
    try:
        while True:
            yield b"x" * (size - 1) + b"\n"
            await asyncio.sleep(0.01)
    finally:
        closed.set()


@pytest.mark.parametrize("spec_version", ["2.3", "2.4"])
async def test_a_gateway_that_accepts_nothing_is_cut_off(
    spec_version: str, caplog: pytest.LogCaptureFixture
) -> None:
    closed = asyncio.Event()
    response = FeedResponse(_lines(closed), stall=0.2, min_rate=1e12)
    call = FeedCall(response, "", accepts=1, spec_version=spec_version)
    with caplog.at_level(logging.WARNING, logger="lychgate.authz.internal"):
        await asyncio.wait_for(call.run(), PATIENCE)  # returns: the response gave up
    assert call.lines() == [b"x\n"]
    assert not call.ended  # never told the body ended: uvicorn closes the connection
    assert closed.is_set()  # the lines, and the snapshots they hold, are released
    (said,) = [r.getMessage() for r in caplog.records if CUT in r.getMessage()]
    assert "accepted nothing for 0.2 s; closing its connection" in said


async def test_a_gateway_that_reads_slowly_is_not_cut_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Each send takes 0.05 s, well under the 0.25 s allowed, and ten of them twice as long.
    closed = asyncio.Event()
    call = FeedCall(FeedResponse(_lines(closed), stall=0.25, min_rate=1e12), "", delay=0.05)
    with caplog.at_level(logging.WARNING, logger="lychgate.authz.internal"):
        async with calling(call):
            await eventually(lambda: call.sends >= 10)
    assert not [r for r in caplog.records if CUT in r.getMessage()]
    # Lines of 40 kB, each taking 0.2 s to send, four times the 0.05 s allowed for no data:
    # not cut either, since at 100 kB/s they take 0.4 s more (the bytes in flight count).
    closed = asyncio.Event()
    big = FeedResponse(_lines(closed, size=40_000), stall=0.05, min_rate=100_000)
    call = FeedCall(big, "", delay=0.2)
    with caplog.at_level(logging.WARNING, logger="lychgate.authz.internal"):
        async with calling(call):
            await eventually(lambda: call.sends >= 3)
    assert not [r for r in caplog.records if CUT in r.getMessage()]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP listener on 127.0.0.1 with a small send buffer (its connections inherit it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    with sock:
        yield sock


@pytest.mark.loopback
async def test_over_uvicorn_a_gateway_that_reads_nothing_is_disconnected(
    ctx: AuthzContext,
    authz: FastAPI,
    listener: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(internal, "SEND_STALL", 0.3)
    user = make_user()
    await ctx.store.users.add(user)
    pub: SnapshotPublisher = authz.state.publisher
    config = uvicorn.Config(authz, lifespan="off", log_config=None, access_log=False)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    loop = asyncio.get_running_loop()
    gateway = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    gateway.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    gateway.setblocking(False)
    try:
        await eventually(lambda: server.started)
        await loop.sock_connect(gateway, listener.getsockname())
        secret = ctx.secrets.internal_token.reveal()
        head = f"GET {FEED_PATH} HTTP/1.1\r\nhost: authz\r\nauthorization: Bearer {secret}\r\n"
        await loop.sock_sendall(gateway, head.encode() + b"\r\n")
        # The gateway reads nothing, and each change is a full snapshot (it asked for no
        # updates): the buffers fill, a send blocks, and authz gives up on it.
        with caplog.at_level(logging.WARNING, logger="lychgate.authz.internal"):
            async with asyncio.timeout(PATIENCE):
                n = 0
                while not any(CUT in r.getMessage() for r in caplog.records):
                    n += 1
                    await ctx.store.users.update(user.id, name=f"User {n}")
                    await pub.refresh()
                    await asyncio.sleep(0.005)
        # It reads again: what was written, then the end of the connection.
        received = bytearray()
        async with asyncio.timeout(PATIENCE):
            while chunk := await loop.sock_recv(gateway, 65536):
                received += chunk
        assert received.startswith(b"HTTP/1.1 200 ")
        assert b'"type":"snapshot"' in received
    finally:
        gateway.close()
        server.should_exit = True
        await asyncio.wait_for(serving, PATIENCE)
