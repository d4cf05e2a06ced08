"""What a look of the snapshot publisher reads: what changed since the last one, not the store.

The sessions to end are kept by :class:`SessionsToEnd` from the revocations and the ends since
the last look; a fake around the real sessions port counts the rows each read gives.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert

from authz.conftest import Clock
from fixtures.store import T0, make_session, make_user
from lychgate.authz.context import AuthzContext
from lychgate.authz.sessions_to_end import (
    REREAD_REVOCATIONS,
    SessionsToEnd,
    ended_listed_for,
    sessions_to_end,
)
from lychgate.authz.snapshots import SnapshotPublisher
from lychgate.domain import Session
from lychgate.ids import SessionId, new_id, token_sid
from lychgate.store import Revocation, SessionEnd
from lychgate.store.schema import sessions as sessions_table

SECOND = timedelta(seconds=1)


class CountingSessions:
    """The sessions port, counting the reads of sessions to end and the rows they give."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: Counter[str] = Counter()
        self.rows: Counter[str] = Counter()
        self.limits: set[int] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def _count(self, name: str, *args: Any, **page: Any) -> Any:
        got = await getattr(self._inner, name)(*args, **page)
        self.calls[name] += 1
        self.rows[name] += len(got)
        self.limits.add(page.get("limit", 0))
        return got

    async def revocations(self, now: datetime, **page: Any) -> list[SessionEnd]:
        result: list[SessionEnd] = await self._count("revocations", now, **page)
        return result

    async def revoked_since(self, since: datetime, **page: Any) -> list[Revocation]:
        result: list[Revocation] = await self._count("revoked_since", since, **page)
        return result

    async def endings(self, since: datetime, now: datetime, **page: Any) -> list[SessionEnd]:
        result: list[SessionEnd] = await self._count("endings", since, now, **page)
        return result

    async def revoked_ids(self, now: datetime, **since: Any) -> list[SessionId]:
        result: list[SessionId] = await self._count("revoked_ids", now, **since)
        return result

    def reset(self) -> None:
        self.calls.clear()
        self.rows.clear()


