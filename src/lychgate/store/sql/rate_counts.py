"""Shared rate-limit counters over SQL (schema ``rate_counts``).

Adding is one upsert that returns the new count, so concurrent adds from several replicas are
each counted once: PostgreSQL's ``ON CONFLICT DO UPDATE`` locks the row, and SQLite has one
writer at a time.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, delete, select

from lychgate.store.schema import rate_counts
from lychgate.store.sql.base import SqlRepository

_t = rate_counts


class SqlRateCounts(SqlRepository):
    __slots__ = ()
    TABLE = "rate_counts"
    FIELDS = ("scope",)

    async def add(self, scope: str, key: str, window_start: datetime, step: int) -> int:
        first = max(step, 0)
        stmt = (
            self._upsert(_t)
            .values(scope=scope, key=key, window_start=window_start, count=first)
            .on_conflict_do_update(
                index_elements=[_t.c.scope, _t.c.key, _t.c.window_start],
                set_={"count": case((_t.c.count + step < 0, 0), else_=_t.c.count + step)},
            )
            .returning(_t.c.count)
        )
        rows = await self._write_returning(stmt)
        return int(rows[0][0])

    async def get(self, scope: str, key: str, window_start: datetime) -> int:
        count = await self._scalar(
            select(_t.c.count).where(
                _t.c.scope == scope, _t.c.key == key, _t.c.window_start == window_start
            )
        )
        return 0 if count is None else int(count)

    async def delete_before(self, before: datetime) -> int:
        return await self._write(delete(_t).where(_t.c.window_start < before))
