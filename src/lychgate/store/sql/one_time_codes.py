"""One-time codes and links over SQL: stored as hashes, redeemed at most once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, select, update

from lychgate.domain import OneTimeCode
from lychgate.store.schema import one_time_codes
from lychgate.store.sql.base import SqlRepository

_t = one_time_codes


def _code(row: Row[Any]) -> OneTimeCode:
    return OneTimeCode(
        code_hash=bytes(row.code_hash),
        purpose=row.purpose,
        payload=row.payload,
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
    )


class SqlOneTimeCodeRepository(SqlRepository):
    __slots__ = ()
    TABLE = "one_time_codes"
    FIELDS = ("code_hash",)

    async def add(self, code: OneTimeCode) -> None:
        await self._write(
            insert(_t).values(
                code_hash=code.code_hash,
                purpose=code.purpose,
                payload=code.payload,
                created_at=code.created_at,
                expires_at=code.expires_at,
                used_at=code.used_at,
            )
        )

    async def redeem(self, code_hash: bytes, purpose: str, now: datetime) -> OneTimeCode | None:
        # Marking the code used *is* the check: one conditional UPDATE ... RETURNING, so a
        # replay, even a concurrent one, matches no row (SECURITY.md item 6).
        rows = await self._write_returning(
            update(_t)
            .where(
                _t.c.code_hash == code_hash,
                _t.c.purpose == purpose,
                _t.c.used_at.is_(None),
                _t.c.expires_at > now,
            )
            .values(used_at=now)
            .returning(*_t.c)
        )
        return _code(rows[0]) if rows else None

    async def pending(self, purpose: str, now: datetime) -> Sequence[OneTimeCode]:
        rows = await self._all(
            select(_t).where(_t.c.purpose == purpose, _t.c.used_at.is_(None), _t.c.expires_at > now)
        )
        return [_code(row) for row in rows]

    async def discard(self, code_hashes: Sequence[bytes]) -> int:
        if not code_hashes:
            return 0
        return await self._write(delete(_t).where(_t.c.code_hash.in_(list(code_hashes))))

    async def delete_expired(self, now: datetime) -> int:
        return await self._write(delete(_t).where(_t.c.expires_at <= now))
