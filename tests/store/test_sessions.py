"""Auth sessions and the revoked set, over both backends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from functools import partial

import pytest

from fixtures.store import T0, make_device, make_session, make_user
from lychgate.domain import Session, User
from lychgate.errors import NotFound
from lychgate.ids import DeviceId, SessionId, UserId
from lychgate.store import Revocation, SessionEnd, Store

DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


async def _user(store: Store) -> User:
    user = make_user()
    await store.users.add(user)
    return user


async def _session(store: Store, user: User | None = None, **fields: object) -> Session:
    owner = user or await _user(store)
    session = make_session(owner.id, **fields)
    await store.sessions.create(session)
    return session


async def test_round_trip_with_a_device(store: Store) -> None:
    user = await _user(store)
    device = make_device(user.id)
    await store.devices.add(device)
    session = await _session(store, user, device_id=device.id, user_agent="Firefox", ip="::1")
    assert await store.sessions.get(session.id) == session


async def test_missing_session_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.sessions.get(SessionId("nothing"))


async def test_session_of_a_missing_user_or_device_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.sessions.create(make_session(UserId("nobody")))
    user = await _user(store)
    with pytest.raises(NotFound):
        await store.sessions.create(make_session(user.id, device_id=DeviceId("nothing")))


async def test_touch_moves_last_seen_on_live_sessions_only(store: Store) -> None:
    session = await _session(store)
    assert await store.sessions.touch(session.id, T0 + SECOND)
    assert (await store.sessions.get(session.id)).last_seen_at == T0 + SECOND
    # At expires_at the session is over: "live" means now < expires_at.
    assert not await store.sessions.touch(session.id, session.expires_at)
    await store.sessions.revoke(session.id, T0 + 2 * SECOND)
    assert not await store.sessions.touch(session.id, T0 + 3 * SECOND)
    assert not await store.sessions.touch(SessionId("nothing"), T0)


async def test_revoke_changes_once(store: Store) -> None:
    session = await _session(store)
    assert await store.sessions.revoke(session.id, T0 + SECOND)
    assert not await store.sessions.revoke(session.id, T0 + 2 * SECOND)
    assert (await store.sessions.get(session.id)).revoked
    assert not await store.sessions.revoke(SessionId("nothing"), T0)


async def test_revoke_all_for_user_returns_what_it_revoked(store: Store) -> None:
    user = await _user(store)
    live = [await _session(store, user) for _ in range(2)]
    already = await _session(store, user)
    await store.sessions.revoke(already.id, T0)
    await _session(store, user, expires_at=T0 + SECOND)  # expired by the time we revoke
    bystander = await _session(store)
    revoked = await store.sessions.revoke_all_for_user(user.id, T0 + SECOND)
    assert sorted(revoked) == sorted(s.id for s in live)
    assert not (await store.sessions.get(bystander.id)).revoked
    assert await store.sessions.revoke_all_for_user(user.id, T0 + SECOND) == []


async def test_list_for_user_is_newest_first_and_can_keep_live_ones(store: Store) -> None:
    user = await _user(store)
    old = await _session(store, user, created_at=T0, expires_at=T0 + SECOND)
    mid = await _session(store, user, created_at=T0 + SECOND)
    new = await _session(store, user, created_at=T0 + 2 * SECOND)
    await store.sessions.revoke(mid.id, T0 + 2 * SECOND)
    await _session(store)  # someone else's
    listed = await store.sessions.list_for_user(user.id)
    assert [s.id for s in listed] == [new.id, mid.id, old.id]
    live = await store.sessions.list_for_user(user.id, live_at=T0 + 3 * SECOND)
    assert [s.id for s in live] == [new.id]


async def test_revoked_ids_are_the_revoked_sessions_that_have_not_expired(
    store: Store,
) -> None:
    user = await _user(store)
    short = await _session(store, user, expires_at=T0 + 10 * SECOND)
    long = await _session(store, user, expires_at=T0 + DAY)
    live = await _session(store, user)
    await store.sessions.revoke(short.id, T0 + SECOND)
    await store.sessions.revoke(long.id, T0 + 5 * SECOND)
    assert sorted(await store.sessions.revoked_ids(T0 + 6 * SECOND)) == sorted([short.id, long.id])
    # Expiry boundary: at expires_at the session's tokens are dead, so it leaves the set.
    just_before = short.expires_at - timedelta(microseconds=1)
    assert sorted(await store.sessions.revoked_ids(just_before)) == sorted([short.id, long.id])
    assert list(await store.sessions.revoked_ids(short.expires_at)) == [long.id]
    assert live.id not in await store.sessions.revoked_ids(T0)


async def test_revoked_ids_since_gives_the_increment(store: Store) -> None:
    user = await _user(store)
    first = await _session(store, user)
    second = await _session(store, user)
    await store.sessions.revoke(first.id, T0 + SECOND)
    await store.sessions.revoke(second.id, T0 + 3 * SECOND)
    since = await store.sessions.revoked_ids(T0 + 4 * SECOND, since=T0 + 2 * SECOND)
    assert list(since) == [second.id]
    at_boundary = await store.sessions.revoked_ids(T0 + 4 * SECOND, since=T0 + 3 * SECOND)
    assert list(at_boundary) == [second.id]


async def test_endings_are_the_sessions_that_reached_their_end_in_the_window(
    store: Store,
) -> None:
    user = await _user(store)
    long_gone = await _session(store, user, expires_at=T0 + SECOND)
    ended = await _session(store, user, expires_at=T0 + 3 * SECOND)
    revoked_then_ended = await _session(store, user, expires_at=T0 + 4 * SECOND)
    await store.sessions.revoke(revoked_then_ended.id, T0 + 2 * SECOND)
    await _session(store, user, expires_at=T0 + 10 * SECOND)  # still live: not listed
    got = await store.sessions.endings(T0 + 2 * SECOND, T0 + 5 * SECOND)
    assert got == [
        SessionEnd(ended.id, ended.expires_at),
        SessionEnd(revoked_then_ended.id, revoked_then_ended.expires_at),
    ]
    # Bounds: after ``since``, up to and including ``now`` (the instant its tokens die).
    window = await store.sessions.endings(T0 + 3 * SECOND, T0 + 4 * SECOND)
    assert [end.id for end in window] == [revoked_then_ended.id]
    assert [end.id for end in await store.sessions.endings(T0, T0 + SECOND)] == [long_gone.id]


async def test_revocations_are_the_revoked_ids_with_their_ends(store: Store) -> None:
    user = await _user(store)
    short = await _session(store, user, expires_at=T0 + 10 * SECOND)
    long = await _session(store, user, expires_at=T0 + DAY)
    await _session(store, user)  # live
    await store.sessions.revoke(long.id, T0 + SECOND)
    await store.sessions.revoke(short.id, T0 + 2 * SECOND)
    now = T0 + 3 * SECOND
    got = await store.sessions.revocations(now)
    assert got == [SessionEnd(short.id, short.expires_at), SessionEnd(long.id, long.expires_at)]
    assert {end.id for end in got} == set(await store.sessions.revoked_ids(now))
    assert [end.id for end in await store.sessions.revocations(short.expires_at)] == [long.id]


async def _revoked_in_a_tie(store: Store, count: int) -> list[Session]:
    """``count`` sessions revoked at one moment and ending at another: pages must part them
    by id."""
    user = await _user(store)
    tied = [await _session(store, user, expires_at=T0 + DAY) for _ in range(count)]
    for session in tied:
        await store.sessions.revoke(session.id, T0 + SECOND)
    return sorted(tied, key=lambda s: s.id)


async def _pages(
    read: Callable[..., Awaitable[Sequence[SessionEnd | Revocation]]],
) -> list[SessionId]:
    """Every id ``read`` gives, two at a time, each page after the last one's last."""
    seen: list[SessionId] = []
    after: SessionEnd | Revocation | None = None
    while True:
        page = await read(limit=2, after=after)
        assert len(page) <= 2
        seen += [end.id for end in page]
        if len(page) < 2:
            return seen
        after = page[-1]


