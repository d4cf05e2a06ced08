"""Disabling a user cuts them off at once; the last admin cannot be disabled."""

from __future__ import annotations

import pytest

from fixtures.store import T0, make_session, make_user
from lychgate.deployment.users import disable_user, enable_user, set_admin
from lychgate.errors import Conflict
from lychgate.store import Store


async def test_disabling_ends_every_session_and_moves_the_counter(store: Store) -> None:
    admin = make_user(is_admin=True, email="root@example.test")
    ada = make_user()
    for user in (admin, ada):
        await store.users.add(user)
    live = [make_session(ada.id) for _ in range(2)]
    for session in live:
        await store.sessions.create(session)
    other = make_session(admin.id)
    await store.sessions.create(other)
    before = await store.config_changes.version()
    assert before is not None
    ended = await disable_user(store, ada, T0)
    assert sorted(ended) == sorted(s.id for s in live)
    assert (await store.users.get(ada.id)).disabled
    assert set(await store.sessions.revoked_ids(T0)) == {s.id for s in live}  # not the admin's
    assert await store.config_changes.version() == before + 1  # gateways rebuild at once
    assert await disable_user(store, await store.users.get(ada.id), T0) == []  # idempotent
    actions = [e.action for e in await store.audit.list(limit=10)]
    assert actions.count("user.disabled") == 2


async def test_enabling_lets_the_user_back_in_but_keeps_old_sessions_ended(store: Store) -> None:
    ada = make_user()
    await store.users.add(ada)
    session = make_session(ada.id)
    await store.sessions.create(session)
    await disable_user(store, ada, T0)
    await enable_user(store, await store.users.get(ada.id), T0)
    assert not (await store.users.get(ada.id)).disabled
    assert session.id in await store.sessions.revoked_ids(T0)


async def test_the_last_admin_cannot_be_disabled(store: Store) -> None:
    root = make_user(is_admin=True, email="root@example.test")
    await store.users.add(root)
    with pytest.raises(Conflict, match="last admin"):
        await disable_user(store, root, T0)
    assert not (await store.users.get(root.id)).disabled
    second = make_user(is_admin=True, email="second@example.test")
    await store.users.add(second)
    await disable_user(store, root, T0)  # another admin remains
    assert (await store.users.get(root.id)).disabled


async def test_making_an_admin_and_taking_it_back(store: Store) -> None:
    root = make_user(is_admin=True, email="root@example.test")
    ada = make_user(email="ada@example.test")
    for user in (root, ada):
        await store.users.add(user)
    session = make_session(ada.id)
    await store.sessions.create(session)
    assert await set_admin(store, ada, True, T0) == []  # her tokens gain the flag anew
    assert (await store.users.get(ada.id)).is_admin
    assert await store.sessions.revoked_ids(T0) == []
    # Her app tokens say adm, and the gateway believes them: taking it away ends them.
    assert await set_admin(store, await store.users.get(ada.id), False, T0) == [session.id]
    assert not (await store.users.get(ada.id)).is_admin
    actions = [e.action for e in await store.audit.list(limit=10)]
    assert actions.count("user.updated") == 2


async def test_the_last_admin_keeps_the_flag(store: Store) -> None:
    root = make_user(is_admin=True, email="root@example.test")
    await store.users.add(root)
    with pytest.raises(Conflict, match=r"lychgate user update NAME --admin"):
        await set_admin(store, root, False, T0)
    assert (await store.users.get(root.id)).is_admin
    with pytest.raises(Conflict, match=r"last admin: .*lychgate user update NAME --admin"):
        await disable_user(store, root, T0)
