"""The user's browser sessions seen from a device: list, revoke one, log out (DESIGN.md flow 6).

Session ids are bearer secrets (the portal cookie holds one), so a device never sees them: a
session is named by the portal's :func:`~lychgate.authz.portal.session.session_handle`, a
one-way digest, the same name the portal's own session list uses. "Live" is the portal's
definition too (:func:`~lychgate.authz.portal.session.is_live`: not revoked, not expired, seen
within ``session_idle_ttl``).

Revocation goes through :func:`lychgate.authz.sessions.revoke_session`: store first, then the
bus, so every gateway drops the session from its feed within a second and closes its
WebSockets. A device acts only on its own user's sessions; any other handle is 404. One of
them that has ended already (revoked, or expired and not yet deleted) is 409
``session_ended``.
"""

from __future__ import annotations

import hmac
from datetime import timedelta

from lychgate.authz.context import AuthzContext
from lychgate.authz.device.apps import sessions_of_device
from lychgate.authz.device.auth import DeviceCaller
from lychgate.authz.device.errors import ApiError
from lychgate.authz.device.schemas import rfc3339
from lychgate.authz.portal.session import is_live
from lychgate.authz.sessions import MAX_HANDLE, find_by_handle, revoke_session
from lychgate.domain import AuditEvent, Session
from lychgate.errors import NotFound
from lychgate.ids import session_handle


def session_json(session: Session, caller: DeviceCaller) -> dict[str, object]:
    return {
        "id": session_handle(session.id),
        "created_at": rfc3339(session.created_at),
        "expires_at": rfc3339(session.expires_at),
        "last_seen_at": rfc3339(session.last_seen_at),
        "browser": session.user_agent,
        "ip": session.ip,
        "this_device": session.device_id == caller.device.id,
    }


async def list_sessions(ctx: AuthzContext, caller: DeviceCaller) -> list[dict[str, object]]:
    """The user's live sessions, newest first."""
    now = ctx.clock()
    idle = timedelta(seconds=ctx.settings.session_idle_ttl)
    sessions = await ctx.store.sessions.list_for_user(caller.user.id, live_at=now)
    return [session_json(s, caller) for s in sessions if is_live(s, now, idle)]


async def revoke_own(ctx: AuthzContext, caller: DeviceCaller, handle: str, *, ip: str) -> None:
    """Revoke the caller's user's unexpired session named ``handle``."""
    session = await find_by_handle(ctx, caller.user.id, handle)
    if session is None:
        if await _ended(ctx, caller, handle):
            raise ApiError(
                "session_ended", "that session has already ended", status=409, field="id"
            )
        raise NotFound("no such session", field="id")
    await revoke_session(ctx, session.id, ip=ip or None)


async def _ended(ctx: AuthzContext, caller: DeviceCaller, handle: str) -> bool:
    """Whether ``handle`` names one of the caller's user's sessions that is revoked or expired
    (and still stored): "no such session" sent the user looking for a typo. Another user's
    session stays "no such session", ended or not."""
    wanted = handle.encode("utf-8", "surrogatepass")
    if len(wanted) > MAX_HANDLE:
        return False
    return any(
        hmac.compare_digest(session_handle(s.id).encode(), wanted)
        for s in await ctx.store.sessions.list_for_user(caller.user.id)
    )


async def logout(ctx: AuthzContext, caller: DeviceCaller, *, ip: str) -> int:
    """Revoke every session this device approved (idle ones too); returns how many."""
    revoked = 0
    for session in await sessions_of_device(ctx, caller, idle=True):
        if await revoke_session(ctx, session.id, ip=ip or None):
            revoked += 1
    await ctx.store.audit.append(
        AuditEvent(
            None,
            ctx.clock(),
            "logout",
            caller.user.id,
            caller.device.id,
            ip or None,
            {"sessions": str(revoked)},
        )
    )
    return revoked
