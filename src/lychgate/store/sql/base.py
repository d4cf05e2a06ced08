"""What every SQL repository shares: an engine, error translation, and short helpers.

Reads run on a plain connection; writes run in a transaction of their own. A state change is
one conditional ``UPDATE ... WHERE <from-state> ... RETURNING``, so it is atomic on both
backends without an explicit lock: PostgreSQL re-checks the ``WHERE`` clause of a row that a
concurrent transaction changed (READ COMMITTED, "EvalPlanQual"), and SQLite runs one writer at
a time. We never read a row and then write it in the same transaction: under SQLite's WAL a
reader that later tries to write can fail at once with ``SQLITE_BUSY_SNAPSHOT``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import Row, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable

from lychgate.store.errors import translating
from lychgate.store.schema import config_changes

BUMP: Final = (
    update(config_changes)
    .where(config_changes.c.id == 1)
    .values(version=config_changes.c.version + 1)
)
# The counter's value, as a column value: after BUMP, in the same transaction, it is the value
# this transaction set (users.changed_in).
CURRENT: Final = select(config_changes.c.version).where(config_changes.c.id == 1).scalar_subquery()


class _Unmatched(Exception):
    """A config write matched no row: leave the transaction, so its bump is rolled back."""


class SqlRepository:
    """Base for the SQL repositories. ``TABLE`` and ``FIELDS`` name the error context."""

    __slots__ = ("_engine",)

    TABLE: str = ""
    FIELDS: tuple[str, ...] = ("id",)  # the primary key first, then the unique columns

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def _upsert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        """An ``INSERT`` into ``table`` in the backend's own dialect, which can say
        ``ON CONFLICT`` (the same clause on both)."""
        if self._engine.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    async def _one(self, stmt: Executable) -> Row[Any] | None:
        """The first row a read returns, or ``None``."""
        with translating(self.TABLE, self.FIELDS):
            async with self._engine.connect() as conn:
                result = await conn.execute(stmt)
                return result.first()

    async def _all(self, stmt: Executable) -> Sequence[Row[Any]]:
        """Every row a read returns."""
        with translating(self.TABLE, self.FIELDS):
            async with self._engine.connect() as conn:
                result = await conn.execute(stmt)
                return result.all()

    async def _scalar(self, stmt: Executable) -> Any:
        """The single value a read returns."""
        with translating(self.TABLE, self.FIELDS):
            async with self._engine.connect() as conn:
                return await conn.scalar(stmt)

    async def _write(self, stmt: Executable, *, config: bool = False) -> int:
        """Run one write in its own transaction; returns the number of rows it matched.

        ``config``: the write changes what the gateways' snapshot is built from (users, apps),
        so the change counter is bumped in the same transaction, first: the bump locks the
        counter's row until commit, so such writes commit in counter order, and ``stmt`` can
        record the new value (:data:`CURRENT`). A write that matched no row is rolled back,
        bump and all.
        """
        with translating(self.TABLE, self.FIELDS), contextlib.suppress(_Unmatched):
            async with self._engine.begin() as conn:
                if config:
                    await conn.execute(BUMP)
                result = await conn.execute(stmt)
                if config and not result.rowcount:
                    raise _Unmatched  # rolls the bump back
                return result.rowcount
        return 0

    async def _write_returning(
        self, stmt: Executable, *, config: bool = False
    ) -> Sequence[Row[Any]]:
        """Run one write with ``RETURNING`` in its own transaction; returns the rows."""
        with translating(self.TABLE, self.FIELDS), contextlib.suppress(_Unmatched):
            async with self._engine.begin() as conn:
                if config:
                    await conn.execute(BUMP)
                rows = (await conn.execute(stmt)).all()
                if config and not rows:
                    raise _Unmatched
                return rows
        return []
