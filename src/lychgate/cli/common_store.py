"""Opening the configured store from a command."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from lychgate.config import Settings
from lychgate.deployment.layout import Layout
from lychgate.errors import ConfigError
from lychgate.store import Store, open_store

T = TypeVar("T")


def now() -> datetime:
    return datetime.now(UTC)


def require_deployment(settings: Settings) -> None:
    """Refuse a data directory that holds no deployment, on the embedded SQLite store.

    Opening the store there would create an empty database: a mistyped ``--dir`` would get
    "no users yet" and a stray ``lychgate.db``, or, for a directory that does not exist, a
    database error that names neither the directory nor the fix. ``lychgate init`` writes
    ``lychgate.toml`` and ``secrets.json``; with an explicit ``database_url`` the store is
    elsewhere and the directory may hold no more than the settings.
    """
    layout = Layout(settings.data_dir)
    if settings.database_url is None and not (
        layout.config_file.exists() or layout.secrets_file.exists()
    ):
        raise ConfigError(
            f"no deployment in {settings.data_dir}: give its --dir (or LYCHGATE_DATA_DIR), "
            f"or create one with `lychgate init --dir {settings.data_dir}`",
            field="data_dir",
        )


def with_store(settings: Settings, action: Callable[[Store], Awaitable[T]]) -> T:
    """Open the deployment's store (migrating it), run ``action``, close it, return the result.

    Raises :class:`ConfigError` where there is no deployment (:func:`require_deployment`)."""
    require_deployment(settings)

    async def run() -> T:
        async with await open_store(settings.effective_database_url.reveal()) as store:
            return await action(store)

    return asyncio.run(run())
