"""Auth sessions over SQL, and the revoked set the gateway enforces."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, delete, insert, select, true, update

from lychgate.domain import Session
from lychgate.errors import NotFound
from lychgate.ids import DeviceId, SessionId, UserId
from lychgate.store.schema import sessions
from lychgate.store.sql.base import SqlRepository


def _session(row: Row[Any]) -> Session:
    return Session(
        id=SessionId(row.id),
        user_id=UserId(row.user_id),
        device_id=None if row.device_id is None else DeviceId(row.device_id),
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_seen_at=row.last_seen_at,
        revoked=bool(row.revoked),
        user_agent=row.user_agent,
        ip=row.ip,
    )


def revoked_ids_query(now: datetime, *, since: datetime | None = None) -> Select[tuple[str]]:
    """The revoked sessions whose tokens could still be valid (app tokens never outlive their
    session: DESIGN.md, tokens), read on every look of authz: a range of
    ``ix_sessions_revoked_expires_at`` ("= true", which both backends index, not "IS TRUE")."""
    stmt = select(sessions.c.id).where(sessions.c.revoked == true(), sessions.c.expires_at > now)
    if since is not None:
        stmt = stmt.where(sessions.c.revoked_at >= since)
    return stmt.order_by(sessions.c.id)


class SqlSessionRepository(SqlRepository):
    __slots__ = ()
    TABLE = "sessions"

    async def create(self, session: Session) -> None:
        await self._write(
            insert(sessions).values(
                id=session.id,
                user_id=session.user_id,
                device_id=session.device_id,
                created_at=session.created_at,
                expires_at=session.expires_at,
                last_seen_at=session.last_seen_at,
                revoked=session.revoked,
                # A session stored as already revoked counts as revoked from its creation.
                revoked_at=session.created_at if session.revoked else None,
                user_agent=session.user_agent,
                ip=session.ip,
            )
        )

    async def get(self, session_id: SessionId) -> Session:
        row = await self._one(select(sessions).where(sessions.c.id == session_id))
        if row is None:
            raise NotFound("no such session", field="session_id")
        return _session(row)

    async def touch(self, session_id: SessionId, now: datetime) -> bool:
        changed = await self._write(
            update(sessions)
            .where(
                sessions.c.id == session_id,
                sessions.c.revoked.is_(False),
                sessions.c.expires_at > now,
            )
            .values(last_seen_at=now)
        )
        return changed > 0

    async def revoke(self, session_id: SessionId, now: datetime) -> bool:
        changed = await self._write(
            update(sessions)
            .where(sessions.c.id == session_id, sessions.c.revoked.is_(False))
            .values(revoked=True, revoked_at=now)
        )
        return changed > 0

    async def revoke_all_for_user(self, user_id: UserId, now: datetime) -> Sequence[SessionId]:
        rows = await self._write_returning(
            update(sessions)
            .where(
                sessions.c.user_id == user_id,
                sessions.c.revoked.is_(False),
                sessions.c.expires_at > now,
            )
            .values(revoked=True, revoked_at=now)
            .returning(sessions.c.id)
        )
        return [SessionId(row.id) for row in rows]

    async def list_for_user(
        self, user_id: UserId, *, live_at: datetime | None = None
    ) -> Sequence[Session]:
        stmt = select(sessions).where(sessions.c.user_id == user_id)
        if live_at is not None:
            stmt = stmt.where(sessions.c.revoked.is_(False), sessions.c.expires_at > live_at)
        rows = await self._all(stmt.order_by(sessions.c.created_at.desc(), sessions.c.id))
        return [_session(row) for row in rows]

    async def revoked_ids(
        self, now: datetime, *, since: datetime | None = None
    ) -> Sequence[SessionId]:
        rows = await self._all(revoked_ids_query(now, since=since))
        return [SessionId(row.id) for row in rows]

    async def ended_ids(self, since: datetime, now: datetime) -> Sequence[SessionId]:
        stmt = select(sessions.c.id).where(
            sessions.c.expires_at > since, sessions.c.expires_at <= now
        )  # a range of ix_sessions_expires_at
        rows = await self._all(stmt.order_by(sessions.c.id))
        return [SessionId(row.id) for row in rows]

    async def delete_expired(self, now: datetime) -> int:
        return await self._write(delete(sessions).where(sessions.c.expires_at <= now))
