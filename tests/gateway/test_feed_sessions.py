"""Sessions updates: a revocation travels as the revoked set alone, not as every user again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.fake_authz import FakeAuthz
from gateway.feed_harness import (
    WORLD,
    following,
    kinds,
    push_and_apply,
    serial_of,
    version,
)
from gateway.waiting import eventually
from gateway.world import NOW, World
from lychgate.errors import ConfigError
from lychgate.gateway.feed_serve import feed_lines
from lychgate.gateway.feed_wire import (
    SessionChanges,
    SessionsUpdate,
    asked_updates,
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
    line = sessions_line(version(3), version(4, "b", "a"))
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


def test_a_sessions_change_round_trips() -> None:
    line = sessions_line(version(3, "a", "b"), version(4, "b", "c"), changes=True)
    raw = json.loads(line)
    assert (raw["ended_sessions"], raw["unlisted_sessions"], raw["listed_sessions"]) == (
        ["c"],
        ["a"],
        2,
    )
    assert "revoked_sessions" not in raw
    parsed = parse_line(line.rstrip(b"\n"))
    assert isinstance(parsed, SessionsUpdate)
    expected = SessionChanges(frozenset({SessionId("c")}), frozenset({SessionId("a")}), 2)
    assert parsed.revoked_sessions == expected
    applied = parsed.apply(version(3, "a", "b"))
    assert (applied.serial, applied.revoked_sessions) == (4, frozenset({"b", "c"}))


@pytest.mark.parametrize(
    ("held", "why"),
    [
        ((), "unlisted_sessions: names a session not listed"),  # "a" was never ours
        (("a", "b", "c"), "ended_sessions: names a session already listed"),
        (("a", "b", "d"), "listed_sessions: does not match the 3 sessions it leaves"),
    ],
    ids=["unlisted unknown", "ended known", "count"],
)
def test_a_sessions_change_that_does_not_fit_ours_is_refused(
    held: tuple[str, ...], why: str
) -> None:
    line = sessions_line(version(3, "a", "b"), version(4, "b", "c"), changes=True)
    parsed = parse_line(line.rstrip(b"\n"))
    assert isinstance(parsed, SessionsUpdate)
    with pytest.raises(ConfigError) as caught:
        parsed.apply(version(3, *held))
    assert str(caught.value) == why


@pytest.mark.parametrize(
    "members",
    [
        b'"ended_sessions":["a"],"unlisted_sessions":["a"],"listed_sessions":1',
        b'"ended_sessions":[],"unlisted_sessions":[],"listed_sessions":-1',
        b'"ended_sessions":[],"unlisted_sessions":[]',
        b'"ended_sessions":[],"listed_sessions":0',
        b'"ended_sessions":[""],"unlisted_sessions":[],"listed_sessions":1',
        b'"revoked_sessions":[],"ended_sessions":[],"unlisted_sessions":[],"listed_sessions":0',
    ],
    ids=["both ways", "negative count", "no count", "no unlisted", "empty id", "both forms"],
)
def test_bad_sessions_changes_are_refused(members: bytes) -> None:
    line = b'{"type":"sessions","after":1,"serial":2,"issued_at":0,' + members + b"}"
    with pytest.raises(ConfigError):
        parse_line(line)


async def test_feed_lines_sends_changes_to_a_client_that_asked() -> None:
    async def source() -> AsyncIterator[ConfigSnapshot]:
        yield version(1, "s-old")
        await asyncio.sleep(0.01)
        yield version(2, "s-new")  # one ended, one left the list
        await asyncio.sleep(0.01)
        yield WORLD.changed(serial=3, users={}, revoked_sessions=frozenset({SessionId("s-new")}))

    asked = asked_updates("sessions, users, session-changes")
    lines = [line async for line in feed_lines(source(), heartbeat_interval=5, updates=asked)]
    assert kinds(lines) == ["snapshot", "sessions", "users"]
    second, third = json.loads(lines[1]), json.loads(lines[2])
    assert (second["ended_sessions"], second["unlisted_sessions"]) == (["s-new"], ["s-old"])
    assert (third["ended_sessions"], third["unlisted_sessions"]) == ([], [])
    assert third["listed_sessions"] == 1


async def test_feed_lines_sends_sessions_updates_between_full_snapshots() -> None:
    # A change of settings (here the issuer) needs a full snapshot.
    moved = {"issuer": "https://elsewhere.example.com"}

    async def source() -> AsyncIterator[ConfigSnapshot]:
        yield version(1)
        await asyncio.sleep(0.01)
        yield version(2, "s-gone")  # a revocation
        await asyncio.sleep(0.01)
        yield WORLD.changed(serial=3, revoked_sessions=frozenset({SessionId("s-gone")}), **moved)
        await asyncio.sleep(0.01)
        yield WORLD.changed(serial=4, revoked_sessions=frozenset(), **moved)  # it left

    lines = [line async for line in feed_lines(source(), heartbeat_interval=5)]
    assert kinds(lines) == ["snapshot", "sessions", "snapshot", "sessions"]
    second = parse_line(lines[1].rstrip(b"\n"))
    assert isinstance(second, SessionsUpdate)
    assert (second.after, second.serial) == (1, 2)
    fourth = parse_line(lines[3].rstrip(b"\n"))
    assert isinstance(fourth, SessionsUpdate)
    gone = SessionChanges(frozenset(), frozenset({SessionId("s-gone")}), 0)
    assert (fourth.after, fourth.revoked_sessions) == (3, gone)


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
        ("session,users,apps,routes", {"users", "apps"}),  # unknown kinds are ignored
    ],
)
def test_asking_for_updates(header: str | None, asked: set[str]) -> None:
    assert asked_updates(header) == asked


def test_a_change_follows_the_sessions_that_changed_not_those_listed() -> None:
    # At 10,000 users some 5,000 sessions are listed, and one or two change at a time.
    listed = [f"s-{i:05d}-{'x' * 32}" for i in range(5000)]
    before = version(1, *listed)
    after = version(2, *listed[1:], "s-new")
    whole = sessions_line(before, after)
    change = sessions_line(before, after, changes=True)
    assert len(whole) > 200_000
    assert len(change) < 300
    parsed = parse_line(change.rstrip(b"\n"))
    assert isinstance(parsed, SessionsUpdate)
    assert parsed.apply(before).revoked_sessions == after.revoked_sessions


def test_a_sessions_update_is_a_fraction_of_a_snapshot_with_many_users() -> None:
    many = {
        UserId(f"u_{i:06d}"): UserProfile(f"User {i}", f"u{i}@example.test") for i in range(2000)
    }
    big = WORLD.changed(users=many)
    update = big.with_sessions(
        serial=big.serial + 1, issued_at=NOW, revoked_sessions=frozenset({SessionId("s")})
    )
    assert len(sessions_line(big, update)) * 100 < len(snapshot_line(update))


# -- the client --------------------------------------------------------------------------------


@pytest.mark.loopback
async def test_a_sessions_update_is_applied_within_a_second(
    feed_authz: tuple[FakeAuthz, str],
) -> None:
    async with following(feed_authz) as (server, holder, _):
        before = holder.current
        line = sessions_line(version(1), version(2, "s-logged-out"), changes=True)
        after = await push_and_apply(server, holder, line, 2)
        assert after.revoked_sessions == {"s-logged-out"}
        assert before is not None
        assert before.differs_only_in_sessions(after)
    # It reads them all.
    assert feed_authz[0].feed_updates == ["app-limits, apps, session-changes, sessions, users"]


@pytest.mark.loopback
@pytest.mark.parametrize(
    "line",
    [
        sessions_line(version(7), version(8, "s-x")),
        users_line(version(7), WORLD.changed(serial=8, users={}, revoked_sessions={"s-x"})),
        # Builds on snapshot 1, which the client holds, but not on its sessions to end
        # (none): one listed as leaving that it never had.
        sessions_line(version(1, "s-other"), version(2, "s-x"), changes=True),
        users_line(
            version(1, "s-other", "s-y"),
            WORLD.changed(serial=2, users={}, revoked_sessions={"s-y"}),
            changes=True,
        ),
    ],
    ids=["sessions", "users", "sessions changes", "users changes"],
)
async def test_an_update_out_of_step_reconnects_for_a_full_snapshot(
    feed_authz: tuple[FakeAuthz, str], line: bytes
) -> None:
    async with following(feed_authz) as (server, holder, client):
        server.push(line)  # builds on a snapshot we never had
        # Reconnected, in full: the second request reaches the server a moment before the
        # client has applied the snapshot it answers with, so wait for both.
        await eventually(lambda: server.feed_requests >= 2 and client.snapshots_applied >= 2)
        assert client.snapshots_applied == 2
        assert serial_of(holder) == 1  # never applied to the wrong base
        assert holder.current is not None
        assert holder.current.revoked_sessions == frozenset()
        assert holder.current.users == WORLD.snapshot.users
