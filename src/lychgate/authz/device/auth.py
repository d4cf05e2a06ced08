"""Authenticating device calls: who is calling, proven by an Ed25519 signature.

Theory of operation (docs/sign-in-protocol.md, "Device calls"). Every device call carries
``Lychgate-Device``, ``-Timestamp`` and ``-Signature``; the signature covers the method, the
path with its query as authz receives it (the normal form the gateway forwards; see
:func:`signed_path`), the timestamp and the SHA-256 of the body (:mod:`lychgate.devicesig`).
:func:`device_caller` reads the body once, verifies it, and hands the route those same verified
bytes (:attr:`DeviceCaller.body`), so what a route parses is exactly what was signed. The
device must exist, be a device key (passkeys sign WebAuthn assertions instead) with a strong
public key, be unrevoked, and belong to an enabled user.

A state-changing call (any method but GET) is then accepted once (THREAT_MODEL.md T20): its
signature is recorded in the store with the device until the end of its time window, and a
second use of it, on this replica or another on the same database, is refused
(:class:`~lychgate.devicesig.ReplayedRequest`). Recording it is the check, one insert that a
unique key makes fail for the second comer, so two copies sent at once cannot both pass. A
logout or an open replayed from a log or a proxy inside the ±60 s window did act again before.

Last, the use is recorded with ``record_use``, whose conditional UPDATE also refuses a device
revoked a moment ago. Any failure is ``401 {"error": "device_auth"}``; a replay adds
``"detail": "replayed"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final

from fastapi import Depends, Request

from lychgate.authz.context import AuthzContext
from lychgate.authz.device.errors import ApiError
from lychgate.authz.internal import context
from lychgate.devicesig import (
    HEADER_DEVICE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    MAX_SKEW,
    DeviceAuthError,
    ReplayedRequest,
    signature_fingerprint,
    verify_request,
)
from lychgate.domain import Device, User
from lychgate.errors import NotFound
from lychgate.gateway.http.limits import SIGN_IN_MAX_BODY
from lychgate.ids import DeviceId

MAX_DEVICE_ID = 128
#: Methods that change nothing: repeating one is harmless, so they are not recorded. Every
#: other method is taken to change state (the device API answers no HEAD or OPTIONS).
SAFE_METHODS: Final = frozenset({"GET"})
#: Device calls carry small JSON bodies; anything bigger is refused before hashing it.
MAX_BODY = SIGN_IN_MAX_BODY


@dataclass(frozen=True, slots=True)
class DeviceCaller:
    """A verified device call: the device, its user, and the signed body bytes."""

    device: Device
    user: User
    body: bytes = b""


def signed_path(request: Request) -> str:
    """The path with its query as authz received it: what the device must have signed.

    That is the request-target the gateway forwards, not necessarily the one the client put
    on the wire: the gateway normalizes the path first (:mod:`lychgate.gateway.paths`:
    escapes of unreserved characters decoded, ``//`` collapsed under ``/.lychgate``, ``.``
    and ``..`` removed) and keeps the query as sent. A client that sends its path in that
    normal form, as ours does, signs what it sends; one that sends ``/%61pps`` and signs that
    is refused.
    """
    scope = request.scope
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else scope["path"]
    query: bytes = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The whole body; 413 as soon as it is longer than ``limit`` bytes (before reading it all)."""
    too_large = ApiError("too_large", f"body over {limit} bytes", status=413, field="body")
    length = request.headers.get("content-length")
    if length is not None and not (length.isascii() and length.isdigit() and int(length) <= limit):
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def authenticate(ctx: AuthzContext, request: Request) -> DeviceCaller:
    """Verify the signed device call in ``request``; :class:`DeviceAuthError` if it fails."""
    device_id = request.headers.get(HEADER_DEVICE, "")
    if not device_id or len(device_id) > MAX_DEVICE_ID:
        raise DeviceAuthError("missing or malformed device id", field="device")
    body = await read_body(request)
    try:
        device = await ctx.store.devices.get(DeviceId(device_id))
    except NotFound:
        raise DeviceAuthError("unknown device", field="device") from None
    if device.kind != "device_key" or device.revoked:
        raise DeviceAuthError("device is revoked or not a device key", field="device")
    now = ctx.clock()
    signature = request.headers.get(HEADER_SIGNATURE)
    signed_at = verify_request(
        device.public_key,
        method=request.method,
        path=signed_path(request),
        body=body,
        timestamp=request.headers.get(HEADER_TIMESTAMP),
        signature=signature,
        now=int(now.timestamp()),
    )
    user = await ctx.store.users.get(device.user_id)
    if user.disabled:
        raise DeviceAuthError("user is disabled", field="device")
    if request.method not in SAFE_METHODS:
        assert signature is not None  # verify_request refused a missing one
        await _use_once(ctx, device.id, signature, signed_at)
    # Device keys keep no counter: sign_count stays 0 (the store checks counters of passkeys).
    if not await ctx.store.devices.record_use(device.id, sign_count=0, now=now):
        raise DeviceAuthError("device was revoked", field="device")
    return DeviceCaller(device, user, body)


async def _use_once(ctx: AuthzContext, device_id: DeviceId, signature: str, signed_at: int) -> None:
    """Record the signature as used; :class:`ReplayedRequest` if it was already.

    Kept until its window ends (``signed_at + MAX_SKEW``): after that the timestamp check
    refuses it anyway. Housekeeping deletes it later still, with room for replicas whose
    clocks disagree.
    """
    until = datetime.fromtimestamp(signed_at, UTC) + timedelta(seconds=MAX_SKEW)
    try:
        first = await ctx.store.used_signatures.use(
            device_id, signature_fingerprint(signature), until=until
        )
    except NotFound:  # the device row went away meanwhile
        raise DeviceAuthError("unknown device", field="device") from None
    if not first:
        raise ReplayedRequest("this signed request was used already", field="signature")


async def device_caller(
    request: Request, ctx: Annotated[AuthzContext, Depends(context)]
) -> DeviceCaller:
    """FastAPI dependency: the verified :class:`DeviceCaller` of this request."""
    return await authenticate(ctx, request)


Caller = Annotated[DeviceCaller, Depends(device_caller)]
Context = Annotated[AuthzContext, Depends(context)]
