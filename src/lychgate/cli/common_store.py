"""Opening the configured store from a command."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from lychgate.config import Settings
from lychgate.store import Store, open_store

T = TypeVar("T")


def now() -> datetime:
    return datetime.now(UTC)


def with_store(settings: Settings, action: Callable[[Store], Awaitable[T]]) -> T:
    """Open the deployment's store (migrating it), run ``action``, close it, return the result."""

    async def run() -> T:
        async with await open_store(settings.effective_database_url.reveal()) as store:
            return await action(store)

    return asyncio.run(run())
