"""Devices, over both backends, including WebAuthn signature-counter clone detection."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from fixtures.store import T0, make_device, make_user
from lychgate.domain import Device, User
from lychgate.errors import Conflict, NotFound, UsageError
from lychgate.ids import DeviceId, UserId
from lychgate.store import Store

LATER = T0 + timedelta(minutes=5)


async def _user(store: Store) -> User:
    user = make_user()
    await store.users.add(user)
    return user


async def _device(store: Store, **fields: object) -> Device:
    device = make_device((await _user(store)).id, **fields)
    await store.devices.add(device)
    return device


async def test_round_trip_passkey_and_device_key(store: Store) -> None:
    user = await _user(store)
    passkey = make_device(user.id, sign_count=7, last_used_at=T0)
    device_key = make_device(
        user.id, kind="device_key", credential_id=None, public_key=b"\x00" * 32
    )
    await store.devices.add(passkey)
    await store.devices.add(device_key)
    assert await store.devices.get(passkey.id) == passkey
    assert await store.devices.get(device_key.id) == device_key


async def test_missing_device_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.devices.get(DeviceId("nothing"))


async def test_device_of_a_missing_user_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.devices.add(make_device(UserId("nobody")))


async def test_an_unknown_kind_is_refused_by_the_schema(store: Store) -> None:
    user = await _user(store)
    with pytest.raises(UsageError):
        await store.devices.add(make_device(user.id, kind="laptop"))


async def test_duplicate_credential_id_is_a_conflict(store: Store) -> None:
    device = await _device(store)
    with pytest.raises(Conflict) as info:
        await store.devices.add(make_device(device.user_id, credential_id=device.credential_id))
    assert info.value.field == "credential_id"


async def test_get_by_credential_id(store: Store) -> None:
    device = await _device(store)
    assert device.credential_id is not None
    assert await store.devices.get_by_credential_id(device.credential_id) == device
    assert await store.devices.get_by_credential_id(b"unknown") is None


async def test_list_for_user_hides_revoked_unless_asked(store: Store) -> None:
    user = await _user(store)
    first = make_device(user.id, created_at=T0)
    second = make_device(user.id, created_at=T0 + timedelta(seconds=1))
    for device in (second, first):
        await store.devices.add(device)
    await _device(store)  # someone else's
    assert await store.devices.revoke(first.id)
    assert list(await store.devices.list_for_user(user.id)) == [second]
    listed = await store.devices.list_for_user(user.id, include_revoked=True)
    assert [d.id for d in listed] == [first.id, second.id]


async def test_record_use_stores_a_growing_counter(store: Store) -> None:
    device = await _device(store, sign_count=3)
    assert await store.devices.record_use(device.id, sign_count=4, now=LATER)
    stored = await store.devices.get(device.id)
    assert (stored.sign_count, stored.last_used_at) == (4, LATER)


@pytest.mark.parametrize(("stored", "new"), [(5, 5), (5, 4), (5, 0), (1, 0)])
async def test_record_use_refuses_a_counter_that_did_not_grow(
    store: Store, stored: int, new: int
) -> None:
    device = await _device(store, sign_count=stored)
    assert not await store.devices.record_use(device.id, sign_count=new, now=LATER)
    assert await store.devices.get(device.id) == device


@pytest.mark.parametrize(("stored", "new"), [(0, 0), (0, 1), (41, 42)])
async def test_record_use_accepts_no_counter_or_a_growing_one(
    store: Store, stored: int, new: int
) -> None:
    device = await _device(store, sign_count=stored)
    assert await store.devices.record_use(device.id, sign_count=new, now=LATER)
    assert (await store.devices.get(device.id)).sign_count == new


async def test_device_keys_have_no_counter_check(store: Store) -> None:
    device = await _device(store, kind="device_key", credential_id=None, sign_count=9)
    assert await store.devices.record_use(device.id, sign_count=0, now=LATER)


async def test_record_use_of_a_revoked_device_is_refused(store: Store) -> None:
    device = await _device(store)
    await store.devices.revoke(device.id)
    assert not await store.devices.record_use(device.id, sign_count=1, now=LATER)
    assert (await store.devices.get(device.id)).last_used_at is None


async def test_record_use_of_a_missing_device_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.devices.record_use(DeviceId("nothing"), sign_count=1, now=LATER)


async def test_concurrent_uses_of_one_counter_value_let_exactly_one_through(
    store: Store,
) -> None:
    # Two assertions carrying the same counter: a cloned authenticator racing the real one.
    device = await _device(store, sign_count=10)
    results = await asyncio.gather(
        *(store.devices.record_use(device.id, sign_count=11, now=LATER) for _ in range(6))
    )
    assert sorted(results) == [False] * 5 + [True]


async def test_revoke_changes_once(store: Store) -> None:
    device = await _device(store)
    assert await store.devices.revoke(device.id)
    assert not await store.devices.revoke(device.id)
    assert await store.devices.get(device.id) == replace(device, revoked=True)
    assert not await store.devices.revoke(DeviceId("nothing"))
