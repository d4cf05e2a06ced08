"""The change counter of what the gateways' snapshot is built from (schema ``config_changes``)."""

from __future__ import annotations

from sqlalchemy import select

from lychgate.store.schema import config_changes
from lychgate.store.sql.base import SqlRepository


class SqlConfigChanges(SqlRepository):
    __slots__ = ()
    TABLE = "config_changes"

    async def version(self) -> int | None:
        value = await self._scalar(select(config_changes.c.version).where(config_changes.c.id == 1))
        return None if value is None else int(value)
