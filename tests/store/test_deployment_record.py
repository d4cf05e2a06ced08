"""The deployment's record of its secrets' fingerprint, on both backends, and its migration."""

from __future__ import annotations

import asyncio

from alembic import command
from sqlalchemy import inspect

from lychgate.store import Store, open_store
from lychgate.store.migrate import alembic_config

A, B = "a" * 64, "b" * 64


async def test_nothing_is_recorded_in_a_new_database(store: Store) -> None:
    assert await store.deployment.secrets_fingerprint() is None


async def test_the_first_record_stands_and_later_ones_get_it_back(store: Store) -> None:
    assert await store.deployment.record_secrets_fingerprint(A) == A
    assert await store.deployment.record_secrets_fingerprint(B) == A  # a conflict: A stands
    assert await store.deployment.record_secrets_fingerprint(A) == A
    assert await store.deployment.secrets_fingerprint() == A


async def test_two_nodes_recording_at_once_both_get_the_same_one(store: Store) -> None:
    got = await asyncio.gather(
        store.deployment.record_secrets_fingerprint(A),
        store.deployment.record_secrets_fingerprint(B),
    )
    recorded = await store.deployment.secrets_fingerprint()
    assert recorded in (A, B)
    assert list(got) == [recorded, recorded]


async def test_a_replace_records_over_the_old_one_or_over_none(store: Store) -> None:
    await store.deployment.replace_secrets_fingerprint(A)  # none before: an insert
    assert await store.deployment.secrets_fingerprint() == A
    await store.deployment.replace_secrets_fingerprint(B)
    assert await store.deployment.secrets_fingerprint() == B
    assert await store.deployment.record_secrets_fingerprint(A) == B


def _tables(conn: object) -> list[str]:
    return list(inspect(conn).get_table_names())


async def test_migration_0008_adds_the_table_and_takes_it_away(fresh_store_url: str) -> None:
    # The command API runs env.py, which runs its own loop: keep it off the test's loop.
    config = alembic_config(fresh_store_url)
    await asyncio.to_thread(command.upgrade, config, "0007")
    async with await open_store(fresh_store_url) as store:  # upgrades to 0008
        async with store.engine.connect() as conn:
            assert "deployment" in await conn.run_sync(_tables)
        await store.deployment.record_secrets_fingerprint(A)
    await asyncio.to_thread(command.downgrade, config, "0007")
    async with await open_store(fresh_store_url) as store:
        assert await store.deployment.secrets_fingerprint() is None  # dropped with its table
