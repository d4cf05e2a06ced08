"""API keys over SQL. Only a hash of each key is stored; the key is shown once, at creation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update

from lychgate.domain import ApiKey
from lychgate.errors import NotFound
from lychgate.ids import ApiKeyId
from lychgate.store.schema import api_keys
from lychgate.store.sql.base import SqlRepository


def _key(row: Row[Any]) -> ApiKey:
    return ApiKey(
        id=ApiKeyId(row.id),
        name=row.name,
        key_hash=bytes(row.key_hash),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked=bool(row.revoked),
    )


class SqlApiKeyRepository(SqlRepository):
    __slots__ = ()
    TABLE = "api_keys"
    FIELDS = ("id", "key_hash")

    async def add(self, key: ApiKey) -> None:
        await self._write(
            insert(api_keys).values(
                id=key.id,
                name=key.name,
                key_hash=key.key_hash,
                created_at=key.created_at,
                last_used_at=key.last_used_at,
                revoked=key.revoked,
            )
        )

    async def get(self, key_id: ApiKeyId) -> ApiKey:
        row = await self._one(select(api_keys).where(api_keys.c.id == key_id))
        if row is None:
            raise NotFound("no such API key", field="api_key_id")
        return _key(row)

    async def get_by_hash(self, key_hash: bytes) -> ApiKey | None:
        # Fail closed: a revoked key is indistinguishable from an unknown one here.
        row = await self._one(
            select(api_keys).where(api_keys.c.key_hash == key_hash, api_keys.c.revoked.is_(False))
        )
        return None if row is None else _key(row)

    async def list(self) -> Sequence[ApiKey]:
        rows = await self._all(select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id))
        return [_key(row) for row in rows]

    async def revoke(self, key_id: ApiKeyId) -> bool:
        changed = await self._write(
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked.is_(False))
            .values(revoked=True)
        )
        return changed > 0

    async def touch(self, key_id: ApiKeyId, now: datetime) -> None:
        await self._write(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now))
