"""Users over SQL."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

from sqlalchemy import Row, func, insert, select, update

from lychgate.domain import User
from lychgate.errors import Conflict, NotFound
from lychgate.ids import UserId
from lychgate.store.schema import users
from lychgate.store.sql.base import CURRENT, SqlRepository
from lychgate.store.values import UNSET, ChangedUser, Unset

EMAIL_TAKEN: Final = "a user with this e-mail address exists"


def email_key(email: str | None) -> str | None:
    """What makes two e-mail addresses the same: equal once lower-cased (``users.email_key``).

    The address itself is kept as given (apps receive it in the identity assertion); this key
    is what lookups compare and what the unique index holds.
    """
    return None if email is None else email.lower()


@contextmanager
def _email_unique() -> Iterator[None]:
    """A clash on ``email_key`` is a Conflict on the e-mail address, as callers know it."""
    try:
        yield
    except Conflict as exc:
        if exc.field != "email_key":
            raise
        raise Conflict(EMAIL_TAKEN, field="email") from exc


def _user(row: Row[Any]) -> User:
    return User(
        id=UserId(row.id),
        name=row.name,
        email=row.email,
        external_id=row.external_id,
        is_admin=bool(row.is_admin),
        disabled=bool(row.disabled),
        created_at=row.created_at,
    )


class SqlUserRepository(SqlRepository):
    __slots__ = ()
    TABLE = "users"
    FIELDS = ("id", "external_id", "email_key")

    async def add(self, user: User) -> None:
        with _email_unique():
            await self._write(
                insert(users).values(
                    id=user.id,
                    name=user.name,
                    email=user.email,
                    email_key=email_key(user.email),
                    external_id=user.external_id,
                    is_admin=user.is_admin,
                    disabled=user.disabled,
                    created_at=user.created_at,
                    changed_in=CURRENT,
                ),
                config=True,
            )

    async def get(self, user_id: UserId) -> User:
        row = await self._one(select(users).where(users.c.id == user_id))
        if row is None:
            raise NotFound("no such user", field="user_id")
        return _user(row)

    async def get_by_external_id(self, external_id: str) -> User | None:
        row = await self._one(select(users).where(users.c.external_id == external_id))
        return None if row is None else _user(row)

    async def get_by_email(self, email: str) -> User | None:
        row = await self._one(select(users).where(users.c.email_key == email_key(email)))
        return None if row is None else _user(row)

    async def list(self, *, limit: int = 1000, offset: int = 0) -> Sequence[User]:
        rows = await self._all(
            select(users).order_by(users.c.created_at, users.c.id).limit(limit).offset(offset)
        )
        return [_user(row) for row in rows]

    async def changed_since(
        self,
        version: int,
        *,
        limit: int = 1000,
        after: ChangedUser | None = None,
        enabled_only: bool = False,
    ) -> Sequence[ChangedUser]:
        rows = await self._changed_rows(
            users,
            version,
            limit=limit,
            after=None if after is None else (after.version, after.user.id),
            where=users.c.disabled.is_(False) if enabled_only else None,
        )
        return [ChangedUser(int(row.changed_in), _user(row)) for row in rows]

    async def update(
        self,
        user_id: UserId,
        *,
        name: str | Unset = UNSET,
        email: str | Unset | None = UNSET,
        is_admin: bool | Unset = UNSET,
        disabled: bool | Unset = UNSET,
    ) -> User:
        changes: dict[str, object] = {}
        if name is not UNSET:
            changes["name"] = name
        if email is not UNSET:
            changes["email"] = email
            changes["email_key"] = email_key(email)
        if is_admin is not UNSET:
            changes["is_admin"] = is_admin
        if disabled is not UNSET:
            changes["disabled"] = disabled
        if not changes:
            return await self.get(user_id)
        changes["changed_in"] = CURRENT
        with _email_unique():
            rows = await self._write_returning(
                update(users).where(users.c.id == user_id).values(changes).returning(*users.c),
                config=True,
            )
        if not rows:
            raise NotFound("no such user", field="user_id")
        return _user(rows[0])

    async def count_admins(self) -> int:
        count = await self._scalar(
            select(func.count())
            .select_from(users)
            .where(users.c.is_admin.is_(True), users.c.disabled.is_(False))
        )
        return int(count or 0)