async def test_the_sessions_to_end_are_read_a_page_at_a_time(store: Store) -> None:
    tied = [s.id for s in await _revoked_in_a_tie(store, 5)]
    now = T0 + 2 * SECOND
    sessions = store.sessions
    assert await _pages(partial(sessions.revocations, now)) == tied
    assert await _pages(partial(sessions.revoked_since, T0)) == tied
    assert await _pages(partial(sessions.endings, T0, T0 + 2 * DAY)) == tied


async def test_revoked_since_gives_what_was_revoked_since_expired_or_not(store: Store) -> None:
    user = await _user(store)
    before = await _session(store, user)
    ended = await _session(store, user, expires_at=T0 + 2 * SECOND)
    later = await _session(store, user)
    live = await _session(store, user)
    await store.sessions.revoke(before.id, T0)
    await store.sessions.revoke(ended.id, T0 + SECOND)
    await store.sessions.revoke(later.id, T0 + 3 * SECOND)
    got = await store.sessions.revoked_since(T0 + SECOND)
    assert got == [  # by revocation; one has ended since (the caller knows what that means)
        Revocation(ended.id, ended.expires_at, T0 + SECOND),
        Revocation(later.id, later.expires_at, T0 + 3 * SECOND),
    ]
    assert live.id not in {end.id for end in got}
    assert await store.sessions.revoked_since(T0 + 4 * SECOND) == []
    # A session stored revoked counts as revoked when it was created.
    stored = await _session(store, user, revoked=True, created_at=T0 + 5 * SECOND)
    assert [end.id for end in await store.sessions.revoked_since(T0 + 4 * SECOND)] == [stored.id]


async def test_delete_expired_removes_sessions_at_or_past_expiry(store: Store) -> None:
    user = await _user(store)
    gone = await _session(store, user, expires_at=T0 + SECOND)
    kept = await _session(store, user, expires_at=T0 + 2 * SECOND)
    assert await store.sessions.delete_expired(T0 + SECOND) == 1
    with pytest.raises(NotFound):
        await store.sessions.get(gone.id)
    assert await store.sessions.get(kept.id) == kept
