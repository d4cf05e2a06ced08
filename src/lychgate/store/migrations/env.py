"""Alembic environment, for tooling only.

Lychgate itself never runs this file: :mod:`lychgate.store.migrate` drives the migration
context directly when the store opens. This file serves the Alembic command API, e.g. to
autogenerate a new revision against a scratch database::

    from alembic import command
    from lychgate.store.migrate import alembic_config

    command.revision(
        alembic_config("sqlite+aiosqlite:////tmp/scratch.db"), "add a column", autogenerate=True
    )

Review every generated revision by hand and test it on both backends. ``render_as_batch`` makes
autogenerate emit SQLite-safe "move and copy" table changes.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from lychgate.store.engine import make_engine
from lychgate.store.schema import metadata
from lychgate.store.url import normalize_url


def _configure_and_run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online(engine: AsyncEngine) -> None:
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_configure_and_run)
    finally:
        await engine.dispose()


def _main() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise SystemExit("set sqlalchemy.url (see lychgate.store.migrate.alembic_config)")
    if context.is_offline_mode():
        context.configure(
            url=normalize_url(url),
            target_metadata=metadata,
            literal_binds=True,
            render_as_batch=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    else:
        # Build the engine and import every revision now, before a loop runs in this thread:
        # both touch the file system, which the store never does on a running loop.
        engine = make_engine(normalize_url(url))
        context.script.get_heads()
        asyncio.run(_run_online(engine))


_main()
