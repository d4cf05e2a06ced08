"""Token signing keys over SQL, and their rotation.

A rotation adds the new key and retires the old ones in one transaction, so at every instant
exactly one key signs and every key that signed a still-valid token verifies (DESIGN.md, tokens
and keys). The private JWK is stored as text; it leaves this module only inside a
:class:`~lychgate.secret.Secret`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, select, update

from lychgate.domain import SigningKey
from lychgate.ids import KeyId
from lychgate.secret import Secret
from lychgate.store.errors import translating
from lychgate.store.schema import signing_keys
from lychgate.store.sql.base import BUMP, SqlRepository

_t = signing_keys


def _key(row: Row[Any]) -> SigningKey:
    return SigningKey(
        kid=KeyId(row.kid),
        private_jwk=Secret(row.private_jwk),
        created_at=row.created_at,
        retired_at=row.retired_at,
        verify_until=row.verify_until,
    )


def _values(key: SigningKey) -> dict[str, object]:
    return {
        "kid": key.kid,
        "private_jwk": key.private_jwk.reveal(),
        "created_at": key.created_at,
        "retired_at": key.retired_at,
        "verify_until": key.verify_until,
    }


class SqlSigningKeyRepository(SqlRepository):
    __slots__ = ()
    TABLE = "signing_keys"
    FIELDS = ("kid",)

    async def list(self) -> Sequence[SigningKey]:
        rows = await self._all(select(_t).order_by(_t.c.created_at, _t.c.kid))
        return [_key(row) for row in rows]

    async def add(self, key: SigningKey) -> None:
        await self._write(insert(_t).values(_values(key)))

    async def rotate(
        self, new_key: SigningKey, *, retired_at: datetime, verify_until: datetime
    ) -> Sequence[KeyId]:
        # The change counter first: a write, which SQLite's WAL needs to begin a transaction
        # (see sql.base), and on PostgreSQL a row lock that makes two rotations take turns, so
        # the second one's UPDATE (a statement of its own, seeing what the first committed)
        # retires the first one's key instead of leaving two keys unretired. Then retire,
        # then insert: the new key is excluded from the retirement by its kid.
        with translating(self.TABLE, self.FIELDS):
            async with self._engine.begin() as conn:
                await conn.execute(BUMP)
                result = await conn.execute(
                    update(_t)
                    .where(_t.c.retired_at.is_(None), _t.c.kid != new_key.kid)
                    .values(retired_at=retired_at, verify_until=verify_until)
                    .returning(_t.c.kid)
                )
                retired = [KeyId(row.kid) for row in result.all()]
                await conn.execute(insert(_t).values(_values(new_key)))
        return retired

    async def replace_all(self, new_key: SigningKey) -> Sequence[KeyId]:
        with translating(self.TABLE, self.FIELDS):
            async with self._engine.begin() as conn:
                await conn.execute(BUMP)  # as in rotate: rotations take turns
                result = await conn.execute(delete(_t).returning(_t.c.kid))
                dropped = [KeyId(row.kid) for row in result.all()]
                await conn.execute(insert(_t).values(_values(new_key)))
        return dropped

    async def retire(self, kid: KeyId, *, retired_at: datetime, verify_until: datetime) -> bool:
        changed = await self._write(
            update(_t)
            .where(_t.c.kid == kid, _t.c.retired_at.is_(None))
            .values(retired_at=retired_at, verify_until=verify_until)
        )
        return changed > 0

    async def prune(self, now: datetime) -> int:
        return await self._write(
            delete(_t).where(_t.c.retired_at.is_not(None), _t.c.verify_until <= now)
        )
