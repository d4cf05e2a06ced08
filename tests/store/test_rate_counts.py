"""Shared rate-limit counters, over both backends, including concurrent adds."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fixtures.store import T0
from lychgate.store import Store

MINUTE = timedelta(minutes=1)


async def test_add_counts_per_scope_key_and_window(store: Store) -> None:
    counts = store.rate_counts
    assert await counts.add("login", "k1", T0, 1) == 1
    assert await counts.add("login", "k1", T0, 1) == 2
    assert await counts.add("login", "k2", T0, 1) == 1  # another key
    assert await counts.add("approve", "k1", T0, 1) == 1  # another scope
    assert await counts.add("login", "k1", T0 + MINUTE, 1) == 1  # another window
    assert await counts.get("login", "k1", T0) == 2
    assert await counts.get("login", "nobody", T0) == 0


async def test_taking_back_never_goes_below_zero(store: Store) -> None:
    counts = store.rate_counts
    assert await counts.add("enroll", "k", T0, -1) == 0  # nothing to take back: no row of -1
    assert await counts.add("enroll", "k", T0, 1) == 1
    assert await counts.add("enroll", "k", T0, -1) == 0
    assert await counts.add("enroll", "k", T0, -1) == 0
    assert await counts.get("enroll", "k", T0) == 0


async def test_concurrent_adds_are_each_counted_once(store: Store) -> None:
    results = await asyncio.gather(*(store.rate_counts.add("login", "k", T0, 1) for _ in range(20)))
    assert sorted(results) == list(range(1, 21))
    assert await store.rate_counts.get("login", "k", T0) == 20


async def test_delete_before_drops_only_older_windows(store: Store) -> None:
    counts = store.rate_counts
    for start in (T0 - 2 * MINUTE, T0 - MINUTE, T0):
        await counts.add("login", "k", start, 1)
    assert await counts.delete_before(T0 - MINUTE) == 1
    assert await counts.get("login", "k", T0 - 2 * MINUTE) == 0
    assert await counts.get("login", "k", T0 - MINUTE) == 1
    assert await counts.get("login", "k", T0) == 1
