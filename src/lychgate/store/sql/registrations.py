"""Registrations over SQL: a customer's user handed over for enrollment (DESIGN.md flow 2)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update

from lychgate.domain import Registration, RegistrationStatus
from lychgate.errors import NotFound
from lychgate.ids import ApiKeyId, RegistrationId, UserId
from lychgate.store.schema import registrations
from lychgate.store.sql.base import SqlRepository

_t = registrations


def _registration(row: Row[Any]) -> Registration:
    return Registration(
        id=RegistrationId(row.id),
        token_hash=bytes(row.token_hash),
        external_id=row.external_id,
        name=row.name,
        email=row.email,
        status=RegistrationStatus(row.status),
        created_at=row.created_at,
        expires_at=row.expires_at,
        api_key_id=None if row.api_key_id is None else ApiKeyId(row.api_key_id),
        user_id=None if row.user_id is None else UserId(row.user_id),
    )


class SqlRegistrationRepository(SqlRepository):
    __slots__ = ()
    TABLE = "registrations"
    FIELDS = ("id", "token_hash")

    async def create(self, registration: Registration) -> None:
        await self._write(
            insert(_t).values(
                id=registration.id,
                token_hash=registration.token_hash,
                external_id=registration.external_id,
                name=registration.name,
                email=registration.email,
                status=registration.status.value,
                created_at=registration.created_at,
                expires_at=registration.expires_at,
                api_key_id=registration.api_key_id,
                user_id=registration.user_id,
            )
        )

    async def get(self, registration_id: RegistrationId) -> Registration:
        row = await self._one(select(_t).where(_t.c.id == registration_id))
        if row is None:
            raise NotFound("no such registration", field="registration_id")
        return _registration(row)

    async def get_by_token_hash(self, token_hash: bytes) -> Registration | None:
        row = await self._one(select(_t).where(_t.c.token_hash == token_hash))
        return None if row is None else _registration(row)

    async def mark_enrolled(
        self, registration_id: RegistrationId, *, user_id: UserId, now: datetime
    ) -> bool:
        # One conditional UPDATE: a replayed or concurrent enrollment gets False.
        changed = await self._write(
            update(_t)
            .where(
                _t.c.id == registration_id,
                _t.c.status == RegistrationStatus.PENDING.value,
                _t.c.expires_at > now,
            )
            .values(status=RegistrationStatus.ENROLLED.value, user_id=user_id)
        )
        return changed > 0
