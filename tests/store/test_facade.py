"""Opening, migrating and closing the store, on both backends."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from blockbuster import BlockBuster
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from fixtures.store import PG_ENV, _drop_database, allow_asyncpg_config_reads, make_user
from lychgate.errors import ConfigError, StoreError
from lychgate.store import Store, open_store
from lychgate.store.schema import metadata

PASSWORD = "hunter2-s3cret"


def _diff(conn: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(conn), metadata))


async def test_migrated_database_matches_the_table_models(store: Store) -> None:
    async with store.engine.connect() as conn:
        assert await conn.run_sync(_diff) == []


async def test_migrating_from_nothing_creates_the_schema(fresh_store_url: str) -> None:
    async with await open_store(fresh_store_url) as store, store.engine.connect() as conn:
        assert await conn.run_sync(_diff) == []
        assert await conn.scalar(text("SELECT version_num FROM alembic_version")) == "0012"


async def test_opening_twice_is_fine_and_keeps_rows(fresh_store_url: str) -> None:
    store_url = fresh_store_url
    first = await open_store(store_url)
    user = make_user()
    await first.users.add(user)
    await first.close()
    async with await open_store(store_url) as second:
        assert await second.users.get(user.id) == user
    async with await open_store(store_url, migrate=False) as third:
        assert await third.users.get(user.id) == user


async def test_concurrent_opens_of_a_new_database_all_succeed(fresh_store_url: str) -> None:
    url = fresh_store_url
    stores = await asyncio.gather(*(open_store(url) for _ in range(3)))
    for store in stores:
        assert await store.users.count_admins() == 0
        await store.close()


async def test_without_migrations_an_empty_database_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="schema"):
        await open_store(f"sqlite:///{tmp_path / 'empty.db'}", migrate=False)


async def test_a_database_from_a_newer_version_is_refused(fresh_store_url: str) -> None:
    async with await open_store(fresh_store_url) as store, store.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'from_the_future'"))
    with pytest.raises(StoreError):
        await open_store(fresh_store_url)
    with pytest.raises(StoreError):
        await open_store(fresh_store_url, migrate=False)


async def test_bad_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        await open_store(f"mysql://root:{PASSWORD}@localhost/db")
    assert info.value.field == "database_url"
    assert PASSWORD not in str(info.value)


async def test_context_manager_closes_every_connection(tmp_path: Path) -> None:
    path = tmp_path / "closing.db"
    wal = path.with_name(path.name + "-wal")
    async with await open_store(f"sqlite:///{path}") as store:
        await store.users.add(make_user())
        assert await asyncio.to_thread(wal.exists)
    # SQLite checkpoints and deletes the WAL when its last connection closes.
    assert not await asyncio.to_thread(wal.exists)


async def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_a_busy_timeout(
    tmp_path: Path,
) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'wal.db'}")
    async with store, store.engine.connect() as conn:
        assert await conn.scalar(text("PRAGMA journal_mode")) == "wal"
        assert await conn.scalar(text("PRAGMA foreign_keys")) == 1
        assert await conn.scalar(text("PRAGMA busy_timeout")) == 5000
    assert store.backend == "sqlite"


async def _remove_database(url: str) -> None:
    """Make the database at ``url`` unreachable for new connections: SQLite's file becomes a
    directory (a missing one would be created afresh); PostgreSQL's database is dropped."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(str(parsed.database))
        await asyncio.to_thread(path.unlink)
        await asyncio.to_thread(path.mkdir)
        return
    admin = make_url(os.environ[PG_ENV]).set(drivername="postgresql")
    await _drop_database(admin.render_as_string(hide_password=False), str(parsed.database))


async def test_ping_answers_then_raises_the_store_error_once_the_database_is_gone(
    fresh_store_url: str,
) -> None:
    store = await open_store(fresh_store_url)
    try:
        await store.ping()
        await store.close()  # no pooled connection left to the old database
        await _remove_database(fresh_store_url)
        with pytest.raises(StoreError, match="database error"):
            await store.ping()
    finally:
        await store.close()


@pytest.mark.postgres
async def test_password_never_shows_in_repr_or_logs(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The test server trusts local connections, so any password is accepted.
    url = make_url(pg_url).set(password=PASSWORD).render_as_string(hide_password=False)
    caplog.set_level(logging.DEBUG)
    async with await open_store(url) as store:
        await store.ping()
        shown = [repr(store), store.url, str(store.engine.url), repr(store.engine.url)]
    assert store.backend == "postgresql"
    for text_ in [*shown, caplog.text]:
        assert PASSWORD not in text_
    assert "***" in store.url


async def test_unreachable_database_is_a_store_error_without_the_password(
    blockbuster: BlockBuster,
) -> None:
    allow_asyncpg_config_reads(blockbuster)
    # Port 1 on loopback refuses at once.
    with pytest.raises(StoreError) as info:
        await open_store(f"postgresql://u:{PASSWORD}@127.0.0.1:1/lychgate")
    assert PASSWORD not in str(info.value)
    cause = info.value.__cause__
    assert cause is not None
    assert PASSWORD not in str(cause)


async def test_driver_failures_become_store_errors(fresh_store_url: str) -> None:
    async with await open_store(fresh_store_url) as store:
        async with store.engine.begin() as conn:
            await conn.execute(text("DROP TABLE audit_log"))
        with pytest.raises(StoreError):
            await store.audit.list()
