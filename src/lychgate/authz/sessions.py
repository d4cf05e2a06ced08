"""Revoking sessions: store first, then tell every gateway through the bus and the feed."""

from __future__ import annotations

from lychgate.authz.context import AuthzContext
from lychgate.domain import AuditEvent
from lychgate.errors import NotFound
from lychgate.events import SessionRevoked
from lychgate.ids import SessionId


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
