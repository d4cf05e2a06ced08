"""Registrations handed over by a customer's system, over both backends."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from fixtures.store import T0, make_api_key, make_registration, make_user
from lychgate.domain import RegistrationStatus, User
from lychgate.errors import Conflict, NotFound
from lychgate.ids import RegistrationId, UserId
from lychgate.store import Store

SOON = T0 + timedelta(minutes=1)


async def _user(store: Store) -> User:
    user = make_user()
    await store.users.add(user)
    return user


async def test_round_trip_with_an_api_key(store: Store) -> None:
    key = make_api_key()
    await store.api_keys.add(key)
    registration = make_registration(api_key_id=key.id, email=None)
    await store.registrations.create(registration)
    assert await store.registrations.get(registration.id) == registration
    assert await store.registrations.get_by_token_hash(registration.token_hash) == registration


async def test_missing_registration(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.registrations.get(RegistrationId("nothing"))
    assert await store.registrations.get_by_token_hash(b"unknown") is None


async def test_duplicate_token_hash_is_a_conflict(store: Store) -> None:
    registration = make_registration()
    await store.registrations.create(registration)
    with pytest.raises(Conflict) as info:
        await store.registrations.create(make_registration(token_hash=registration.token_hash))
    assert info.value.field == "token_hash"


async def test_mark_enrolled_once(store: Store) -> None:
    user = await _user(store)
    registration = make_registration()
    await store.registrations.create(registration)
    enroll = store.registrations.mark_enrolled
    results = await asyncio.gather(
        *(enroll(registration.id, user_id=user.id, now=SOON) for _ in range(4))
    )
    assert sorted(results) == [False] * 3 + [True]
    stored = await store.registrations.get(registration.id)
    assert (stored.status, stored.user_id) == (RegistrationStatus.ENROLLED, user.id)


async def test_mark_enrolled_at_expiry_fails(store: Store) -> None:
    user = await _user(store)
    registration = make_registration()
    await store.registrations.create(registration)
    assert not await store.registrations.mark_enrolled(
        registration.id, user_id=user.id, now=registration.expires_at
    )
    assert (await store.registrations.get(registration.id)).status is RegistrationStatus.PENDING


async def test_mark_enrolled_for_a_missing_user_is_not_found(store: Store) -> None:
    registration = make_registration()
    await store.registrations.create(registration)
    with pytest.raises(NotFound):
        await store.registrations.mark_enrolled(registration.id, user_id=UserId("nobody"), now=SOON)
    assert (await store.registrations.get(registration.id)).status is RegistrationStatus.PENDING
