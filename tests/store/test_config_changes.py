"""The change counter: every write to users or apps moves it, whichever process makes it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fixtures.store import T0, make_app, make_session, make_user
from lychgate.errors import NotFound
from lychgate.ids import AppSlug, UserId
from lychgate.store import Store


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
