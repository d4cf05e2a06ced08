"""The config feed: wire format, the server-side generator, and the client over loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.fake_authz import FakeAuthz
from gateway.feed_harness import (
    WORLD,
    Running,
    client_for,
    push_and_apply,
    serial_of,
    version,
)
from gateway.waiting import PATIENCE, eventually
from lychgate.errors import ConfigError
from lychgate.gateway import feed as feed_module
from lychgate.gateway.feed import (
    PARSE_IN_THREAD,
    FeedClient,
    FeedError,
    backoff_delay,
    feed_lines,
    split_lines,
)
from lychgate.gateway.feed_serve import _change_line
from lychgate.gateway.feed_wire import (
    KEEPALIVE,
    UPDATES,
    FeedMessage,
    Heartbeat,
    heartbeat_line,
    parse_line,
    snapshot_line,
)
from lychgate.gateway.snapshot import ConfigSnapshot, SnapshotHolder, UserProfile
from lychgate.ids import SessionId, UserId
from lychgate.secret import Secret

# -- wire format --------------------------------------------------------------------------------


def test_snapshot_line_round_trips() -> None:
    line = snapshot_line(version(3, "a"))
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    parsed = parse_line(line[:-1])
    assert isinstance(parsed, ConfigSnapshot)
    assert parsed.serial == 3
    assert parsed.revoked_sessions == {"a"}


def test_heartbeat_line() -> None:
    assert parse_line(heartbeat_line(9).rstrip(b"\n")) == Heartbeat(9)


@pytest.mark.parametrize(
    "line",
    [
        b"garbage",
        b"[]",
        b'{"type":"snapshot"}',
        b'{"type":"snapshot","snapshot":{}}',
        b'{"type":"heartbeat"}',
        b'{"type":"heartbeat","serial":-1}',
        b'{"type":"heartbeat","serial":1,"extra":true}',
        b'{"type":"reboot"}',
        b'{"type":"heartbeat","serial":1,"type":"heartbeat"}',
        b"\xff\xfe",
    ],
)
def test_bad_lines_are_refused(line: bytes) -> None:
    with pytest.raises(ConfigError):
        parse_line(line)


def test_a_snapshot_with_an_unknown_member_is_refused() -> None:
    doc = json.loads(snapshot_line(version(1)))
    doc["snapshot"]["future_feature"] = True
    with pytest.raises(ConfigError):
        parse_line(json.dumps(doc).encode())


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_split_lines_across_chunks() -> None:
    lines = [line async for line in split_lines(_chunks(b"ab", b"c\nd", b"\n\nef\n", b"tail"))]
    assert lines == [b"abc", b"d", b"", b"ef"]


async def test_split_lines_refuses_a_line_that_is_too_long() -> None:
    with pytest.raises(FeedError):
        async for _ in split_lines(_chunks(b"x" * 10, b"x" * 10), limit=15):
            pass
    with pytest.raises(FeedError):
        async for _ in split_lines(_chunks(b"x" * 20 + b"\n"), limit=15):
            pass


def test_backoff_has_jitter_within_bounds() -> None:
    delays = {backoff_delay(2.0) for _ in range(200)}
    assert all(1.0 <= d <= 2.0 for d in delays)
    assert len(delays) > 1
    assert 0 < backoff_delay(0.0) <= 0.002


# -- the server-side generator ------------------------------------------------------------------


async def test_feed_lines_sends_each_snapshot_and_ends_with_the_source() -> None:
    async def source() -> AsyncIterator[ConfigSnapshot]:
        yield version(1)
        await asyncio.sleep(0.01)
        yield version(2)

    lines = [line async for line in feed_lines(source(), heartbeat_interval=5)]
    assert [parse_line(line.rstrip(b"\n")).serial for line in lines] == [1, 2]


async def test_feed_lines_sends_heartbeats_when_idle() -> None:
    release = asyncio.Event()

    async def source() -> AsyncIterator[ConfigSnapshot]:
        await asyncio.sleep(0.05)
        yield version(4)
        await release.wait()

    stream = feed_lines(source(), heartbeat_interval=0.02)
    first = await anext(stream)
    assert first == KEEPALIVE  # nothing to vouch for yet
    while (line := await anext(stream)) == KEEPALIVE:
        pass
    assert parse_line(line.rstrip(b"\n")).serial == 4
    assert await anext(stream) == heartbeat_line(4)
    await stream.aclose()  # the client went away: the pump stops


async def test_feed_lines_coalesces_to_the_newest() -> None:
    async def source() -> AsyncIterator[ConfigSnapshot]:
        for serial in range(1, 6):
            yield version(serial)

    stream = feed_lines(source(), heartbeat_interval=5)
    await asyncio.sleep(0.01)  # let the pump queue everything before we read
    serials = [parse_line(line.rstrip(b"\n")).serial async for line in stream]
    assert serials == [5]


async def test_feed_lines_re_raises_a_failing_source() -> None:
    async def source() -> AsyncIterator[ConfigSnapshot]:
        yield version(1)
        raise RuntimeError("event bus lost")

    stream = feed_lines(source(), heartbeat_interval=5)
    with pytest.raises(RuntimeError, match="event bus lost"):
        async for _ in stream:
            pass


async def test_closing_feed_lines_stops_reading_the_source() -> None:
    closed = asyncio.Event()

    async def source() -> AsyncIterator[ConfigSnapshot]:
        try:
            yield version(1)
            await asyncio.Event().wait()
            yield version(2)  # pragma: no cover - never reached
        finally:
            closed.set()

    stream = feed_lines(source(), heartbeat_interval=5)
    await anext(stream)
    await stream.aclose()
    await asyncio.wait_for(closed.wait(), PATIENCE)


# -- the client over loopback -------------------------------------------------------------------


@pytest.mark.loopback
async def test_a_change_pushed_is_applied_while_connected(
    feed_authz: tuple[FakeAuthz, str],
) -> None:
    # How fast (the second) is the feed benchmark's to measure: here, that a pushed
    # change reaches the holder and its listeners on the open connection, not by reconnecting.
    server, base = feed_authz
    holder = SnapshotHolder()
    revoked: list[frozenset[SessionId]] = []
    holder.add_listener(lambda old, new: revoked.append(new.revoked_sessions))
    async with Running(client_for(server, base, holder)) as client:
        await eventually(lambda: serial_of(holder) == 1)
        assert revoked == [frozenset()]
        server.push(snapshot_line(version(2, "s-logged-out")))
        await eventually(lambda: serial_of(holder) == 2)
        assert revoked[-1] == {"s-logged-out"}
        assert client.snapshots_applied == 2
        assert server.feed_requests == 1  # on the connection open, not a new one


@pytest.mark.loopback
async def test_heartbeats_keep_the_snapshot_fresh(feed_authz: tuple[FakeAuthz, str]) -> None:
    server, base = feed_authz
    holder = SnapshotHolder()
    async with Running(client_for(server, base, holder)):
        await eventually(lambda: serial_of(holder) == 1)
        first = holder.last_updated
        await asyncio.sleep(0.01)
        server.push(heartbeat_line(1))
        await eventually(lambda: holder.last_updated != first)
        stamp = holder.last_updated
        server.push(heartbeat_line(99))  # not our serial: does not vouch for ours
        server.push(heartbeat_line(1))
        await eventually(lambda: holder.last_updated != stamp)
        assert serial_of(holder) == 1


@pytest.mark.loopback
async def test_authz_going_away_keeps_the_last_snapshot_and_reconnects(
    feed_authz: tuple[FakeAuthz, str],
) -> None:
    server, base = feed_authz
    holder = SnapshotHolder()
    async with Running(client_for(server, base, holder)):
        await eventually(lambda: serial_of(holder) == 1)
        server.greeting = [snapshot_line(version(2))]
        server.drop_feeds()
        assert serial_of(holder) == 1  # kept while disconnected
        await eventually(lambda: serial_of(holder) == 2)
        assert server.feed_requests >= 2


@pytest.mark.loopback
async def test_a_dead_server_then_a_new_one(tmp_path: Path) -> None:
    path = tmp_path / "authz.sock"
    first = FakeAuthz(greeting=[snapshot_line(version(1))])
    base = await first.start_unix(path)
    holder = SnapshotHolder()
    async with Running(client_for(first, base, holder)) as client:
        await eventually(lambda: serial_of(holder) == 1)
        await first.stop()
        path.unlink(missing_ok=True)
        await eventually(lambda: client.failures >= 2)  # refused connections, backing off
        assert serial_of(holder) == 1
        second = FakeAuthz(greeting=[snapshot_line(version(7))])
        await second.start_unix(path)
        try:
            await eventually(lambda: serial_of(holder) == 7)
        finally:
            await second.stop()


@pytest.mark.loopback
async def test_garbage_never_replaces_the_good_snapshot(
    feed_authz: tuple[FakeAuthz, str], caplog: pytest.LogCaptureFixture
) -> None:
    server, base = feed_authz
    holder = SnapshotHolder()
    async with Running(client_for(server, base, holder)):
        await eventually(lambda: serial_of(holder) == 1)
        good = holder.current
        bad = json.loads(snapshot_line(version(2)))
        bad["snapshot"]["routing"] = "everything"
        for line in (b"not json\n", b'{"type":"x"}\n', json.dumps(bad).encode() + b"\n", b"\n"):
            server.push(line)
        server.push(snapshot_line(version(3)))
        await eventually(lambda: serial_of(holder) == 3)
        assert good is not None
    assert "refused a message" in caplog.text
    assert caplog.text.count("refused a message") == 3


@pytest.mark.loopback
async def test_a_line_too_long_drops_the_connection_not_the_snapshot(
    feed_authz: tuple[FakeAuthz, str],
) -> None:
    # The limit lowered: the gateway's is 256 MiB (test_feed_big has lines at and over it).
    server, base = feed_authz
    holder = SnapshotHolder()
    client = FeedClient(base, Secret(server.secret), holder, initial_backoff=0.02)
    client.max_line_bytes = 64 * 1024
    async with Running(client):
        await eventually(lambda: serial_of(holder) == 1)
        server.greeting = [snapshot_line(version(2))]
        server.push(b"x" * (65 * 1024))
        await eventually(lambda: serial_of(holder) == 2)
        assert server.feed_requests >= 2


@pytest.mark.loopback
async def test_wrong_secret_is_retried_with_backoff(
    feed_authz: tuple[FakeAuthz, str], caplog: pytest.LogCaptureFixture
) -> None:
    server, base = feed_authz
    holder = SnapshotHolder()
    client = FeedClient(base, Secret("wrong"), holder, initial_backoff=0.02, max_backoff=0.08)
    async with Running(client):
        await eventually(lambda: client.failures >= 3)
        assert server.refused >= 3
        assert holder.current is None
        server.secret = "wrong"  # the operator fixes the secret on the authz side
        await eventually(lambda: serial_of(holder) == 1)
        assert client.failures == 0
    assert "refused the feed with 401" in caplog.text
    assert "same secrets.json" in caplog.text  # the operator is told what to fix


@pytest.mark.loopback
async def test_backoff_grows_until_its_ceiling(feed_authz: tuple[FakeAuthz, str]) -> None:
    server, base = feed_authz
    server.feed_status = 503
    holder = SnapshotHolder()
    client = FeedClient(base, Secret(server.secret), holder, initial_backoff=0.02, max_backoff=0.08)
    async with Running(client):
        await eventually(lambda: len(client.backoffs) >= 6)
    # Each delay doubles up to the ceiling, with "equal jitter": within [d/2, d] (to the ms).
    chosen = list(client.backoffs)[:6]
    for wait, ceiling in zip(chosen, [0.02, 0.04, 0.08, 0.08, 0.08, 0.08], strict=True):
        assert ceiling / 2 - 0.001 <= wait <= ceiling + 0.001, chosen
    assert server.feed_requests >= 6


@pytest.mark.loopback
async def test_a_gateway_that_refuses_for_want_of_the_feed_retries_it_often(
    feed_authz: tuple[FakeAuthz, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # With no snapshot, or a stale one, every request is (soon) refused: a 30 s backoff kept
    # one worker refusing for 26 s after authz was back, while the other served.
    monkeypatch.setattr(feed_module, "HURRIED_BACKOFF", 0.04)
    server, base = feed_authz
    server.feed_status = 503
    hurry = [True]
    client = FeedClient(
        base,
        Secret(server.secret),
        SnapshotHolder(),
        initial_backoff=0.02,
        max_backoff=10.0,
        hurry=lambda: hurry[0],
    )
    async with Running(client):
        await eventually(lambda: len(client.backoffs) >= 5)
        assert max(list(client.backoffs)[:5]) <= 0.041, client.backoffs
        hurry[0] = False  # a snapshot again: the backoff goes on growing from where it was
        seen = len(client.backoffs)
        await eventually(lambda: len(client.backoffs) > seen)
    assert list(client.backoffs)[seen] >= 0.32


@pytest.mark.loopback
async def test_a_silent_feed_is_treated_as_dead(
    feed_authz: tuple[FakeAuthz, str], caplog: pytest.LogCaptureFixture
) -> None:
    server, base = feed_authz
    holder = SnapshotHolder()
    async with Running(client_for(server, base, holder, read_timeout=0.1)):
        await eventually(lambda: serial_of(holder) == 1)
        await eventually(lambda: server.feed_requests >= 2)  # no heartbeat: reconnected
    assert (
        f"config feed from {base}: connection failed: nothing received for 0.1 s (ReadTimeout)"
        in caplog.text
    )


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port bound but not listening: connecting to it is refused."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield bound.getsockname()[1]


@pytest.mark.loopback
async def test_a_failed_connection_names_authz_and_the_cause(
    tmp_path: Path, refusing_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    # The operator reads where the gateway looked for authz and what the system said, never
    # the internal token the request carries.
    caplog.set_level(logging.INFO, logger="lychgate.gateway.feed")  # INFO in the first seconds
    secret = "the-internal-token"
    missing = f"unix:{tmp_path / 'authz.sock'}"
    refused = f"http://127.0.0.1:{refusing_port}"
    for base in (missing, refused):
        client = FeedClient(base, Secret(secret), SnapshotHolder(), initial_backoff=0.01)
        async with Running(client):
            await eventually(lambda: client.failures >= 1)  # noqa: B023 (awaited at once)
    said = [r.getMessage() for r in caplog.records]
    assert f"config feed from {missing}: connection failed: No such file or directory" in said
    assert f"config feed from {refused}: connection failed: Connection refused" in said
    assert secret not in caplog.text


@pytest.mark.loopback
async def test_over_tcp() -> None:
    server = FakeAuthz(greeting=[snapshot_line(version(5))])
    base = await server.start_tcp()
    holder = SnapshotHolder()
    try:
        async with Running(client_for(server, base, holder)):
            await eventually(lambda: serial_of(holder) == 5)
    finally:
        await server.stop()


@pytest.mark.loopback
async def test_stop_while_connected_and_while_backing_off(
    feed_authz: tuple[FakeAuthz, str],
) -> None:
    server, base = feed_authz
    holder = SnapshotHolder()
    client = client_for(server, base, holder)
    task = asyncio.create_task(client.run())
    await eventually(lambda: server.open_feeds == 1)
    client.stop()
    await asyncio.wait_for(task, PATIENCE)
    server.feed_status = 503
    waiting = client_for(server, base, holder, initial_backoff=30.0, max_backoff=30.0)
    task = asyncio.create_task(waiting.run())
    await eventually(lambda: waiting.failures == 1)
    waiting.stop()
    await asyncio.wait_for(task, PATIENCE)


@pytest.mark.loopback
async def test_cancelling_run_is_clean(feed_authz: tuple[FakeAuthz, str]) -> None:
    server, base = feed_authz
    holder = SnapshotHolder()
    task = asyncio.create_task(client_for(server, base, holder).run())
    await eventually(lambda: serial_of(holder) == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


class WhereRead(FeedClient):
    """A FeedClient that notes which thread read each line, and how long the line was."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.reads: list[tuple[int, bool]] = []  # (length, read on the loop's thread)
        self.loop_thread = threading.get_ident()

    def _read(self, line: bytes) -> FeedMessage | None:
        self.reads.append((len(line), threading.get_ident() == self.loop_thread))
        return super()._read(line)


