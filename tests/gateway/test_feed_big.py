"""Large feed lines: the line limit, reading them in linear time and memory, and the collector.

A full snapshot takes about 105 bytes a user: at 135,000 users it passed the 16 MiB the
gateway read, and every gateway dropped each snapshot and, once stale, refused every request.
The limit is now 256 MiB (:data:`~lychgate.gateway.feed_json.MAX_LINE_BYTES`), and the tests
lower it through ``max_line_bytes`` rather than send that much. The loop also stalled, up to
160 ms, when a full snapshot landed: the cyclic collector's full passes, which the many
objects of a snapshot set off (``collector.FULL_COLLECTION_AFTER`` says how that changed).
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
import ssl
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import CoroutineType
from typing import Any

import pytest
import uvloop

from gateway.fake_authz import FakeAuthz
from gateway.feed_harness import WORLD, Running, serial_of, version
from gateway.waiting import PATIENCE, eventually
from gateway.world import USERS, handler_for
from lychgate.config import load_settings
from lychgate.gateway import runner
from lychgate.gateway.collector import FULL_COLLECTION_AFTER
from lychgate.gateway.feed import FeedClient, FeedError, split_lines
from lychgate.gateway.feed_json import MAX_LINE_BYTES
from lychgate.gateway.feed_wire import parse_line, snapshot_line
from lychgate.gateway.http.limits import Limits
from lychgate.gateway.plan import GatewayPlan
from lychgate.gateway.runner import run_gateway
from lychgate.gateway.snapshot import ConfigSnapshot, SnapshotHolder, UserProfile
from lychgate.gateway.types import Forward
from lychgate.ids import UserId
from lychgate.secret import Secret

MiB = 1024 * 1024


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _padded(snapshot: ConfigSnapshot, length: int) -> bytes:
    """``snapshot``'s feed line, padded with JSON whitespace to ``length`` bytes before its
    ``\\n``."""
    line = snapshot_line(snapshot)[:-1]
    assert len(line) <= length
    return line + b" " * (length - len(line)) + b"\n"


def test_the_limit_covers_large_deployments() -> None:
    # 135,000 users (with 5,000 apps and 58,000 sessions to end) made a 16 MiB line.
    assert MAX_LINE_BYTES // MiB == 256  # ten times what broke, and more


# -- split_lines ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 7, 100, 4096])
async def test_a_line_at_the_limit_passes_and_one_byte_more_does_not(size: int) -> None:
    limit = 1000
    at = b"a" * limit
    lines = [line async for line in split_lines(_pieces(at + b"\n" + b"b\n", size), limit=limit)]
    assert lines == [at, b"b"]
    with pytest.raises(FeedError, match=r"a line passed 1,001 bytes, over .* limit of 1,000 "):
        async for _ in split_lines(_pieces(at + b"a\n", size), limit=limit):
            pass


async def test_a_line_over_the_limit_is_refused_before_its_end_comes() -> None:
    # A runaway line without end: refused at the limit, never buffered whole.
    async def endless() -> AsyncIterator[bytes]:
        yield b"ok\n"
        while True:
            yield b"x" * 300

    lines: list[bytes] = []

    async def read() -> None:
        async for line in split_lines(endless(), limit=1000):
            lines.append(line)

    with pytest.raises(FeedError) as refused:
        await read()
    assert lines == [b"ok"]
    assert "a line passed 1,200 bytes" in str(refused.value)
    assert "runaway in authz's log" in str(refused.value)  # what to do


async def test_a_line_in_many_small_chunks_is_split_in_linear_time() -> None:
    # 32 MiB in 256-byte chunks: looking for the end in all of the line so far at each chunk,
    # as before, took 40 s (10 for 16 MiB, a quarter of it); each chunk once, 0.1 s.
    line = bytes(range(256)).replace(b"\n", b" ") * (32 * MiB // 256)
    async with asyncio.timeout(PATIENCE):
        lines = [got async for got in split_lines(_pieces(line + b"\nend\n", 256))]
    assert lines == [line, b"end"]


async def test_a_big_line_costs_at_most_twice_its_size_while_split() -> None:
    # Its pieces, and then the line they make (the pieces are let go before it is handed
    # on); a buffer copied once more to bytes, as before, made three times.
    line = b"x" * (16 * MiB)
    sent = line + b"\n"
    tracemalloc.start()
    try:
        got = [piece async for piece in split_lines(_pieces(sent, 64 * 1024))]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got == [line]
    assert peak < 2.2 * len(line), peak / len(line)


# -- over loopback --------------------------------------------------------------------------


@pytest.mark.loopback
async def test_a_line_just_under_the_limit_applies_and_one_just_over_drops_the_connection(
    feed_authz: tuple[FakeAuthz, str], caplog: pytest.LogCaptureFixture
) -> None:
    server, base = feed_authz
    limit = 256 * 1024
    holder = SnapshotHolder()
    client = FeedClient(base, Secret(server.secret), holder, initial_backoff=0.02)
    client.max_line_bytes = limit
    async with Running(client):
        await eventually(lambda: serial_of(holder) == 1)
        server.push(_padded(version(2), limit))
        await eventually(lambda: serial_of(holder) == 2)
        server.greeting = [snapshot_line(version(4))]
        server.push(_padded(version(3), limit + 1))
        await eventually(lambda: serial_of(holder) == 4)  # reconnected: the greeting
        assert server.feed_requests == 2
    said = [r.getMessage() for r in caplog.records if "a line passed" in r.getMessage()]
    assert len(said) == 1  # once for the attempt
    assert re.search(rf"config feed from {re.escape(base)}: a line passed [\d,]+ bytes", said[0])
    assert f"over this gateway's limit of {limit:,} (MAX_LINE_BYTES)" in said[0]


def _big_line(serial: int, megabytes: int) -> tuple[bytes, int]:
    """A full snapshot line of at least ``megabytes`` MB (users and sessions to end), and how
    many users it lists."""
    doc = json.loads(snapshot_line(WORLD.changed(serial=serial)))
    users: dict[str, object] = {}
    sessions: list[str] = []
    count = megabytes * 7000  # about 147 bytes each
    for n in range(count):
        users[f"usr_{n:08d}"] = {
            "name": f"User Number {n}",
            "email": f"user.number.{n}@example.com",
            "groups": ["staff", f"team-{n % 50}"],
        }
        sessions.append(f"ses_{n:012d}abcdefghijklmnop")
    doc["snapshot"]["users"] = users
    doc["snapshot"]["revoked_sessions"] = sorted(sessions)
    line = json.dumps(doc, separators=(",", ":")).encode() + b"\n"
    assert len(line) > megabytes * 1_000_000
    return line, count


@pytest.mark.slow
@pytest.mark.loopback
async def test_a_20_mb_snapshot_applies(feed_authz: tuple[FakeAuthz, str]) -> None:
    server, base = feed_authz
    line, users = await asyncio.to_thread(_big_line, 2, 20)
    assert len(line) > 16 * MiB  # the limit before
    holder = SnapshotHolder()
    async with Running(FeedClient(base, Secret(server.secret), holder)):
        await eventually(lambda: serial_of(holder) == 1)
        server.push(line)
        await eventually(lambda: serial_of(holder) == 2, timeout=60)
    assert holder.current is not None
    assert len(holder.current.users) == users
    assert len(holder.current.revoked_sessions) == users
    assert server.feed_requests == 1  # on the same connection


# -- the cyclic collector -------------------------------------------------------------------


def _users(count: int) -> dict[UserId, UserProfile]:
    return {
        UserId(f"usr_{n:08d}"): UserProfile(f"User {n}", f"u{n}@example.com", ("staff",))
        for n in range(count)
    } | dict(USERS)


@pytest.fixture
def automatic_collection_off() -> Iterator[None]:
    """The cyclic collector runs only when called: whatever it would have freed stays."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _alive(kind: type) -> int:
    return sum(1 for o in gc.get_objects() if type(o) is kind)


