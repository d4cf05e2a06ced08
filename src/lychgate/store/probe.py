"""What a database already holds, asked without migrating it or creating anything.

``lychgate init`` asks before it makes new deployment secrets (secrets.json): a database that
already holds users or signing keys belongs to a deployment whose nodes have secrets of their
own, and a node with different ones would serve different keys. authz asks at start, to warn
about a database that holds no signing key.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Table, func, inspect, select

from lychgate.store.engine import make_engine
from lychgate.store.errors import translating
from lychgate.store.schema import signing_keys, users
from lychgate.store.url import backend_of, normalize_url, redact


@dataclass(frozen=True, slots=True)
class Holdings:
    url: str  # the database, its password redacted
    users: int
    signing_keys: int

    @property
    def is_deployment(self) -> bool:
        """Whether a deployment has used the database (``lychgate init`` ran on it)."""
        return self.users > 0 or self.signing_keys > 0


async def holdings(url: str) -> Holdings:
    """How many users and signing keys the database at ``url`` holds; zero for a database
    with no tables, and for an SQLite file that does not exist (it is not created)."""
    normalized = await asyncio.to_thread(normalize_url, url)  # SQLite: resolves the path
    where = redact(normalized)
    if backend_of(normalized) == "sqlite" and not await asyncio.to_thread(
        _sqlite_file_exists, normalized.database
    ):
        return Holdings(where, 0, 0)
    engine = await asyncio.to_thread(make_engine, normalized)
    try:
        with translating("store"):
            async with engine.connect() as conn:
                counts = await conn.run_sync(_count, (users, signing_keys))
    finally:
        await engine.dispose()
    return Holdings(where, users=counts[0], signing_keys=counts[1])


def _sqlite_file_exists(database: str | None) -> bool:
    return bool(database) and database != ":memory:" and Path(str(database)).exists()


def _count(conn: Connection, tables: tuple[Table, ...]) -> list[int]:
    present = set(inspect(conn).get_table_names())
    return [
        int(conn.scalar(select(func.count()).select_from(table)) or 0)
        if table.name in present
        else 0
        for table in tables
    ]
