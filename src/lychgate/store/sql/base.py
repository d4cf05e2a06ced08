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

from sqlalchemy import ColumnElement, Row, Table, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import Executable

from lychgate.events.codec import encode
from lychgate.events.postgres import DEFAULT_CHANNEL
from lychgate.events.types import ConfigChanged
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


async def _announce(conn: AsyncConnection, table: str) -> None:
    """On PostgreSQL, tell every authz replica of a config write in ``conn``'s transaction: a
    :class:`~lychgate.events.ConfigChanged` on the event bus's channel, which PostgreSQL
    delivers when the transaction commits, and drops if it rolls back. authz looks at the
    store at once instead of at its next poll, whichever process wrote (the CLI, another
    replica). SQLite has no one to tell: its authz polls."""
    if conn.dialect.name == "postgresql":
        payload = encode(ConfigChanged(what=table))
        await conn.execute(select(func.pg_notify(DEFAULT_CHANNEL, payload)))


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

    async def _changed_rows(
        self,
        table: Table,
        version: int,
        *,
        limit: int,
        after: tuple[int, str] | None,
        where: ColumnElement[bool] | None = None,
    ) -> Sequence[Row[Any]]:
        """The rows of ``table`` whose latest write moved the change counter above ``version``
        (its ``changed_in``), in that order then by id: ``limit`` of them, after the position
        ``after`` (a row's value and id), so that pages hold however many rows one write
        made."""
        stmt = select(table).where(table.c.changed_in > version)
        if where is not None:
            stmt = stmt.where(where)
        if after is not None:
            stmt = stmt.where(tuple_(table.c.changed_in, table.c.id) > tuple_(*after))
        return await self._all(stmt.order_by(table.c.changed_in, table.c.id).limit(limit))

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
        record the new value (:data:`CURRENT`); and authz is told at commit
        (:func:`_announce`). A write that matched no row is rolled back, bump and all.
        """
        with translating(self.TABLE, self.FIELDS), contextlib.suppress(_Unmatched):
            async with self._engine.begin() as conn:
                if config:
                    await conn.execute(BUMP)
                result = await conn.execute(stmt)
                if config:
                    if not result.rowcount:
                        raise _Unmatched  # rolls the bump back
                    await _announce(conn, self.TABLE)
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
                if config:
                    if not rows:
                        raise _Unmatched
                    await _announce(conn, self.TABLE)
                return rows
        return []