def test_replaced_snapshots_are_freed_without_the_cyclic_collector(
    automatic_collection_off: None,
) -> None:
    # Full collections are rare now (collector.FULL_COLLECTION_AFTER): a snapshot, or what the
    # handler derives from it, that only they could free would pile up, 50 MiB each at
    # 100,000 users. Reference counting must free them the moment they are replaced.
    lines = [snapshot_line(WORLD.changed(serial=n, users=_users(500)))[:-1] for n in (1, 2)]
    handler, holder = handler_for(WORLD)
    before = _alive(ConfigSnapshot), _alive(UserProfile)
    for n in range(50):
        read = parse_line(lines[n % 2])
        assert isinstance(read, ConfigSnapshot)
        holder.replace(read)
        # An admitted request: the handler follows the snapshot (its memo, its verifier,
        # its assertion signer).
        decision = handler(WORLD.head("/x", cookies=[WORLD.token()]))
        assert isinstance(decision, Forward)
    del read
    # The current one, held by the holder and the handler, and nothing else (WORLD's own
    # was there before).
    assert _alive(ConfigSnapshot) == before[0] + 1
    # Their users, and one profile the assertion cache keeps in a key (user-1's, as some
    # earlier snapshot had it: the cache is bounded, and drops it on its own).
    assert _alive(UserProfile) - before[1] <= 500 + len(USERS) + 1
    assert gc.collect() == 0  # and no garbage for the collector either


