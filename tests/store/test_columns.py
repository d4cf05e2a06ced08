"""Timestamps: stored as UTC, returned timezone-aware in UTC, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from fixtures.store import T0, make_code, make_user
from lychgate.errors import UsageError
from lychgate.store import Store

TOKYO = timezone(timedelta(hours=9))


async def test_timestamps_come_back_aware_and_utc(store: Store) -> None:
    user = make_user()
    await store.users.add(user)
    created = (await store.users.get(user.id)).created_at
    assert created.tzinfo is UTC
    assert created == T0
    assert created.microsecond == T0.microsecond


async def test_other_offsets_are_stored_as_the_same_instant_in_utc(store: Store) -> None:
    user = make_user(created_at=T0.astimezone(TOKYO))
    await store.users.add(user)
    created = (await store.users.get(user.id)).created_at
    assert created == T0
    assert created.tzinfo is UTC
    assert created.hour == T0.hour


async def test_comparisons_in_sql_respect_offsets(store: Store) -> None:
    # Expiry given in UTC, "now" given in Tokyo time one microsecond before: still valid.
    code = make_code(expires_at=T0)
    await store.one_time_codes.add(code)
    almost = (T0 - timedelta(microseconds=1)).astimezone(TOKYO)
    redeemed = await store.one_time_codes.redeem(code.code_hash, code.purpose, almost)
    assert redeemed is not None
    assert redeemed.used_at == almost
    assert redeemed.used_at.tzinfo is UTC


async def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(UsageError):
        await store.users.add(make_user(created_at=datetime(2030, 1, 1)))
    with pytest.raises(UsageError):
        await store.sessions.revoked_ids(datetime(2030, 1, 1))