class CountingUsers:
    """The users port, counting the reads of changed users."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.changed_since_calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def changed_since(self, version: int, **page: Any) -> Any:
        self.changed_since_calls += 1
        return await self._inner.changed_since(version, **page)


@pytest.fixture
def counting(ctx: AuthzContext) -> CountingSessions:
    spy = CountingSessions(ctx.store.sessions)
    ctx.store.sessions = spy  # a fake around the real port
    return spy


async def _sessions(ctx: AuthzContext, count: int, **fields: Any) -> list[Session]:
    user = make_user()
    await ctx.store.users.add(user)
    made = [make_session(user.id, **fields) for _ in range(count)]
    for session in made:
        await ctx.store.sessions.create(session)
    return made


async def test_a_revocation_after_the_first_look_is_in_the_next_snapshot(
    ctx: AuthzContext, clock: Clock, counting: CountingSessions
) -> None:
    # Revoked by another process (the CLI): no event, only the store.
    session, other = await _sessions(ctx, 2)
    publisher = SnapshotPublisher(ctx)
    await publisher.refresh()
    clock.now = T0 + SECOND
    await ctx.store.sessions.revoke(session.id, clock.now)
    counting.reset()
    assert await publisher.refresh()
    latest = publisher.latest
    assert latest is not None
    assert latest.revoked_sessions == {token_sid(session.id)}
    # That look read the one revocation, and no other session.
    assert counting.rows == Counter(revoked_since=1)
    assert "revocations" not in counting.calls
    await ctx.store.sessions.revoke(other.id, clock.now)
    assert await publisher.refresh()
    assert publisher.latest is not None
    assert publisher.latest.revoked_sessions == {token_sid(session.id), token_sid(other.id)}


async def test_a_look_where_nothing_changed_reads_no_session_and_no_user(
    ctx: AuthzContext, clock: Clock, counting: CountingSessions
) -> None:
    revoked = await _sessions(ctx, 30)
    for session in revoked:
        await ctx.store.sessions.revoke(session.id, T0)
    await _sessions(ctx, 5, expires_at=T0 - SECOND)  # ended: listed for a while
    users = CountingUsers(ctx.store.users)
    ctx.store.users = users
    publisher = SnapshotPublisher(ctx)
    await publisher.refresh()  # the first look reads everything
    first = publisher.latest
    assert first is not None
    assert len(first.revoked_sessions) == 35
    assert counting.rows == Counter(revocations=30, endings=5)
    clock.now = T0 + REREAD_REVOCATIONS + SECOND  # past the window read again each look
    await publisher.refresh()
    counting.reset()
    read_users = users.changed_since_calls
    for _ in range(5):
        clock.now += SECOND / 2
        assert not await publisher.refresh()
    # Five looks: each asked for the revocations and ends since the last one, and got none.
    assert counting.calls == Counter(revoked_since=5, endings=5)
    assert sum(counting.rows.values()) == 0
    assert users.changed_since_calls == read_users
    assert publisher.latest is first  # nothing published, nothing built


async def test_a_session_is_listed_until_its_listing_is_over(
    ctx: AuthzContext, clock: Clock, counting: CountingSessions
) -> None:
    # One that reaches its end (its WebSockets are closed), one revoked before its end: both
    # listed until ended_listed_for after their end, each read once.
    ending, revoked = await _sessions(ctx, 2, expires_at=T0 + timedelta(hours=1))
    listed_for = ended_listed_for(ctx)
    publisher = SnapshotPublisher(ctx)
    await publisher.refresh()

    async def listed_at(moment: timedelta) -> set[SessionId]:
        clock.now = T0 + moment
        await publisher.refresh()
        assert publisher.latest is not None
        handles = {token_sid(ending.id): ending.id, token_sid(revoked.id): revoked.id}
        return {handles[h] for h in publisher.latest.revoked_sessions if h in handles}

    assert await listed_at(timedelta(minutes=30)) == set()
    await ctx.store.sessions.revoke(revoked.id, T0 + timedelta(minutes=30))
    assert await listed_at(timedelta(minutes=31)) == {revoked.id}
    assert await listed_at(timedelta(minutes=59)) == {revoked.id}
    assert await listed_at(timedelta(hours=1)) == {revoked.id, ending.id}  # the instant it ends
    last = timedelta(hours=1) + listed_for - timedelta(microseconds=1)
    assert await listed_at(last) == {revoked.id, ending.id}
    assert await listed_at(timedelta(hours=1) + listed_for) == set()
    assert counting.rows == Counter(revoked_since=1, endings=2)  # the revocation re-read once


async def test_a_revocation_that_commits_after_the_look_is_found_by_the_next(
    ctx: AuthzContext,
) -> None:
    # A revocation is stamped by its writer's clock, then commits: one stamped before a look
    # may become visible after it (a slow transaction, a replica whose clock is behind).
    late, later = await _sessions(ctx, 2)
    ending = SessionsToEnd(ended_listed_for(ctx))
    sessions = ctx.store.sessions
    assert await ending.look(sessions, T0) == frozenset()
    await sessions.revoke(late.id, T0 - REREAD_REVOCATIONS + SECOND)
    assert await ending.look(sessions, T0 + SECOND) == {token_sid(late.id)}
    # Stamped earlier than the window read again: the safety net's full read finds it.
    await sessions.revoke(later.id, T0 - REREAD_REVOCATIONS)
    assert await ending.look(sessions, T0 + 2 * SECOND) == {token_sid(late.id)}
    full = await ending.look(sessions, T0 + 3 * SECOND, full=True)
    assert full == {token_sid(late.id), token_sid(later.id)}


async def test_the_kept_set_is_what_a_full_read_gives(ctx: AuthzContext) -> None:
    # Sessions ending every 100 s, over and around the listing (10 min): at every step the
    # set kept from the changes is the full read's, and what the rule says it must be.
    listed_for = ended_listed_for(ctx)
    made = await _sessions(ctx, 1)
    user = made[0].user_id
    ends = [make_session(user, expires_at=T0 + n * 100 * SECOND) for n in range(1, 16)]
    for session in ends:
        await ctx.store.sessions.create(session)
    every = [*made, *ends]
    steps = [  # (seconds since T0, sessions revoked then)
        (0, [1, 6]),
        (50, [2]),
        (199, [7, 12]),
        (200, []),
        (450, [3]),
        (1100, [8, 15]),
        (1100, []),
        (900, [9]),  # the clock went back
        (2000, [10]),
        (2400, []),
    ]
    ending = SessionsToEnd(listed_for)
    revoked: set[SessionId] = set()
    for seconds, revoking in steps:
        now = T0 + seconds * SECOND
        for index in revoking:
            await ctx.store.sessions.revoke(every[index].id, now)
            revoked.add(every[index].id)
        kept = await ending.look(ctx.store.sessions, now)
        assert kept == await sessions_to_end(ctx, now), seconds
        expected = {
            token_sid(s.id)
            for s in every
            if now < s.expires_at + listed_for and (s.id in revoked or s.expires_at <= now)
        }
        assert kept == expected, seconds


async def test_a_full_read_goes_a_page_at_a_time(
    ctx: AuthzContext, counting: CountingSessions
) -> None:
    # What holds the event loop is a page's rows, not every revoked session's.
    (owner,) = await _sessions(ctx, 1)
    rows = [
        {
            "id": new_id("s_"),
            "user_id": owner.user_id,
            "device_id": None,
            "created_at": T0,
            "expires_at": T0 + timedelta(hours=1 + n % 3),  # many share an end
            "last_seen_at": T0,
            "revoked": True,
            "revoked_at": T0,
            "user_agent": "pytest",
            "ip": "127.0.0.1",
        }
        for n in range(2500)
    ]
    async with ctx.store.engine.begin() as conn:  # in one go: the setting, not the subject
        await conn.execute(insert(sessions_table), rows)
    ending = SessionsToEnd(ended_listed_for(ctx))
    kept = await ending.look(ctx.store.sessions, T0 + SECOND)
    assert kept == {token_sid(SessionId(str(row["id"]))) for row in rows}
    assert counting.calls["revocations"] == 3
    assert counting.rows["revocations"] == 2500
    assert counting.limits == {1000}


async def test_a_full_rebuild_reads_no_disabled_user(ctx: AuthzContext) -> None:
    # A disabled user is not in the snapshot: the full rebuild does not read one.
    enabled = [make_user(name=f"on {n}") for n in range(3)]
    disabled = [make_user(name=f"off {n}", disabled=True) for n in range(20)]
    for person in (*enabled, *disabled):
        await ctx.store.users.add(person)
    publisher = SnapshotPublisher(ctx, full_every=0.0)
    await publisher.refresh()
    await publisher.refresh()
    assert (publisher.full_builds, publisher.users_read) == (2, 6)
    assert publisher.latest is not None
    assert set(publisher.latest.users) == {person.id for person in enabled}
    await ctx.store.users.update(enabled[0].id, disabled=True)
    await publisher.refresh()  # a change: read alone, the full rebuild put off by one look
    assert (publisher.full_builds, publisher.users_read) == (2, 7)
    assert set(publisher.latest.users) == {person.id for person in enabled[1:]}
    await publisher.refresh()
    assert (publisher.full_builds, publisher.users_read) == (3, 9)
    assert set(publisher.latest.users) == {person.id for person in enabled[1:]}