def test_reading_full_snapshots_needs_many_before_a_full_collection() -> None:
    # Collections of the middle generation that reading one full snapshot of 10,000 users
    # sets off (about 7). A full collection came after 10 of them; it comes after
    # FULL_COLLECTION_AFTER now, so once in more than ten such snapshots, not every other.
    line = snapshot_line(WORLD.changed(serial=2, users=_users(10_000)))[:-1]
    middle: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 1:
            middle.append(1)

    gc.callbacks.append(count)
    try:
        for _ in range(3):
            assert isinstance(parse_line(line), ConfigSnapshot)
    finally:
        gc.callbacks.remove(count)
    per_snapshot = len(middle) / 3
    assert per_snapshot * 10 < FULL_COLLECTION_AFTER, per_snapshot


def test_the_gateway_sets_the_full_collection_threshold(
    tmp_path: Path, system_ssl: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # run_gateway sets it before it forks (the workers inherit it), after freezing what it
    # prepared; the loop itself is not run here.
    settings = load_settings(tmp_path, {}, authz_listen=f"unix:{tmp_path / 'authz.sock'}")
    plan = GatewayPlan(
        settings=settings,
        internal_token=Secret("s"),
        host="127.0.0.1",
        port=0,
        limits=Limits(),
        tls=None,
        renew_tls=None,
        upstream_ssl=system_ssl,
        metrics=None,
        redirect=None,
    )
    ran: list[str] = []

    def run(main: CoroutineType[Any, Any, None]) -> None:
        ran.append(main.cr_code.co_qualname)
        main.close()

    monkeypatch.setattr(runner, "check_listeners", lambda plan, workers: None)
    monkeypatch.setattr(runner, "raise_open_file_limit", lambda: None)
    monkeypatch.setattr(gc, "freeze", lambda: None)  # not this test process's heap
    monkeypatch.setattr(uvloop, "run", run)
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        assert run_gateway(plan, workers=1) == 0
        assert gc.get_threshold() == (700, 10, FULL_COLLECTION_AFTER)
    finally:
        gc.set_threshold(*saved)
    assert ran == ["run_gateway.<locals>.single"]
