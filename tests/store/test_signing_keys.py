"""Signing keys and their rotation, over both backends."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from fixtures.store import T0, make_signing_key
from lychgate.errors import Conflict
from lychgate.ids import KeyId
from lychgate.store import Store

HOUR = timedelta(hours=1)


async def test_round_trip_keeps_the_private_jwk_secret(store: Store) -> None:
    key = make_signing_key()
    await store.signing_keys.add(key)
    [stored] = await store.signing_keys.list()
    assert stored == key
    assert stored.private_jwk.reveal() == key.private_jwk.reveal()
    assert key.private_jwk.reveal() not in repr(stored)


async def test_duplicate_kid_is_a_conflict(store: Store) -> None:
    key = make_signing_key()
    await store.signing_keys.add(key)
    with pytest.raises(Conflict) as info:
        await store.signing_keys.add(make_signing_key(kid=key.kid))
    assert info.value.field == "kid"


async def test_list_is_oldest_first(store: Store) -> None:
    keys = [make_signing_key(created_at=T0 + i * HOUR) for i in range(3)]
    for key in reversed(keys):
        await store.signing_keys.add(key)
    assert [k.kid for k in await store.signing_keys.list()] == [k.kid for k in keys]


async def test_rotate_adds_the_new_key_and_retires_the_active_ones(store: Store) -> None:
    old = make_signing_key(created_at=T0)
    long_retired = make_signing_key(
        created_at=T0 - 10 * HOUR, retired_at=T0 - 5 * HOUR, verify_until=T0 + HOUR
    )
    await store.signing_keys.add(old)
    await store.signing_keys.add(long_retired)
    new = make_signing_key(created_at=T0 + HOUR)
    retired = await store.signing_keys.rotate(new, retired_at=T0 + HOUR, verify_until=T0 + 3 * HOUR)
    assert list(retired) == [old.kid]
    keys = {k.kid: k for k in await store.signing_keys.list()}
    assert keys[new.kid] == new
    assert (keys[old.kid].retired_at, keys[old.kid].verify_until) == (T0 + HOUR, T0 + 3 * HOUR)
    assert keys[long_retired.kid] == long_retired
    assert [k.kid for k in keys.values() if k.retired_at is None] == [new.kid]


async def test_a_failed_rotation_changes_nothing(store: Store) -> None:
    old = make_signing_key()
    await store.signing_keys.add(old)
    clash = make_signing_key(kid=old.kid, created_at=T0 + HOUR)
    with pytest.raises(Conflict):
        await store.signing_keys.rotate(clash, retired_at=T0 + HOUR, verify_until=T0 + 2 * HOUR)
    assert list(await store.signing_keys.list()) == [old]


async def test_retire_once(store: Store) -> None:
    key = make_signing_key()
    await store.signing_keys.add(key)
    assert await store.signing_keys.retire(key.kid, retired_at=T0, verify_until=T0 + HOUR)
    assert not await store.signing_keys.retire(key.kid, retired_at=T0, verify_until=T0 + HOUR)
    assert not await store.signing_keys.retire(
        KeyId("nothing"), retired_at=T0, verify_until=T0 + HOUR
    )


async def test_prune_drops_retired_keys_that_no_longer_verify(store: Store) -> None:
    active = make_signing_key()
    done = make_signing_key(retired_at=T0, verify_until=T0 + HOUR)
    pending = make_signing_key(retired_at=T0, verify_until=T0 + 2 * HOUR)
    for key in (active, done, pending):
        await store.signing_keys.add(key)
    assert await store.signing_keys.prune(T0 + HOUR) == 1
    assert {k.kid for k in await store.signing_keys.list()} == {active.kid, pending.kid}


async def test_replace_all_leaves_only_the_new_key(store: Store) -> None:
    active = make_signing_key(created_at=T0)
    retired = make_signing_key(
        created_at=T0 - 10 * HOUR, retired_at=T0 - 5 * HOUR, verify_until=T0 + HOUR
    )
    for key in (active, retired):
        await store.signing_keys.add(key)
    new = make_signing_key(created_at=T0 + HOUR)
    dropped = await store.signing_keys.replace_all(new)
    assert sorted(dropped) == sorted([active.kid, retired.kid])
    assert list(await store.signing_keys.list()) == [new]


async def test_rotations_at_once_leave_one_key_unretired(store: Store) -> None:
    # Without taking turns, PostgreSQL's second UPDATE would not see the first one's new key,
    # which would stay unretired (and published) until some later rotation.
    await store.signing_keys.add(make_signing_key(created_at=T0))
    for round_ in range(3):
        news = [make_signing_key(created_at=T0 + (round_ + 1) * HOUR) for _ in range(4)]
        await asyncio.gather(
            *(
                store.signing_keys.rotate(k, retired_at=k.created_at, verify_until=T0 + 9 * HOUR)
                for k in news
            )
        )
        unretired = [k.kid for k in await store.signing_keys.list() if k.retired_at is None]
        assert len(unretired) == 1
