"""Auth sessions over SQL, and the revoked set the gateway enforces."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Row, Select, delete, insert, or_, select, true, update

from lychgate.domain import Session
from lychgate.errors import NotFound
from lychgate.ids import DeviceId, SessionId, UserId
from lychgate.store.schema import sessions
from lychgate.store.sql.base import SqlRepository
from lychgate.store.values import Revocation, SessionEnd

_T = TypeVar("_T", bound=tuple[Any, ...])


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
    session: DESIGN.md, tokens): a range of ``ix_sessions_revoked_expires_at`` ("= true",
    which both backends index, not "IS TRUE"). authz reads them a page at a time
    (:func:`revocations_query`)."""
    stmt = select(sessions.c.id).where(sessions.c.revoked == true(), sessions.c.expires_at > now)
    if since is not None:
        stmt = stmt.where(sessions.c.revoked_at >= since)
    return stmt.order_by(sessions.c.id)


def _page(
    stmt: Select[_T],
    by: ColumnElement[datetime],
    floor: tuple[datetime, bool],
    after: tuple[datetime, str] | None,
    limit: int,
) -> Select[_T]:
    """A page of ``stmt`` where ``by`` is above ``floor`` (a value, and whether it is in),
    in the order of ``by``, then id, from just after ``after``.

    That is the order of the index ``by`` ranges over, so a page is a short walk along it,
    never a sort of every row; and it has one lower bound, the greater of ``floor`` and
    ``after``: given both, SQLite may start its walk at the lower one, on every page."""
    low, inclusive = floor
    if after is not None and (after[0] > low or (after[0] == low and inclusive)):
        at, sid = after
        stmt = stmt.where(by >= at, or_(by > at, sessions.c.id > sid))
    else:  # from the floor (the range begins after ``after``, if given)
        stmt = stmt.where(by >= low if inclusive else by > low)
    return stmt.order_by(by, sessions.c.id).limit(limit)


def _ends() -> Select[tuple[str, datetime]]:
    return select(sessions.c.id, sessions.c.expires_at)


def _by_end(after: SessionEnd | None) -> tuple[datetime, str] | None:
    return None if after is None else (after.expires_at, after.id)


def revocations_query(
    now: datetime, *, limit: int = 1000, after: SessionEnd | None = None
) -> Select[tuple[str, datetime]]:
    """A page of :func:`revoked_ids_query`'s sessions, along ``ix_sessions_revoked_expires_at``."""
    stmt = _ends().where(sessions.c.revoked == true())
    return _page(stmt, sessions.c.expires_at, (now, False), _by_end(after), limit)


def endings_query(
    since: datetime, now: datetime, *, limit: int = 1000, after: SessionEnd | None = None
) -> Select[tuple[str, datetime]]:
    """A page of the sessions that ended in ``(since, now]``, along ``ix_sessions_expires_at``."""
    stmt = _ends().where(sessions.c.expires_at <= now)
    return _page(stmt, sessions.c.expires_at, (since, False), _by_end(after), limit)


def revoked_since_query(
    since: datetime, *, limit: int = 1000, after: Revocation | None = None
) -> Select[tuple[str, datetime, datetime]]:
    """A page of the sessions revoked at or after ``since``, along ``ix_sessions_revoked_at``.

    No ``revoked = true``: only a revocation sets ``revoked_at``, and with that term SQLite
    would rather walk ``ix_sessions_revoked_expires_at``, every revoked session, each look."""
    stmt = select(sessions.c.id, sessions.c.expires_at, sessions.c.revoked_at)
    position = None if after is None else (after.revoked_at, after.id)
    return _page(stmt, sessions.c.revoked_at, (since, True), position, limit)


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

    async def revocations(
        self, now: datetime, *, limit: int = 1000, after: SessionEnd | None = None
    ) -> Sequence[SessionEnd]:
        rows = await self._all(revocations_query(now, limit=limit, after=after))
        return [SessionEnd(SessionId(row.id), row.expires_at) for row in rows]

    async def revoked_since(
        self, since: datetime, *, limit: int = 1000, after: Revocation | None = None
    ) -> Sequence[Revocation]:
        rows = await self._all(revoked_since_query(since, limit=limit, after=after))
        return [Revocation(SessionId(row.id), row.expires_at, row.revoked_at) for row in rows]

    async def endings(
        self,
        since: datetime,
        now: datetime,
        *,
        limit: int = 1000,
        after: SessionEnd | None = None,
    ) -> Sequence[SessionEnd]:
        rows = await self._all(endings_query(since, now, limit=limit, after=after))
        return [SessionEnd(SessionId(row.id), row.expires_at) for row in rows]

    async def delete_expired(self, now: datetime) -> int:
        return await self._write(delete(sessions).where(sessions.c.expires_at <= now))
