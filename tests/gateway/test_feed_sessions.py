"""Sessions updates: a revocation travels as the revoked set alone, not as every user again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.fake_authz import FakeAuthz
from gateway.feed_harness import (
    WORLD,
    eventually,
    following,
    kinds,
    push_and_apply,
    serial_of,
    version,
)
from gateway.world import NOW, World
from lychgate.errors import ConfigError
from lychgate.gateway.feed_wire import (
    SessionsUpdate,
    asked_updates,
    feed_lines,
    parse_line,
    sessions_line,
    snapshot_line,
    users_line,
)
from lychgate.gateway.snapshot import ConfigSnapshot, UserProfile
from lychgate.ids import SessionId, UserId

# -- what differs only in sessions -------------------------------------------------------------


def test_only_serial_time_and_sessions_may_differ() -> None:
    base = WORLD.snapshot
    revoked = frozenset({SessionId("s-1")})
    later = base.with_sessions(serial=9, issued_at=NOW, revoked_sessions=revoked)
    assert base.differs_only_in_sessions(later)
    assert later.revoked_sessions == revoked
    assert (later.users, later.apps) == (base.users, base.apps)
    renamed = {**base.users, UserId("user-1"): UserProfile("Ann B", "ann@example.com")}
    others: dict[str, Any] = {
        "users": renamed,
        "apps": base.apps[:1],
        "setup_done": False,
        "issuer": "https://other.example",
        "keyring": World().snapshot.keyring,
        "assertion_key": World().snapshot.assertion_key,
    }
    for name, value in others.items():
        assert not base.differs_only_in_sessions(WORLD.changed(**{name: value})), name


# -- the wire -----------------------------------------------------------------------------------


def test_sessions_line_round_trips() -> None:
    line = sessions_line(3, version(4, "b", "a"))
    assert line.count(b"\n") == 1
    parsed = parse_line(line.rstrip(b"\n"))
    assert isinstance(parsed, SessionsUpdate)
    both = frozenset({SessionId("a"), SessionId("b")})
    assert (parsed.after, parsed.serial, parsed.revoked_sessions) == (3, 4, both)
    applied = parsed.apply(version(3))
    assert (applied.serial, applied.revoked_sessions) == (4, both)


@pytest.mark.parametrize(
    "line",
    [
        b'{"type":"sessions","after":1,"serial":2,"issued_at":0}',
        b'{"type":"sessions","after":-1,"serial":2,"issued_at":0,"revoked_sessions":[]}',
        b'{"type":"sessions","after":1,"serial":2,"issued_at":0,"revoked_sessions":[1]}',
        b'{"type":"sessions","after":1,"serial":2,"issued_at":1e300,"revoked_sessions":[]}',
        b'{"type":"sessions","after":1,"serial":2,"issued_at":0,"revoked_sessions":[],"x":1}',
    ],
    ids=["no sessions", "negative after", "not text", "absurd time", "unknown member"],
)
def test_bad_sessions_lines_are_refused(line: bytes) -> None:
    with pytest.raises(ConfigError):
        parse_line(line)


async def test_feed_lines_sends_sessions_updates_between_full_snapshots() -> None:
    fewer_apps = WORLD.snapshot.apps[:1]  # an app change needs a full snapshot

    async def source() -> AsyncIterator[ConfigSnapshot]:
        yield version(1)
        await asyncio.sleep(0.01)
        yield version(2, "s-gone")  # a revocation
        await asyncio.sleep(0.01)
        yield WORLD.changed(
            serial=3, revoked_sessions=frozenset({SessionId("s-gone")}), apps=fewer_apps
        )
        await asyncio.sleep(0.01)
        yield WORLD.changed(serial=4, revoked_sessions=frozenset(), apps=fewer_apps)  # it left

    lines = [line async for line in feed_lines(source(), heartbeat_interval=5)]
    assert kinds(lines) == ["snapshot", "sessions", "snapshot", "sessions"]
    second = parse_line(lines[1].rstrip(b"\n"))
    assert isinstance(second, SessionsUpdate)
    assert (second.after, second.serial) == (1, 2)
    fourth = parse_line(lines[3].rstrip(b"\n"))
    assert isinstance(fourth, SessionsUpdate)
    assert (fourth.after, fourth.revoked_sessions) == (3, frozenset())


async def test_a_client_that_did_not_ask_gets_full_snapshots_only() -> None:
    # A gateway older than sessions updates, during a rolling upgrade of authz.
    async def source() -> AsyncIterator[ConfigSnapshot]:
        yield version(1)
        await asyncio.sleep(0.01)
        yield version(2, "s-gone")

    stream = feed_lines(source(), heartbeat_interval=5, updates=frozenset())
    assert kinds([line async for line in stream]) == ["snapshot", "snapshot"]


@pytest.mark.parametrize(
    ("header", "asked"),
    [
        (None, set()),
        ("", set()),
        ("sessions", {"sessions"}),
        ("users, sessions", {"users", "sessions"}),
        ("session,users,apps", {"users"}),  # unknown kinds are ignored
    ],
)
def test_asking_for_updates(header: str | None, asked: set[str]) -> None:
    assert asked_updates(header) == asked


def test_a_sessions_update_is_a_fraction_of_a_snapshot_with_many_users() -> None:
    many = {
        UserId(f"u_{i:06d}"): UserProfile(f"User {i}", f"u{i}@example.test") for i in range(2000)
    }
    big = WORLD.changed(users=many)
    update = big.with_sessions(
        serial=big.serial + 1, issued_at=NOW, revoked_sessions=frozenset({SessionId("s")})
    )
    assert len(sessions_line(big.serial, update)) * 100 < len(snapshot_line(update))


# -- the client --------------------------------------------------------------------------------


@pytest.mark.loopback
async def test_a_sessions_update_is_applied_within_a_second(
    feed_authz: tuple[FakeAuthz, str],
) -> None:
    async with following(feed_authz) as (server, holder, _):
        before = holder.current
        line = sessions_line(1, version(2, "s-logged-out"))
        after = await push_and_apply(server, holder, line, 2)
        assert after.revoked_sessions == {"s-logged-out"}
        assert before is not None
        assert before.differs_only_in_sessions(after)
    assert feed_authz[0].feed_updates == ["app-limits, sessions, users"]  # it reads them all


@pytest.mark.loopback
@pytest.mark.parametrize(
    "line",
    [
        sessions_line(7, version(8, "s-x")),
        users_line(version(7), WORLD.changed(serial=8, users={}, revoked_sessions={"s-x"})),
    ],
    ids=["sessions", "users"],
)
async def test_an_update_out_of_step_reconnects_for_a_full_snapshot(
    feed_authz: tuple[FakeAuthz, str], line: bytes
) -> None:
    async with following(feed_authz) as (server, holder, client):
        server.push(line)  # builds on a snapshot we never had
        # Reconnected, in full: the second request reaches the server a moment before the
        # client has applied the snapshot it answers with, so wait for both.
        await eventually(
            lambda: server.feed_requests >= 2 and client.snapshots_applied >= 2, timeout=5
        )
        assert client.snapshots_applied == 2
        assert serial_of(holder) == 1  # never applied to the wrong base
        assert holder.current is not None
        assert holder.current.revoked_sessions == frozenset()
        assert holder.current.users == WORLD.snapshot.users
