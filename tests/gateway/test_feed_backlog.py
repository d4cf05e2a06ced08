"""A feed connection whose client reads nothing holds one snapshot waiting, not every one.

A probe paused a gateway (SIGSTOP) while the config kept changing: authz grew from 262 MB to
702 MB in 160 s, some 3 MB per change, since :func:`feed_lines` put every snapshot published
in a queue that only a read emptied. Now a snapshot replaces the one waiting, and an update is
worked out at sending time from the last snapshot sent, so that nothing it carried is lost.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial

import pytest

from gateway.feed_harness import WORLD, version
from gateway.waiting import eventually
from lychgate.gateway.feed_serve import feed_lines
from lychgate.gateway.feed_wire import (
    APPS,
    SESSIONS,
    UPDATES,
    AppsUpdate,
    SessionsUpdate,
    UsersUpdate,
    parse_line,
)
from lychgate.gateway.snapshot import ConfigSnapshot, UserProfile
from lychgate.ids import SessionId, UserId

CHANGES = 40
# Serials of the test below: no other test's snapshots (kept at module level) share them.
FIRST = 7_300_001


def alive(serials: range) -> list[int]:
    """The serials in ``serials`` of the snapshots still held by anything."""
    gc.collect()
    return sorted(
        o.serial for o in gc.get_objects() if isinstance(o, ConfigSnapshot) and o.serial in serials
    )


def read(line: bytes, current: ConfigSnapshot) -> ConfigSnapshot:
    """What a gateway holding ``current`` holds after ``line`` (as FeedClient applies it)."""
    message = parse_line(line.rstrip(b"\n"))
    if isinstance(message, SessionsUpdate | UsersUpdate | AppsUpdate):
        assert message.after == current.serial
        return message.apply(current)
    assert isinstance(message, ConfigSnapshot)
    return message


def ended(serial: int, first: int = 1) -> ConfigSnapshot:
    """Snapshot ``serial``: every session from ``first + 1`` to ``serial`` ended (one more
    per change since snapshot ``first``)."""
    return version(serial, *(f"s-{n}" for n in range(first + 1, serial + 1)))


class Changes:
    """A source of snapshots: the first, then ``later`` ones as fast as they are taken."""

    def __init__(
        self, first: ConfigSnapshot, later: Sequence[Callable[[], ConfigSnapshot]]
    ) -> None:
        self.first = first
        self.later = later  # made as they are published: the test holds none of them
        self.published = 0

    async def __call__(self) -> AsyncIterator[ConfigSnapshot]:
        yield self.first
        for make in self.later:
            await asyncio.sleep(0)  # one change at a time, as the publisher's ticks come
            yield make()
            self.published += 1
        await asyncio.Event().wait()  # then quiet, the connection open


async def test_a_client_that_reads_nothing_holds_one_snapshot_waiting() -> None:
    last = FIRST + CHANGES
    source = Changes(
        ended(FIRST, FIRST), [partial(ended, s, FIRST) for s in range(FIRST + 1, last + 1)]
    )
    stream = feed_lines(source(), heartbeat_interval=60)
    try:
        first = await anext(stream)  # then the client stops reading: its socket is full
        await eventually(lambda: source.published == CHANGES)
        # Only the newest waits (the queue held all forty, ~3 MB each at 10,000 users).
        assert alive(range(FIRST + 1, last + 1)) == [last]
        # The client reads again: one update says all that the forty did.
        held = read(first, WORLD.snapshot)
        line = await anext(stream)
        assert json.loads(line)["type"] == "sessions"
        held = read(line, held)
        assert held.serial == last
        assert held.revoked_sessions == ended(last, FIRST).revoked_sessions
        assert len(held.revoked_sessions) == CHANGES
    finally:
        await stream.aclose()


USERS = dict(WORLD.snapshot.users)
ANN = UserId("user-1")
NEW = UserId("user-new")


def _sessions(serial: int) -> ConfigSnapshot:
    return ended(serial)


def _users(serial: int) -> ConfigSnapshot:
    """Snapshot ``serial`` with a user enrolled and Ann renamed, and the sessions ended."""
    users = {**USERS, ANN: UserProfile("Ann B", "ann@example.com")}
    users[NEW] = UserProfile("Neo", None)
    return WORLD.changed(
        serial=serial, users=users, revoked_sessions=ended(serial).revoked_sessions
    )


def _apps(serial: int) -> ConfigSnapshot:
    """Snapshot ``serial`` with an app gone, and the sessions ended."""
    return WORLD.changed(
        serial=serial, apps=WORLD.snapshot.apps[:1], revoked_sessions=ended(serial).revoked_sessions
    )


def _apps_and_users(serial: int) -> ConfigSnapshot:
    """Snapshot ``serial`` with an app gone and the users of :func:`_users`."""
    return WORLD.changed(
        serial=serial,
        apps=WORLD.snapshot.apps[:1],
        users=_users(serial).users,
        revoked_sessions=ended(serial).revoked_sessions,
    )


@pytest.mark.parametrize(
    ("updates", "changes", "sent_as"),
    [
        # Sessions ended one by one: a sessions update holding every one.
        (UPDATES, [_sessions] * 5, "sessions"),
        # A user change among them, later versions without it once more: the users update
        # carries it, since it is worked out from what the client holds.
        (UPDATES, [_sessions, _users, _sessions, _sessions], "sessions"),
        (UPDATES, [_sessions, _sessions, _users, _users], "users"),
        # A client that reads sessions updates only: a users change goes out whole.
        (frozenset({SESSIONS}), [_sessions, _users, _users], "snapshot"),
        # An app change among them: an apps update carries it, with the users and sessions
        # changed meanwhile; undone before the client reads again, it is no change to it.
        (UPDATES, [_sessions, _apps, _apps], "apps"),
        (UPDATES, [_users, _apps_and_users], "apps"),
        (UPDATES, [_sessions, _apps, _sessions], "sessions"),
        # A client that does not read apps updates: an app change goes out whole.
        (UPDATES - {APPS}, [_sessions, _apps, _apps], "snapshot"),
    ],
)
async def test_no_change_is_lost_when_the_snapshots_waiting_are_coalesced(
    updates: frozenset[str],
    changes: list[Callable[[int], ConfigSnapshot]],
    sent_as: str,
) -> None:
    later = [partial(make, s) for s, make in enumerate(changes, start=2)]
    newest = changes[-1](len(changes) + 1)
    source = Changes(ended(1), later)
    stream = feed_lines(source(), heartbeat_interval=60, updates=updates)
    try:
        held = read(await anext(stream), WORLD.snapshot)
        await eventually(lambda: source.published == len(changes))
        line = await anext(stream)
        assert json.loads(line)["type"] == sent_as
        held = read(line, held)
        assert held.serial == newest.serial
        assert held.same_content(newest)
    finally:
        await stream.aclose()


async def test_a_client_that_reads_again_gets_the_changes_made_since_without_a_backlog() -> None:
    # Read, stop, read: the client sees each newest state once, never a queue drained late.
    more = asyncio.Event()
    made: list[int] = []

    async def source() -> AsyncIterator[ConfigSnapshot]:
        yield ended(1)
        for batch in ((2, 3, 4), (5, 6)):
            await more.wait()
            more.clear()
            for serial in batch:
                made.append(serial)
                yield ended(serial)
                await asyncio.sleep(0)
        await asyncio.Event().wait()

    stream = feed_lines(source(), heartbeat_interval=60)
    try:
        held = read(await anext(stream), WORLD.snapshot)
        seen = []
        for last in (4, 6):
            more.set()
            await eventually(partial(lambda n: made[-1:] == [n], last))
            held = read(await anext(stream), held)
            seen.append(held.serial)
        assert seen == [4, 6]
        assert held.revoked_sessions == frozenset(SessionId(f"s-{n}") for n in range(2, 7))
    finally:
        await stream.aclose()
