"""The audit log over SQL: append-only, read newest first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Row, func, insert, select

from lychgate.domain import AuditEvent
from lychgate.errors import UsageError
from lychgate.ids import DeviceId, UserId
from lychgate.store.schema import audit_log
from lychgate.store.sql.base import SqlRepository

_t = audit_log


def _event(row: Row[Any]) -> AuditEvent:
    return AuditEvent(
        id=row.id,
        at=row.at,
        action=row.action,
        actor_user_id=None if row.actor_user_id is None else UserId(row.actor_user_id),
        actor_device_id=None if row.actor_device_id is None else DeviceId(row.actor_device_id),
        ip=row.ip,
        details={str(k): str(v) for k, v in (row.details or {}).items()},
    )


class SqlAuditLog(SqlRepository):
    __slots__ = ()
    TABLE = "audit_log"

    async def append(self, event: AuditEvent) -> AuditEvent:
        if event.id is not None:
            raise UsageError("the store assigns audit event ids; pass id=None", field="id")
        rows = await self._write_returning(
            insert(_t)
            .values(
                at=event.at,
                action=event.action,
                actor_user_id=event.actor_user_id,
                actor_device_id=event.actor_device_id,
                ip=event.ip,
                details=dict(event.details),
            )
            .returning(_t.c.id)
        )
        return replace(event, id=int(rows[0].id))

    async def list(
        self,
        *,
        limit: int = 100,
        action_prefix: str | None = None,
        user_id: UserId | None = None,
    ) -> Sequence[AuditEvent]:
        stmt = select(_t)
        if action_prefix:
            # Not LIKE: SQLite's LIKE ignores ASCII case and "%"/"_" would need escaping. A
            # substring comparison means the same thing on both backends.
            prefix_of_action = func.substr(_t.c.action, 1, len(action_prefix))
            stmt = stmt.where(prefix_of_action == action_prefix)
        if user_id is not None:
            stmt = stmt.where(_t.c.actor_user_id == user_id)
        rows = await self._all(stmt.order_by(_t.c.id.desc()).limit(limit))
        return [_event(row) for row in rows]
