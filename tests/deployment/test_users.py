"""Adding users; disabling a user cuts them off at once; the last admin cannot be disabled."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fixtures.store import T0, make_session, make_user
from lychgate.deployment.users import (
    add_user,
    all_users,
    check_email,
    check_name,
    disable_user,
    enable_user,
    set_admin,
)
from lychgate.domain import User
from lychgate.errors import ClientError, Conflict
from lychgate.store import Store, UserRepository


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


class BothAtOnce:
    """The store's users, but an add waits until a second one has begun: the two adds of a
    race reach the database together, however the event loop orders the rest."""

    def __init__(self, users: UserRepository) -> None:
        self._users = users
        self._both = asyncio.Barrier(2)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._users, name)

    async def add(self, user: User) -> None:
        await self._both.wait()
        await self._users.add(user)


@pytest.mark.parametrize("second", ["frank@example.com", "FRANK@example.com"])
async def test_of_two_adds_at_once_with_one_address_one_wins(
    store: Store, second: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both used to get in (each looked the address up, then inserted): then
    # `lychgate user disable EMAIL` disabled only one of them.
    monkeypatch.setattr(store, "users", BothAtOnce(store.users))
    results = await asyncio.gather(
        add_user(store, name="Frank", email="frank@example.com", now=T0),
        add_user(store, name="Frank 2", email=second, now=T0),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(refused) == 1, results
    assert isinstance(refused[0], Conflict)
    assert (refused[0].field, refused[0].message) == (
        "email",
        "a user with this e-mail address exists",
    )
    assert [u.name for u in await store.users.list()] == [
        r.name for r in results if not isinstance(r, BaseException)
    ]
    actions = [e.action for e in await store.audit.list(limit=10)]
    assert actions.count("user.added") == 1


async def test_an_address_is_found_however_it_is_spelt(store: Store) -> None:
    frank = await add_user(store, name="Frank", email=" Frank@Example.COM ", now=T0)
    assert frank.email == "Frank@example.com"  # trimmed, the domain in lower case
    assert await store.users.get_by_email("frank@example.com") == frank


@pytest.mark.parametrize(
    "name",
    [
        "山田\u3000太郎",  # an ideographic space
        "Jean\u00a0Dupont",  # a no-break space
        "محمد\u200cحسین",  # a zero-width non-joiner, as Persian writes it
        "👨\u200d👩\u200d👧",  # an emoji sequence, joined
        "Zoë O'Brien-Łukasz",
    ],
)
def test_real_names_are_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "lap\u0000top",  # C0
        "del\u007f",  # DEL
        "c\u00851",  # C1
        "\u202egnp.exe",  # a right-to-left override: reads "exe.png"
        "a\u2066b",  # a bidi isolate
        "line\u2028break",  # a line separator
        "\ue000private",  # private use
    ],
)
def test_names_that_would_read_otherwise_are_refused(name: str) -> None:
    with pytest.raises(ClientError):
        check_name(name)


def test_an_email_address_with_a_bidi_control_is_refused() -> None:
    with pytest.raises(ClientError):
        check_email("a\u202e@moc.example.org")


async def test_every_user_is_read_past_the_stores_page(store: Store) -> None:
    # `lychgate user list` read one page of the store's (1,000) and said nothing of the rest.
    added = [make_user() for _ in range(1003)]
    for user in added:
        await store.users.add(user)
    everyone = await all_users(store)
    assert [u.id for u in everyone] == [u.id for u in await _paged(store)]
    assert {u.id for u in everyone} == {u.id for u in added}


async def _paged(store: Store) -> list[User]:
    """Every user, by pages of 100: the same order as one read."""
    users: list[User] = []
    while page := await store.users.list(limit=100, offset=len(users)):
        users.extend(page)
    return users
