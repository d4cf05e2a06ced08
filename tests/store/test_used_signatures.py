"""Used device signatures, over both backends: each is recorded once, even by racers."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

import pytest

from fixtures.store import T0, make_device, make_user
from lychgate.errors import NotFound
from lychgate.ids import DeviceId
from lychgate.store import Store, open_store

UNTIL = T0 + timedelta(seconds=60)


def _hash(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


async def _device(store: Store) -> DeviceId:
    user = make_user()
    await store.users.add(user)
    device = make_device(user.id, kind="device_key", credential_id=None)
    await store.devices.add(device)
    return device.id


async def test_a_signature_is_recorded_once_per_device(store: Store) -> None:
    used = store.used_signatures
    first, second = await _device(store), await _device(store)
    assert await used.use(first, _hash("a"), until=UNTIL)
    assert not await used.use(first, _hash("a"), until=UNTIL)  # the replay
    assert not await used.use(first, _hash("a"), until=UNTIL + timedelta(hours=1))
    assert await used.use(first, _hash("b"), until=UNTIL)  # another signature
    assert await used.use(second, _hash("a"), until=UNTIL)  # another device


async def test_racing_uses_of_one_signature_have_one_winner(store: Store) -> None:
    device = await _device(store)
    results = await asyncio.gather(
        *(store.used_signatures.use(device, _hash("x"), until=UNTIL) for _ in range(12))
    )
    assert sorted(results) == [False] * 11 + [True]


async def test_two_stores_on_one_database_share_what_was_used(store_url: str) -> None:
    # Two authz replicas, each with its own connection pool, on the same database.
    async with await open_store(store_url) as one, await open_store(store_url) as other:
        device = await _device(one)
        results = await asyncio.gather(
            one.used_signatures.use(device, _hash("x"), until=UNTIL),
            other.used_signatures.use(device, _hash("x"), until=UNTIL),
        )
        assert sorted(results) == [False, True]
        assert not await other.used_signatures.use(device, _hash("x"), until=UNTIL)


async def test_an_unknown_device_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.used_signatures.use(DeviceId("dev_gone"), _hash("x"), until=UNTIL)


async def test_delete_expired_forgets_only_what_ended_before(store: Store) -> None:
    used = store.used_signatures
    device = await _device(store)
    for name, until in (("old", T0 - timedelta(seconds=1)), ("edge", T0), ("live", UNTIL)):
        await used.use(device, _hash(name), until=until)
    assert await used.delete_expired(T0) == 1
    assert await used.use(device, _hash("old"), until=UNTIL)  # forgotten: recorded anew
    assert not await used.use(device, _hash("edge"), until=UNTIL)
    assert not await used.use(device, _hash("live"), until=UNTIL)
    assert await used.delete_expired(T0) == 0
