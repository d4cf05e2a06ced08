"""Alembic migrations, run when the store opens.

The migration scripts live in ``store/migrations/versions`` inside the package; no
``alembic.ini`` is needed at run time. Alembic reads those scripts from disk, which must not
happen on the event loop. So we split the work:

1. In a worker thread (``asyncio.to_thread``), load the script directory and import every
   revision. After this, Alembic has everything in memory.
2. On the loop, in one transaction on the store's own engine, run the upgrade through
   ``AsyncConnection.run_sync``: the DDL goes through the async driver like any other query.

On PostgreSQL, a transaction-scoped advisory lock serialises replicas that start together, and
the whole upgrade commits or rolls back as one (PostgreSQL has transactional DDL). SQLite has
neither; there a single process opens the file first (``lychgate init`` or ``serve``).

Alembic's ``op`` module is a process-global proxy bound to one migration at a time, so
migrations that could interleave on one event loop (two stores opened together) take a
per-loop lock.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from alembic.config import Config
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext, RevisionStep
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from lychgate.errors import StoreError
from lychgate.store.errors import translating
from lychgate.store.schema import metadata

MIGRATIONS_DIR: Final = Path(__file__).parent / "migrations"

# pg_advisory_xact_lock key: "lych" in ASCII, so it is recognisable in pg_locks.
_PG_LOCK_KEY: Final = 0x6C796368

_loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations, for tooling (e.g. autogenerate).

    ``url``, when given, becomes ``sqlalchemy.url`` for ``migrations/env.py``.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolation: a literal "%" (e.g. in a password) must be doubled.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def load_scripts() -> ScriptDirectory:
    """Read every revision script from disk. Blocking: call it in a worker thread."""
    scripts = ScriptDirectory.from_config(alembic_config())
    scripts.get_heads()  # builds the revision map, importing every revision module now
    return scripts


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the database to the newest revision. Idempotent."""
    scripts = await asyncio.to_thread(load_scripts)
    async with _migration_lock():
        with translating("alembic_version"):
            async with engine.begin() as conn:
                await conn.run_sync(_upgrade, scripts)


async def check_current(engine: AsyncEngine) -> None:
    """Raise :class:`StoreError` unless the database is at the newest revision."""
    scripts = await asyncio.to_thread(load_scripts)
    with translating("alembic_version"):
        async with engine.connect() as conn:
            current = await conn.run_sync(_current_heads)
    expected = set(scripts.get_heads())
    if set(current) != expected:
        raise StoreError(
            f"database schema is at {sorted(current) or 'nothing'}, this version needs "
            f"{sorted(expected)}: open the store with migrations enabled",
            field="database_url",
        )


def _migration_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _loop_locks.get(loop)
    if lock is None:
        lock = _loop_locks[loop] = asyncio.Lock()
    return lock


def _current_heads(conn: Connection) -> tuple[str, ...]:
    return MigrationContext.configure(conn).get_current_heads()


def _upgrade(conn: Connection, scripts: ScriptDirectory) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})

    def steps(heads: tuple[str, ...], _context: MigrationContext) -> Iterable[RevisionStep]:
        # What ``alembic.command.upgrade`` does; the revisions are already in memory.
        try:
            return scripts._upgrade_revs("head", heads)  # type: ignore[arg-type]
        except CommandError as exc:  # e.g. a database migrated by a newer Lychgate
            raise StoreError(f"cannot migrate the database: {exc}") from exc

    context = MigrationContext.configure(
        connection=conn,
        opts={"fn": steps, "target_metadata": metadata, "script": scripts},
    )
    with Operations.context(context):
        context.run_migrations()
