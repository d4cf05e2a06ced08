"""Devices over SQL: passkeys and CLI device keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, or_, select, update

from lychgate.domain import Device
from lychgate.errors import NotFound
from lychgate.ids import DeviceId, UserId
from lychgate.store.schema import devices
from lychgate.store.sql.base import SqlRepository


def _device(row: Row[Any]) -> Device:
    return Device(
        id=DeviceId(row.id),
        user_id=UserId(row.user_id),
        kind=row.kind,
        name=row.name,
        public_key=bytes(row.public_key),
        credential_id=None if row.credential_id is None else bytes(row.credential_id),
        sign_count=row.sign_count,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked=bool(row.revoked),
    )


class SqlDeviceRepository(SqlRepository):
    __slots__ = ()
    TABLE = "devices"
    FIELDS = ("id", "credential_id")

    async def add(self, device: Device) -> None:
        await self._write(
            insert(devices).values(
                id=device.id,
                user_id=device.user_id,
                kind=device.kind,
                name=device.name,
                public_key=device.public_key,
                credential_id=device.credential_id,
                sign_count=device.sign_count,
                created_at=device.created_at,
                last_used_at=device.last_used_at,
                revoked=device.revoked,
            )
        )

    async def get(self, device_id: DeviceId) -> Device:
        row = await self._one(select(devices).where(devices.c.id == device_id))
        if row is None:
            raise NotFound("no such device", field="device_id")
        return _device(row)

    async def get_by_credential_id(self, credential_id: bytes) -> Device | None:
        row = await self._one(select(devices).where(devices.c.credential_id == credential_id))
        return None if row is None else _device(row)

    async def list_for_user(
        self, user_id: UserId, *, include_revoked: bool = False
    ) -> Sequence[Device]:
        stmt = select(devices).where(devices.c.user_id == user_id)
        if not include_revoked:
            stmt = stmt.where(devices.c.revoked.is_(False))
        rows = await self._all(stmt.order_by(devices.c.created_at, devices.c.id))
        return [_device(row) for row in rows]

    async def record_use(self, device_id: DeviceId, *, sign_count: int, now: datetime) -> bool:
        # WebAuthn L2 section 6.1.1 / 7.2: a passkey's counter must grow unless both the stored
        # and the new value are zero (an authenticator without a counter). Checked inside the
        # UPDATE so that two concurrent uses of one counter value cannot both pass.
        counter_ok = or_(devices.c.kind != "passkey", devices.c.sign_count < sign_count)
        if sign_count == 0:
            counter_ok = or_(counter_ok, devices.c.sign_count == 0)
        changed = await self._write(
            update(devices)
            .where(devices.c.id == device_id, devices.c.revoked.is_(False), counter_ok)
            .values(sign_count=sign_count, last_used_at=now)
        )
        if changed:
            return True
        await self.get(device_id)  # NotFound when the device does not exist at all
        return False

    async def revoke(self, device_id: DeviceId) -> bool:
        changed = await self._write(
            update(devices)
            .where(devices.c.id == device_id, devices.c.revoked.is_(False))
            .values(revoked=True)
        )
        return changed > 0
