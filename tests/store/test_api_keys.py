"""API keys (hashes only), over both backends."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from fixtures.store import T0, make_api_key
from lychgate.errors import Conflict, NotFound
from lychgate.ids import ApiKeyId
from lychgate.store import Store


async def test_round_trip(store: Store) -> None:
    key = make_api_key(last_used_at=T0)
    await store.api_keys.add(key)
    assert await store.api_keys.get(key.id) == key
    assert await store.api_keys.get_by_hash(key.key_hash) == key


async def test_missing_key(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.api_keys.get(ApiKeyId("nothing"))
    assert await store.api_keys.get_by_hash(b"unknown") is None


async def test_duplicate_hash_is_a_conflict_without_the_hash_in_the_error(store: Store) -> None:
    key = make_api_key()
    await store.api_keys.add(key)
    with pytest.raises(Conflict) as info:
        await store.api_keys.add(make_api_key(key_hash=key.key_hash))
    assert info.value.field == "key_hash"
    # hide_parameters: the bound values never reach the driver error's text.
    chained = str(info.value.__cause__)
    assert key.key_hash.hex() not in chained
    assert repr(key.key_hash) not in chained


async def test_a_revoked_key_authenticates_nothing(store: Store) -> None:
    key = make_api_key()
    await store.api_keys.add(key)
    assert await store.api_keys.revoke(key.id)
    assert not await store.api_keys.revoke(key.id)
    assert await store.api_keys.get_by_hash(key.key_hash) is None
    assert await store.api_keys.get(key.id) == replace(key, revoked=True)
    assert not await store.api_keys.revoke(ApiKeyId("nothing"))


async def test_list_is_oldest_first(store: Store) -> None:
    keys = [make_api_key(created_at=T0 + timedelta(seconds=i)) for i in range(3)]
    for key in reversed(keys):
        await store.api_keys.add(key)
    assert list(await store.api_keys.list()) == keys


async def test_touch_records_the_last_use(store: Store) -> None:
    key = make_api_key()
    await store.api_keys.add(key)
    await store.api_keys.touch(key.id, T0 + timedelta(hours=1))
    assert (await store.api_keys.get(key.id)).last_used_at == T0 + timedelta(hours=1)
