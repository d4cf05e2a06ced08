"""Login requests over SQL: the QR login's state machine, with compare-and-set transitions.

Theory of operation (DESIGN.md, flow 3)::

    pending --approve(device, user)--> approved --finish(session)--> finished
       |  \\--deny--> denied <-------------/  (deny_approved: the approver was
       \\--(expires_at passes)--> expired       disabled, or its device revoked)

Every arrow is a single ``UPDATE ... WHERE status = <from> AND expires_at > :now``. The
database applies it to the row atomically, so of two concurrent approvals (two phones, or a
replayed request) exactly one matches the row and wins; the other sees ``False``. Nothing is
read first and written later. ``deny_approved`` alone has no ``expires_at`` condition: it only
takes away, and an approval must not be left to outlive the user's disable.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, select, update

from lychgate.domain import LoginRequest, LoginStatus
from lychgate.errors import NotFound
from lychgate.ids import AppSlug, DeviceId, LoginRequestId, SessionId, UserId
from lychgate.store.schema import devices, login_requests, users
from lychgate.store.sql.base import SqlRepository

_t = login_requests


def _request(row: Row[Any]) -> LoginRequest:
    return LoginRequest(
        id=LoginRequestId(row.id),
        secret_hash=bytes(row.secret_hash),
        number=row.number,
        rd=row.rd,
        app_slug=None if row.app_slug is None else AppSlug(row.app_slug),
        status=LoginStatus(row.status),
        created_at=row.created_at,
        expires_at=row.expires_at,
        user_agent=row.user_agent,
        ip=row.ip,
        user_id=None if row.user_id is None else UserId(row.user_id),
        device_id=None if row.device_id is None else DeviceId(row.device_id),
        session_id=None if row.session_id is None else SessionId(row.session_id),
    )


def _usable_device(device_id: Any, user_id: Any) -> Any:
    """In SQL: ``device_id`` is an unrevoked device of ``user_id``, an enabled user (values,
    or the request row's own columns)."""
    return (
        select(devices.c.id)
        .join(users, users.c.id == devices.c.user_id)
        .where(
            devices.c.id == device_id,
            devices.c.user_id == user_id,
            devices.c.revoked.is_(False),
            users.c.disabled.is_(False),
        )
        .exists()
    )


class SqlLoginRequestRepository(SqlRepository):
    __slots__ = ()
    TABLE = "login_requests"

    async def create(self, request: LoginRequest) -> None:
        await self._write(
            insert(_t).values(
                id=request.id,
                secret_hash=request.secret_hash,
                number=request.number,
                rd=request.rd,
                app_slug=request.app_slug,
                status=request.status.value,
                created_at=request.created_at,
                expires_at=request.expires_at,
                user_agent=request.user_agent,
                ip=request.ip,
                user_id=request.user_id,
                device_id=request.device_id,
                session_id=request.session_id,
            )
        )

    async def get(self, request_id: LoginRequestId) -> LoginRequest:
        row = await self._one(select(_t).where(_t.c.id == request_id))
        if row is None:
            raise NotFound("no such login request", field="login_request_id")
        return _request(row)

    async def approve(
        self,
        request_id: LoginRequestId,
        *,
        user_id: UserId,
        device_id: DeviceId,
        now: datetime,
    ) -> bool:
        # SECURITY.md item 7: the approval is bound to a device *and* its user. Checking it in
        # the same statement closes the race with a concurrent revocation or user disable.
        return await self._transition(
            request_id,
            LoginStatus.PENDING,
            LoginStatus.APPROVED,
            now,
            _usable_device(device_id, user_id),
            user_id=user_id,
            device_id=device_id,
        )

    async def deny(self, request_id: LoginRequestId, *, now: datetime) -> bool:
        return await self._transition(request_id, LoginStatus.PENDING, LoginStatus.DENIED, now)

    async def finish(
        self, request_id: LoginRequestId, *, session_id: SessionId, now: datetime
    ) -> bool:
        # The approving device is checked again: one revoked (or its user disabled) between
        # the approval and the finish must not start a session (a stolen key's holder could
        # keep an approved request waiting, to finish once they see they were revoked).
        return await self._transition(
            request_id,
            LoginStatus.APPROVED,
            LoginStatus.FINISHED,
            now,
            _usable_device(_t.c.device_id, _t.c.user_id),
            session_id=session_id,
        )

    async def deny_approved(
        self,
        *,
        user_id: UserId,
        request_id: LoginRequestId | None = None,
        device_id: DeviceId | None = None,
    ) -> Sequence[LoginRequestId]:
        # No expiry condition: the caller's clock may be another machine's (the CLI's), and a
        # request past its end is refused by every transition anyway; denying it is harmless.
        conditions = [_t.c.user_id == user_id, _t.c.status == LoginStatus.APPROVED.value]
        if request_id is not None:
            conditions.append(_t.c.id == request_id)
        if device_id is not None:
            conditions.append(_t.c.device_id == device_id)
        rows = await self._write_returning(
            update(_t).where(*conditions).values(status=LoginStatus.DENIED.value).returning(_t.c.id)
        )
        return [LoginRequestId(row.id) for row in rows]

    async def expire(self, now: datetime) -> int:
        return await self._write(
            update(_t)
            .where(_t.c.status == LoginStatus.PENDING.value, _t.c.expires_at <= now)
            .values(status=LoginStatus.EXPIRED.value)
        )

    async def delete_ended(self, before: datetime) -> int:
        return await self._write(delete(_t).where(_t.c.expires_at <= before))

    async def _transition(
        self,
        request_id: LoginRequestId,
        old: LoginStatus,
        new: LoginStatus,
        now: datetime,
        *conditions: Any,
        **values: object,
    ) -> bool:
        changed = await self._write(
            update(_t)
            .where(
                _t.c.id == request_id,
                _t.c.status == old.value,
                _t.c.expires_at > now,
                *conditions,
            )
            .values(status=new.value, **values)
        )
        return changed > 0
