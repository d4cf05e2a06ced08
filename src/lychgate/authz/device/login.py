"""The device's half of a QR login: show the request, check the number, approve or deny.

Theory of operation (DESIGN.md flow 3, docs/sign-in-protocol.md). The browser shows a
two-digit number; the device shows three candidates and the user picks the one on the screen.
Someone who tricks a user into scanning *their* QR code cannot tell the user which number their
own browser shows, so a phished approval fails two times in three, and a wrong pick **denies**
the request for good: there is no second guess. Every transition is a compare-and-set in the
store (one winner): approving an expired, denied or already approved request changes nothing.

A login request belongs to nobody until it is approved (the QR code may be scanned by any
enrolled device). Once approved it belongs to the approving user: any other user then gets
404, as for an unknown id, and the approval itself is bound to the device *and* its user in the
store's UPDATE (SECURITY.md item 7).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from lychgate.authz.context import AuthzContext
from lychgate.authz.device.auth import DeviceCaller
from lychgate.authz.device.errors import ApiError
from lychgate.authz.device.schemas import rfc3339
from lychgate.domain import AuditEvent, LoginRequest, LoginStatus
from lychgate.errors import Conflict, NotFound
from lychgate.events import LoginApproved, LoginDenied
from lychgate.ids import LoginRequestId, is_id_text

NUMBER_MIN, NUMBER_MAX = 10, 99


def choices_for(number: int, seed: bytes) -> list[int]:
    """Three distinct two-digit numbers, ``number`` among them, fixed for one login request.

    The decoys and the order come from ``seed`` (an HMAC of the request id under a server
    secret), not from fresh randomness: if every look produced new decoys, a device could ask
    a few times and keep the one number present in every answer, without seeing the browser.
    The seed is secret to the server, so the right number's position is still unpredictable.
    """
    stream = _DigestStream(seed)
    picked = [number]
    while len(picked) < 3:
        candidate = NUMBER_MIN + stream.below(NUMBER_MAX - NUMBER_MIN + 1)
        if candidate not in picked:
            picked.append(candidate)
    for i in range(len(picked) - 1, 0, -1):  # Fisher-Yates
        j = stream.below(i + 1)
        picked[i], picked[j] = picked[j], picked[i]
    return picked


def choice_seed(ctx: AuthzContext, request_id: str) -> bytes:
    key = ctx.secrets.internal_token.reveal().encode()
    return hmac.new(key, b"lychgate-choices\n" + request_id.encode(), hashlib.sha256).digest()


class _DigestStream:
    """Unbiased small integers from a SHA-256 chain (rejection sampling)."""

    def __init__(self, seed: bytes) -> None:
        self._block = seed
        self._pool = bytearray()

    def _byte(self) -> int:
        if not self._pool:
            self._block = hashlib.sha256(self._block).digest()
            self._pool.extend(self._block)
        return self._pool.pop()

    def below(self, n: int) -> int:
        limit = 256 - 256 % n
        while True:
            b = self._byte()
            if b < limit:
                return b % n


def effective_status(request: LoginRequest, now: datetime) -> LoginStatus:
    """The stored status, except that a pending request past ``expires_at`` is expired."""
    if request.status is LoginStatus.PENDING and now >= request.expires_at:
        return LoginStatus.EXPIRED
    return request.status


async def visible_request(ctx: AuthzContext, caller: DeviceCaller, request_id: str) -> LoginRequest:
    """The login request, if this caller may see it: unknown and foreign ids are both 404."""
    if not is_id_text(request_id):  # a NUL would be a 503 from PostgreSQL, not a 404
        raise NotFound("no such login request", field="id")
    try:
        request = await ctx.store.login_requests.get(LoginRequestId(request_id))
    except NotFound:
        raise NotFound("no such login request", field="id") from None
    if request.user_id is not None and request.user_id != caller.user.id:
        raise NotFound("no such login request", field="id")
    return request


@dataclass(frozen=True, slots=True)
class LoginView:
    request: LoginRequest
    status: LoginStatus
    choices: list[int]

    def to_json(self) -> dict[str, object]:
        r = self.request
        return {
            "id": r.id,
            "status": self.status.value,
            "browser": r.user_agent,
            "ip": r.ip,
            "app": r.app_slug,
            "requested_at": rfc3339(r.created_at),
            "expires_at": rfc3339(r.expires_at),
            "choices": self.choices,
        }


async def describe(ctx: AuthzContext, caller: DeviceCaller, request_id: str) -> LoginView:
    """What the device shows before the user decides."""
    request = await visible_request(ctx, caller, request_id)
    status = effective_status(request, ctx.clock())
    return LoginView(request, status, choices_for(request.number, choice_seed(ctx, request.id)))


def _not_pending(status: LoginStatus) -> Conflict:
    return Conflict(f"login request is {status.value}", field="id")


async def approve(
    ctx: AuthzContext, caller: DeviceCaller, request_id: str, number: int, *, ip: str
) -> None:
    """Approve with the number the user picked; a wrong number denies (409 ``wrong_number``)."""
    request = await visible_request(ctx, caller, request_id)
    now = ctx.clock()
    status = effective_status(request, now)
    if status is not LoginStatus.PENDING:
        raise _not_pending(status)
    # Constant-time, though a two-digit number is no secret worth timing: one rule everywhere.
    if not hmac.compare_digest(str(number).encode(), str(request.number).encode()):
        if await ctx.store.login_requests.deny(request.id, now=now):
            await _audit(ctx, caller, "login.denied", request, ip, reason="wrong_number")
            await ctx.bus.publish(LoginDenied(login_id=request.id))
        raise ApiError(
            "wrong_number", "wrong number: the login request is denied", status=409, field="number"
        )
    approved = await ctx.store.login_requests.approve(
        request.id, user_id=caller.user.id, device_id=caller.device.id, now=now
    )
    if not approved:
        raise Conflict("login request was already decided, or has expired", field="id")
    await _audit(ctx, caller, "login.approved", request, ip)
    await ctx.bus.publish(
        LoginApproved(login_id=request.id, user_id=caller.user.id, device_id=caller.device.id)
    )


async def deny(ctx: AuthzContext, caller: DeviceCaller, request_id: str, *, ip: str) -> None:
    """Deny the request (the user does not recognise it)."""
    request = await visible_request(ctx, caller, request_id)
    now = ctx.clock()
    status = effective_status(request, now)
    if status is not LoginStatus.PENDING:
        raise _not_pending(status)
    if not await ctx.store.login_requests.deny(request.id, now=now):
        raise Conflict("login request was already decided, or has expired", field="id")
    await _audit(ctx, caller, "login.denied", request, ip, reason="user")
    await ctx.bus.publish(LoginDenied(login_id=request.id))


async def _audit(
    ctx: AuthzContext,
    caller: DeviceCaller,
    action: str,
    request: LoginRequest,
    ip: str,
    **details: str,
) -> None:
    await ctx.store.audit.append(
        AuditEvent(
            None,
            ctx.clock(),
            action,
            caller.user.id,
            caller.device.id,
            ip or None,
            {"login": request.id, **details},
        )
    )
