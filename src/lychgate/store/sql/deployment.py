"""Facts about the deployment as a whole over SQL (schema ``deployment``, one row per name).

Recording a fact that may already be there is a plain ``INSERT``: when another node's insert
got there first (they started at once), the primary key refuses ours and we read theirs back,
so every node ends up comparing itself with the same value. Replacing one is an upsert.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import insert, select

from lychgate.errors import Conflict
from lychgate.store.schema import deployment
from lychgate.store.sql.base import SqlRepository

_t = deployment
SECRETS_FINGERPRINT: Final = "secrets_fingerprint"


class SqlDeploymentRecord(SqlRepository):
    __slots__ = ()
    TABLE = "deployment"
    FIELDS = ("name",)

    async def secrets_fingerprint(self) -> str | None:
        return await self._get(SECRETS_FINGERPRINT)

    async def record_secrets_fingerprint(self, fingerprint: str) -> str:
        while True:  # again only if the row we collided with was deleted before we read it
            try:
                await self._write(insert(_t).values(name=SECRETS_FINGERPRINT, value=fingerprint))
            except Conflict:
                recorded = await self._get(SECRETS_FINGERPRINT)  # theirs stands
                if recorded is not None:
                    return recorded
            else:
                return fingerprint

    async def replace_secrets_fingerprint(self, fingerprint: str) -> None:
        stmt = self._upsert(_t).values(name=SECRETS_FINGERPRINT, value=fingerprint)
        await self._write(
            stmt.on_conflict_do_update(index_elements=[_t.c.name], set_={"value": fingerprint})
        )

    async def _get(self, name: str) -> str | None:
        value = await self._scalar(select(_t.c.value).where(_t.c.name == name))
        return None if value is None else str(value)
