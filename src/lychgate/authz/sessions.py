"""Revoking sessions: store first, then tell every gateway through the bus and the feed."""

from __future__ import annotations

import hmac
from typing import Final

from lychgate.authz.context import AuthzContext
from lychgate.domain import AuditEvent, Session
from lychgate.errors import NotFound
from lychgate.events import SessionRevoked
from lychgate.ids import SessionId, UserId, session_handle

MAX_HANDLE: Final = 128  # longer names are no handle of ours (22 characters)


async def find_by_handle(ctx: AuthzContext, user_id: UserId, handle: str) -> Session | None:
    """The user's unexpired session named ``handle`` (:func:`~lychgate.ids.session_handle`),
    compared in constant time, or None."""
    wanted = handle.encode("utf-8", "surrogatepass")
    if len(wanted) > MAX_HANDLE:
        return None
    for session in await ctx.store.sessions.list_for_user(user_id, live_at=ctx.clock()):
        if hmac.compare_digest(session_handle(session.id).encode(), wanted):
            return session
    return None


async def revoke_session(ctx: AuthzContext, sid: SessionId, *, ip: str | None = None) -> bool:
    """Revoke ``sid``; returns whether this call revoked it. Unknown ids are not an error."""
    now = ctx.clock()
    try:
        session = await ctx.store.sessions.get(sid)
    except NotFound:
        return False
    changed = await ctx.store.sessions.revoke(sid, now)
    if changed:
        await ctx.store.audit.append(
            AuditEvent(
                None,
                now,
                "session.revoked",
                session.user_id,
                session.device_id,
                ip,
                {"session": sid},
            )
        )
        await ctx.bus.publish(SessionRevoked(session_id=sid, user_id=session.user_id))
    return changed
