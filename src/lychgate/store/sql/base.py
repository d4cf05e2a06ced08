"""What every SQL repository shares: an engine, error translation, and short helpers.

Reads run on a plain connection; writes run in a transaction of their own. A state change is
one conditional ``UPDATE ... WHERE <from-state> ... RETURNING``, so it is atomic on both
backends without an explicit lock: PostgreSQL re-checks the ``WHERE`` clause of a row that a
concurrent transaction changed (READ COMMITTED, "EvalPlanQual"), and SQLite runs one writer at
a time. We never read a row and then write it in the same transaction: under SQLite's WAL a
reader that later tries to write can fail at once with ``SQLITE_BUSY_SNAPSHOT``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable

from lychgate.store.errors import translating


class SqlRepository:
    """Base for the SQL repositories. ``TABLE`` and ``FIELDS`` name the error context."""

    __slots__ = ("_engine",)

    TABLE: str = ""
    FIELDS: tuple[str, ...] = ("id",)  # the primary key first, then the unique columns

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

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

    async def _write(self, stmt: Executable) -> int:
        """Run one write in its own transaction; returns the number of rows it matched."""
        with translating(self.TABLE, self.FIELDS):
            async with self._engine.begin() as conn:
                result = await conn.execute(stmt)
                return result.rowcount

    async def _write_returning(self, stmt: Executable) -> Sequence[Row[Any]]:
        """Run one write with ``RETURNING`` in its own transaction; returns the rows."""
        with translating(self.TABLE, self.FIELDS):
            async with self._engine.begin() as conn:
                result = await conn.execute(stmt)
                return result.all()
