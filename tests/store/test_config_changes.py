"""The change counter: every write to users or apps moves it, whichever process makes it."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from sqlalchemy import update

from events.helpers import next_item
from fixtures.store import T0, make_app, make_session, make_user
from lychgate.errors import NotFound
from lychgate.events import ConfigChanged, PostgresBus
from lychgate.ids import AppSlug, UserId
from lychgate.store import Store, open_store
from lychgate.store.schema import users
from lychgate.store.sql.base import BUMP, CURRENT


async def test_writes_to_users_and_apps_move_it_and_nothing_else_does(store: Store) -> None:
    version = store.config_changes.version
    start = await version()
    assert start == 0  # a fresh database: migration 0003's row
    user = make_user()
    await store.users.add(user)
    assert await version() == 1
    await store.users.update(user.id, name="Ada King")
    assert await version() == 2
    await store.users.update(user.id)  # nothing to change: no write
    app = make_app()
    await store.apps.add(app)
    await store.apps.update(replace(app, name="Renamed"))
    await store.apps.remove(app.slug)
    assert await version() == 5
    # What is read per look anyway, or what the snapshot never holds, leaves it alone.
    session = make_session(user.id)
    await store.sessions.create(session)
    await store.sessions.revoke(session.id, T0)
    await store.users.get(user.id)
    assert await version() == 5


async def test_a_write_that_matches_nothing_does_not_move_it(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.users.update(UserId("u_nobody"), name="x")
    with pytest.raises(NotFound):
        await store.apps.remove(AppSlug("nothing"))
    assert await store.config_changes.version() == 0


async def test_each_user_write_records_the_value_it_moved_the_counter_to(store: Store) -> None:
    ada, bob = make_user(), make_user(name="Bob")
    await store.users.add(ada)  # 1
    await store.users.add(bob)  # 2
    await store.apps.add(make_app())  # 3: not a user
    await store.users.update(ada.id, disabled=True)  # 4
    changed = await store.users.changed_since(0)
    assert [(c.version, c.user.id) for c in changed] == [(2, bob.id), (4, ada.id)]
    assert changed[1].user.disabled
    assert [c.user.id for c in await store.users.changed_since(2)] == [ada.id]
    assert await store.users.changed_since(4) == []


async def test_a_read_from_nothing_can_leave_the_disabled_users_out(store: Store) -> None:
    # authz's full rebuild: a disabled user is not in the snapshot, so it need not be read.
    on, off, later = make_user(), make_user(disabled=True), make_user(name="Later")
    for person in (on, off, later):
        await store.users.add(person)  # 1, 2, 3
    await store.users.update(later.id, disabled=True)  # 4
    await store.users.update(off.id, disabled=False)  # 5
    everyone = await store.users.changed_since(-1)
    assert [c.user.id for c in everyone] == [on.id, later.id, off.id]
    enabled = await store.users.changed_since(-1, enabled_only=True)
    assert [(c.version, c.user.id) for c in enabled] == [(1, on.id), (5, off.id)]
    first = await store.users.changed_since(-1, limit=1, enabled_only=True)
    rest = await store.users.changed_since(-1, after=first[-1], enabled_only=True)
    assert [c.user.id for c in (*first, *rest)] == [on.id, off.id]


async def test_changed_since_pages_by_position_not_offset(store: Store) -> None:
    people = [make_user(name=f"user {i}") for i in range(5)]
    for person in people:
        await store.users.add(person)
    first = await store.users.changed_since(0, limit=2)
    # A user of the first page changes between pages: it moves to the end, and no other
    # user slips past the reader (an offset would now skip people[2]).
    await store.users.update(people[0].id, name="renamed")
    rest = await store.users.changed_since(0, limit=10, after=first[-1])
    assert [c.user.id for c in first] == [people[0].id, people[1].id]
    assert [c.user.id for c in rest] == [p.id for p in people[2:]] + [people[0].id]
    assert rest[-1].user.name == "renamed"


async def test_concurrent_user_writes_land_in_counter_order(store: Store) -> None:
    # The reader's guarantee: once it sees the counter at v, every user write that set a
    # value up to v is visible. A writer that has bumped holds the counter's row until it
    # commits, so a second writer waits, takes the next value, and commits after it.
    ada, bob = make_user(), make_user(name="Bob")
    await store.users.add(ada)  # 1
    await store.users.add(bob)  # 2
    async with store.engine.begin() as first:  # bumped to 3, not committed yet
        await first.execute(BUMP)
        await first.execute(
            update(users).where(users.c.id == ada.id).values(name="Ada 3", changed_in=CURRENT)
        )
        second = asyncio.create_task(store.users.update(bob.id, name="Bob 4"))
        await asyncio.sleep(0.3)
        assert not second.done()  # waiting for the counter's row
        assert await store.config_changes.version() == 2  # a reader sees neither yet
        assert await store.users.changed_since(2) == []
    await asyncio.wait_for(second, 5)
    assert await store.config_changes.version() == 4
    changes = await store.users.changed_since(2)
    assert [(c.version, c.user.name) for c in changes] == [(3, "Ada 3"), (4, "Bob 4")]


async def test_on_postgresql_each_config_write_tells_authz_at_commit(pg_url: str) -> None:
    # authz listens on the event bus and looks at once on a ConfigChanged: a change the CLI
    # makes reaches the gateways without waiting for authz's next poll.
    bus = await PostgresBus.connect(pg_url)  # the channel authz listens on
    store = await open_store(pg_url)
    try:
        async with bus.subscribe() as events:
            user = make_user()
            await store.users.add(user)
            assert await next_item(events) == ConfigChanged("users")
            with pytest.raises(NotFound):  # rolled back, bump and all: nothing to tell
                await store.users.update(UserId("u_nobody"), name="x")
            session = make_session(user.id)
            await store.sessions.create(session)  # not config (authz reads them each look)
            await store.sessions.revoke(session.id, T0)
            app = make_app()
            await store.apps.add(app)
            assert await next_item(events) == ConfigChanged("apps")
            await store.apps.set_enabled(app.slug, enabled=False)
            assert await next_item(events) == ConfigChanged("apps")
            await store.apps.remove(app.slug)
            assert await next_item(events) == ConfigChanged("apps")
            await store.users.update(user.id, disabled=True)
            assert await next_item(events) == ConfigChanged("users")
    finally:
        await store.close()
        await bus.close()
