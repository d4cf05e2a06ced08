"""Users, over both backends."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from fixtures.store import T0, make_user
from lychgate.errors import Conflict, NotFound
from lychgate.ids import UserId
from lychgate.store import Store


async def test_round_trip(store: Store) -> None:
    user = make_user(external_id="ext-1", is_admin=True)
    await store.users.add(user)
    assert await store.users.get(user.id) == user


async def test_missing_user_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.users.get(UserId("nobody"))


async def test_duplicate_id_is_a_conflict_on_id(store: Store) -> None:
    user = make_user()
    await store.users.add(user)
    with pytest.raises(Conflict) as info:
        await store.users.add(replace(user, name="Someone else", email="else@example.test"))
    assert info.value.field == "id"


async def test_duplicate_external_id_is_a_conflict_on_external_id(store: Store) -> None:
    await store.users.add(make_user(external_id="ext-1"))
    with pytest.raises(Conflict) as info:
        await store.users.add(make_user(external_id="ext-1"))
    assert info.value.field == "external_id"


async def test_many_users_may_have_no_external_id(store: Store) -> None:
    for _ in range(3):
        await store.users.add(make_user(external_id=None))
    assert len(await store.users.list()) == 3


async def test_get_by_external_id(store: Store) -> None:
    user = make_user(external_id="ext-42")
    await store.users.add(user)
    assert await store.users.get_by_external_id("ext-42") == user
    assert await store.users.get_by_external_id("ext-43") is None


async def test_get_by_email_ignores_case_and_keeps_the_address_as_given(store: Store) -> None:
    frank = make_user(email="Frank@example.test")
    await store.users.add(frank)
    assert await store.users.get_by_email("Frank@example.test") == frank
    assert await store.users.get_by_email("FRANK@EXAMPLE.TEST") == frank
    assert await store.users.get_by_email("other@example.test") is None


@pytest.mark.parametrize("again", ["frank@example.test", "FRANK@example.test"])
async def test_an_email_address_belongs_to_one_user_whatever_its_case(
    store: Store, again: str
) -> None:
    # Both used to be stored: then `lychgate user disable` by address disabled only one.
    frank = make_user(email="frank@example.test")
    await store.users.add(frank)
    with pytest.raises(Conflict) as info:
        await store.users.add(make_user(email=again))
    assert (info.value.field, info.value.message) == (
        "email",
        "a user with this e-mail address exists",
    )
    assert list(await store.users.list()) == [frank]


async def test_update_to_another_users_email_address_is_a_conflict(store: Store) -> None:
    frank, ada = make_user(email="frank@example.test"), make_user(email="ada@example.test")
    for user in (frank, ada):
        await store.users.add(user)
    with pytest.raises(Conflict) as info:
        await store.users.update(ada.id, email="Frank@example.test")
    assert info.value.field == "email"
    assert await store.users.get(ada.id) == ada
    # Her own address in another case is still hers; lookups follow the new spelling.
    assert (await store.users.update(ada.id, email="Ada@example.test")).email == "Ada@example.test"
    assert await store.users.get_by_email("ada@example.test") == replace(
        ada, email="Ada@example.test"
    )


async def test_many_users_may_have_no_email_address(store: Store) -> None:
    for _ in range(3):
        await store.users.add(make_user(email=None))
    assert await store.users.get_by_email("") is None
    assert len(await store.users.list()) == 3


async def test_list_is_oldest_first_with_limit_and_offset(store: Store) -> None:
    users = [make_user(created_at=T0 + timedelta(minutes=i)) for i in range(5)]
    for user in reversed(users):
        await store.users.add(user)
    assert list(await store.users.list()) == users
    assert list(await store.users.list(limit=2, offset=1)) == users[1:3]


async def test_update_changes_only_the_given_fields(store: Store) -> None:
    user = make_user(email="old@example.test")
    await store.users.add(user)
    updated = await store.users.update(user.id, is_admin=True, name="Ada King")
    assert updated == replace(user, is_admin=True, name="Ada King")
    assert await store.users.get(user.id) == updated


async def test_update_can_clear_the_email(store: Store) -> None:
    user = make_user(email="old@example.test")
    await store.users.add(user)
    assert (await store.users.update(user.id, email=None)).email is None
    assert (await store.users.get(user.id)).email is None


async def test_update_with_nothing_to_change_returns_the_user(store: Store) -> None:
    user = make_user()
    await store.users.add(user)
    assert await store.users.update(user.id) == user


async def test_update_of_a_missing_user_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.users.update(UserId("nobody"), disabled=True)
    with pytest.raises(NotFound):
        await store.users.update(UserId("nobody"))


async def test_count_admins_counts_enabled_admins_only(store: Store) -> None:
    assert await store.users.count_admins() == 0
    await store.users.add(make_user(is_admin=True))
    await store.users.add(make_user(is_admin=True, disabled=True))
    await store.users.add(make_user(is_admin=False))
    assert await store.users.count_admins() == 1
