"""One-time codes: redeemed at most once, over both backends."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from fixtures.store import T0, make_code
from lychgate.errors import Conflict
from lychgate.store import Store

SOON = T0 + timedelta(seconds=5)


async def test_redeem_returns_the_code_marked_used(store: Store) -> None:
    code = make_code("handoff")
    await store.one_time_codes.add(code)
    assert await store.one_time_codes.redeem(code.code_hash, "handoff", SOON) == replace(
        code, used_at=SOON
    )


async def test_replay_gets_nothing(store: Store) -> None:
    code = make_code()
    await store.one_time_codes.add(code)
    assert await store.one_time_codes.redeem(code.code_hash, code.purpose, SOON) is not None
    assert await store.one_time_codes.redeem(code.code_hash, code.purpose, SOON) is None


async def test_concurrent_redeems_let_exactly_one_win(store: Store) -> None:
    code = make_code()
    await store.one_time_codes.add(code)
    results = await asyncio.gather(
        *(store.one_time_codes.redeem(code.code_hash, code.purpose, SOON) for _ in range(8))
    )
    assert sum(result is not None for result in results) == 1


async def test_wrong_purpose_gets_nothing_and_does_not_burn_the_code(store: Store) -> None:
    code = make_code("enroll")
    await store.one_time_codes.add(code)
    assert await store.one_time_codes.redeem(code.code_hash, "admin-setup", SOON) is None
    assert await store.one_time_codes.redeem(code.code_hash, "enroll", SOON) is not None


async def test_expiry_boundary(store: Store) -> None:
    at_expiry = make_code()
    just_before = make_code()
    for code in (at_expiry, just_before):
        await store.one_time_codes.add(code)
    redeem = store.one_time_codes.redeem
    assert await redeem(at_expiry.code_hash, "handoff", at_expiry.expires_at) is None
    last_moment = just_before.expires_at - timedelta(microseconds=1)
    assert await redeem(just_before.code_hash, "handoff", last_moment) is not None


async def test_unknown_code_gets_nothing(store: Store) -> None:
    assert await store.one_time_codes.redeem(b"\x00" * 32, "handoff", SOON) is None


async def test_duplicate_hash_is_a_conflict(store: Store) -> None:
    code = make_code()
    await store.one_time_codes.add(code)
    with pytest.raises(Conflict) as info:
        await store.one_time_codes.add(make_code(code_hash=code.code_hash))
    assert info.value.field == "code_hash"


async def test_delete_expired(store: Store) -> None:
    gone = make_code(expires_at=T0 + timedelta(seconds=1))
    kept = make_code(expires_at=T0 + timedelta(seconds=2))
    for code in (gone, kept):
        await store.one_time_codes.add(code)
    assert await store.one_time_codes.delete_expired(T0 + timedelta(seconds=1)) == 1
    assert await store.one_time_codes.redeem(gone.code_hash, "handoff", T0) is None
    assert await store.one_time_codes.redeem(kept.code_hash, "handoff", T0) is not None


async def test_pending_lists_only_redeemable_codes_of_the_purpose(store: Store) -> None:
    open_ = make_code("enroll", expires_at=T0 + timedelta(seconds=10))
    used = make_code("enroll", expires_at=T0 + timedelta(seconds=10))
    expired = make_code("enroll", expires_at=T0 + timedelta(seconds=1))
    other = make_code("handoff", expires_at=T0 + timedelta(seconds=10))
    for code in (open_, used, expired, other):
        await store.one_time_codes.add(code)
    assert await store.one_time_codes.redeem(used.code_hash, "enroll", T0) is not None
    pending = await store.one_time_codes.pending("enroll", T0 + timedelta(seconds=1))
    assert [c.code_hash for c in pending] == [open_.code_hash]


async def test_discard_deletes_the_codes_named_and_counts_them(store: Store) -> None:
    a, b, c = make_code("enroll"), make_code("enroll"), make_code("enroll")
    for code in (a, b, c):
        await store.one_time_codes.add(code)
    assert await store.one_time_codes.discard([]) == 0
    assert await store.one_time_codes.discard([a.code_hash, b.code_hash, b"\x01" * 32]) == 2
    assert await store.one_time_codes.redeem(a.code_hash, "enroll", T0) is None
    assert await store.one_time_codes.redeem(b.code_hash, "enroll", T0) is None
    assert await store.one_time_codes.redeem(c.code_hash, "enroll", T0) is not None
