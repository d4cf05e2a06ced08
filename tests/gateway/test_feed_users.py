"""Users updates: a user enrolled, renamed or disabled travels as that user, not as every user."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from gateway.fake_authz import FakeAuthz
from gateway.feed_harness import (
    WORLD,
    following,
    kinds,
    push_and_apply,
)
from gateway.world import NOW, World
from lychgate.errors import ConfigError
from lychgate.gateway.feed_serve import feed_lines
from lychgate.gateway.feed_wire import (
    SESSIONS,
    UsersUpdate,
    parse_line,
    snapshot_line,
    users_line,
)
from lychgate.gateway.snapshot import ConfigSnapshot, UserProfile
from lychgate.ids import SessionId, UserId

ANN, ROOT, NEW = UserId("user-1"), UserId("user-2"), UserId("user-3")


def _with_users(serial: int, users: dict[UserId, UserProfile], *revoked: str) -> ConfigSnapshot:
    return WORLD.changed(
        serial=serial, users=users, revoked_sessions=frozenset(map(SessionId, revoked))
    )


BEFORE = WORLD.changed(serial=1)
# Ann renamed, Root gone (disabled), a new user enrolled, a session ended, setup still done.
AFTER = _with_users(
    2,
    {ANN: UserProfile("Ann B", "ann@example.com", ("staff",)), NEW: UserProfile("Neo", None)},
    "s-1",
)


# -- what may differ --------------------------------------------------------------------------


def test_users_setup_and_sessions_may_differ_and_nothing_else() -> None:
    assert BEFORE.differs_only_in_users(AFTER)
    assert not BEFORE.differs_only_in_sessions(AFTER)
    assert BEFORE.differs_only_in_users(WORLD.changed(serial=5, setup_done=False))
    for name, value in {
        "apps": WORLD.snapshot.apps[:1],
        "issuer": "https://other.example",
        "keyring": World().snapshot.keyring,
        "assertion_key": World().snapshot.assertion_key,
    }.items():
        assert not BEFORE.differs_only_in_users(WORLD.changed(**{name: value})), name


def test_same_content_ignores_only_the_serial_and_time() -> None:
    assert BEFORE.same_content(WORLD.changed(serial=9, issued_at=NOW))
    assert not BEFORE.same_content(AFTER)
    assert not BEFORE.same_content(WORLD.changed(revoked_sessions=frozenset({SessionId("s")})))


# -- the wire -----------------------------------------------------------------------------------


def test_a_users_line_carries_only_what_changed_and_rebuilds_the_snapshot() -> None:
    line = users_line(BEFORE, AFTER)
    assert line.count(b"\n") == 1
    raw = json.loads(line)
    assert sorted(raw["users"]) == [ANN, NEW]  # Root left: listed as removed, not as a user
    assert raw["removed_users"] == [ROOT]
    parsed = parse_line(line.rstrip(b"\n"))
    assert isinstance(parsed, UsersUpdate)
    assert (parsed.after, parsed.serial, parsed.setup_done) == (1, 2, True)
    applied = parsed.apply(BEFORE)
    assert applied.serial == 2
    assert AFTER.same_content(applied)
    assert dict(applied.users) == dict(AFTER.users)
    assert applied.revoked_sessions == {"s-1"}


def test_an_unchanged_profile_is_not_sent_even_as_an_equal_copy() -> None:
    copies = {uid: UserProfile(p.name, p.email, p.groups) for uid, p in BEFORE.users.items()}
    raw = json.loads(users_line(BEFORE, _with_users(2, copies)))
    assert (raw["users"], raw["removed_users"]) == ({}, [])


@pytest.mark.parametrize(
    "line",
    [
        b'{"type":"users","after":1,"serial":2,"issued_at":0,"setup_done":true,'
        b'"users":{"u":{"name":"U","email":null,"groups":[]}},"removed_users":["u"],'
        b'"revoked_sessions":[]}',
        b'{"type":"users","after":1,"serial":2,"issued_at":0,"setup_done":true,'
        b'"users":{},"revoked_sessions":[]}',
        b'{"type":"users","after":1,"serial":2,"issued_at":0,"setup_done":true,'
        b'"users":{"u":{"name":"U","groups":[]}},"removed_users":[],"revoked_sessions":[]}',
        b'{"type":"users","after":1,"serial":2,"issued_at":0,"setup_done":true,'
        b'"users":{"":{"name":"U","email":null,"groups":[]}},"removed_users":[],'
        b'"revoked_sessions":[]}',
        b'{"type":"users","after":1,"serial":2,"issued_at":0,"setup_done":"yes",'
        b'"users":{},"removed_users":[],"revoked_sessions":[]}',
        b'{"type":"users","after":1,"serial":2,"issued_at":0,"setup_done":true,'
        b'"users":{},"removed_users":[7],"revoked_sessions":[]}',
        b'{"type":"users","after":1,"serial":2,"issued_at":0,"setup_done":true,'
        b'"users":{},"removed_users":[],"revoked_sessions":[],"apps":[]}',
    ],
    ids=[
        "changed and removed",
        "no removed_users",
        "profile without email",
        "empty user id",
        "setup_done not a flag",
        "removed not text",
        "unknown member",
    ],
)
def test_bad_users_lines_are_refused(line: bytes) -> None:
    with pytest.raises(ConfigError):
        parse_line(line)


def test_a_users_update_is_a_fraction_of_a_snapshot_with_many_users() -> None:
    many = {
        UserId(f"u_{i:06d}"): UserProfile(f"User {i}", f"u{i}@example.test") for i in range(2000)
    }
    big = _with_users(1, many)
    enrolled = _with_users(2, {**many, NEW: UserProfile("Neo", None)})
    assert len(users_line(big, enrolled)) * 100 < len(snapshot_line(enrolled))


async def test_feed_lines_sends_the_smallest_message_that_says_what_changed() -> None:
    renamed = {**BEFORE.users, ANN: UserProfile("Ann B", None)}

    async def source() -> AsyncIterator[ConfigSnapshot]:
        yield BEFORE
        await asyncio.sleep(0.01)
        yield _with_users(2, renamed)  # a user changed
        await asyncio.sleep(0.01)
        yield _with_users(3, renamed, "s-gone")  # then only a session
        await asyncio.sleep(0.01)
        fewer = WORLD.snapshot.apps[:1]
        yield WORLD.changed(serial=4, users=renamed, apps=fewer)  # an app
        await asyncio.sleep(0.01)
        moved = "https://elsewhere.example.com"
        yield WORLD.changed(serial=5, users=renamed, apps=fewer, issuer=moved)  # a setting

    lines = [line async for line in feed_lines(source(), heartbeat_interval=5)]
    assert kinds(lines) == ["snapshot", "users", "sessions", "apps", "snapshot"]

    async def older() -> AsyncIterator[ConfigSnapshot]:  # a gateway that reads sessions only
        yield BEFORE
        await asyncio.sleep(0.01)
        yield _with_users(2, renamed)

    stream = feed_lines(older(), heartbeat_interval=5, updates=frozenset({SESSIONS}))
    assert kinds([line async for line in stream]) == ["snapshot", "snapshot"]


# -- the client --------------------------------------------------------------------------------


@pytest.mark.loopback
async def test_a_users_update_is_applied_within_a_second(
    feed_authz: tuple[FakeAuthz, str],
) -> None:
    async with following(feed_authz) as (server, holder, client):
        first = holder.current
        assert first is not None
        after = await push_and_apply(server, holder, users_line(first, AFTER), 2)
        assert AFTER.same_content(after)
        assert client.snapshots_applied == 2