@pytest.mark.loopback
async def test_a_large_snapshot_is_read_off_the_loop(feed_authz: tuple[FakeAuthz, str]) -> None:
    # A full snapshot of 10,000 users took 100 ms and more to read, during which the gateway
    # served nothing (2026-11-30 review). Large lines are read in a worker thread; the small
    # ones (heartbeats, updates of a few sessions) at once, on the loop.
    server, base = feed_authz
    holder = SnapshotHolder()
    users = {
        UserId(f"user-{i}"): UserProfile(f"User {i}", f"u{i}@example.com") for i in range(3000)
    }
    big = snapshot_line(WORLD.changed(serial=2, users=users))
    assert len(big) > PARSE_IN_THREAD
    client = WhereRead(base, Secret(server.secret), holder, initial_backoff=0.02)
    async with Running(client):
        await eventually(lambda: serial_of(holder) == 1)
        await push_and_apply(server, holder, big, 2)
        await push_and_apply(server, holder, snapshot_line(version(3, "s-1")), 3)
    assert holder.current is not None
    assert holder.current.revoked_sessions == {"s-1"}
    on_loop = {length > PARSE_IN_THREAD: loop for length, loop in client.reads}
    assert on_loop == {True: False, False: True}


async def test_a_full_snapshot_is_serialized_once_for_every_gateway() -> None:
    # Each feed connection sends the latest snapshot: at 10,000 users that is 70 ms and 1.3 MB
    # to build, once per gateway before; now once (in a worker thread), and a new snapshot
    # builds a new line. Gateways that ask at the same moment wait for the same line.
    first, second = version(5, "s-1"), version(6, "s-2")
    line, same = await asyncio.gather(
        _change_line(None, first, UPDATES), _change_line(None, first, UPDATES)
    )
    assert same is line
    assert await _change_line(None, first, UPDATES) is line
    read = parse_line(line.rstrip(b"\n"))
    assert isinstance(read, ConfigSnapshot)
    assert (read.serial, read.revoked_sessions) == (5, frozenset({SessionId("s-1")}))
    again = parse_line((await _change_line(None, second, UPDATES)).rstrip(b"\n"))
    assert isinstance(again, ConfigSnapshot)
    assert (again.serial, again.revoked_sessions) == (6, frozenset({SessionId("s-2")}))


def test_a_name_that_does_not_resolve_is_said_so() -> None:
    # The resolver's errors are OSErrors with negative numbers, which os.strerror calls
    # "Unknown error -2".
    client = FeedClient("http://authz.invalid:8081", Secret("s"), SnapshotHolder())
    failure = httpx.ConnectError("[Errno -2] Name or service not known")
    failure.__cause__ = socket.gaierror(-2, "Name or service not known")
    assert client._why(failure) == "Name or service not known"
