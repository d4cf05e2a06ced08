"""A user's devices, seen and revoked by an operator (``lychgate user devices|revoke-device``).

A device is a credential: a CLI key file or a passkey. One that is lost or stolen must be cut
off on its own, without disabling its user (which ends everything, and which ``enable`` would
undo for the stolen device too). Revoking a device refuses it at once on the device API and
at sign-in approval, and ends the sessions it approved: their browsers are signed out and
the gateways close their WebSockets within seconds (the sessions to end travel in the feed).
"""

from __future__ import annotations

from datetime import datetime

from lychgate.domain import AuditEvent, Device, User
from lychgate.errors import NotFound
from lychgate.ids import DeviceId, SessionId
from lychgate.store import Store


async def devices_of(store: Store, user: User) -> list[Device]:
    """Every device of ``user``, revoked ones too, oldest first."""
    return list(await store.devices.list_for_user(user.id, include_revoked=True))


async def revoke_device(
    store: Store, user: User, device_id: str, now: datetime
) -> tuple[Device, list[SessionId]]:
    """Revoke ``user``'s device ``device_id`` and end the live sessions it approved; returns
    the device and those sessions. NotFound for a device that is not this user's (never
    another user's, whatever its id)."""
    device = next((d for d in await devices_of(store, user) if d.id == device_id), None)
    if device is None:
        raise NotFound(f"{user.name} has no device {device_id!r}", field="device")
    await store.devices.revoke(DeviceId(device.id))
    ended = []
    for session in await store.sessions.list_for_user(user.id, live_at=now):
        if session.device_id == device.id and await store.sessions.revoke(session.id, now):
            ended.append(session.id)
    # And the sign-ins it approved that no browser finished yet: their status said
    # "approved" until a finish was tried (which then refused them).
    denied = await store.login_requests.deny_approved(
        user_id=user.id, device_id=DeviceId(device.id)
    )
    details = {
        "device": device.id,
        "sessions_ended": str(len(ended)),
        "sign_ins_denied": str(len(denied)),
    }
    await store.audit.append(
        AuditEvent(None, now, "device.revoked", user.id, device.id, None, details)
    )
    return device, ended
