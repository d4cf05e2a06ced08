"""Used device signatures over SQL (schema ``used_signatures``): each accepted once.

Recording a signature *is* the check, as with one-time codes: one ``INSERT ... ON CONFLICT DO
NOTHING`` on the primary key (device, signature hash). Of two replicas inserting the same one
at once, PostgreSQL makes the second wait for the first to commit and then insert nothing;
SQLite has one writer at a time. Nothing is read first.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete

from lychgate.ids import DeviceId
from lychgate.store.schema import used_signatures
from lychgate.store.sql.base import SqlRepository

_t = used_signatures


class SqlUsedSignatures(SqlRepository):
    __slots__ = ()
    TABLE = "used_signatures"
    FIELDS = ("device_id",)

    async def use(self, device_id: DeviceId, signature_hash: bytes, *, until: datetime) -> bool:
        stmt = (
            self._upsert(_t)
            .values(device_id=device_id, signature_hash=signature_hash, expires_at=until)
            .on_conflict_do_nothing(index_elements=[_t.c.device_id, _t.c.signature_hash])
        )
        return await self._write(stmt) > 0

    async def delete_expired(self, before: datetime) -> int:
        return await self._write(delete(_t).where(_t.c.expires_at < before))
