"""The browser's auth session: cookie -> live session row -> user.

The cookie (``lychgate_session``, ``__Host-`` prefixed on https; see
:func:`lychgate.authz.web.session_cookie_name`) holds the session id, a 128-bit random secret.
A session is live while it is not revoked, not past ``expires_at`` (``session_ttl``) and has
been seen within ``session_idle_ttl``; its user must still be enabled. ``last_seen_at`` is
written at most once a minute, so a busy portal does not turn every read into a write.

Cookie tossing (SECURITY.md item 5): on plain http a sibling host could plant a second cookie
under our name. Every value (at most four) is checked, and a browser is signed in only when
exactly one distinct live session is found, as the gateway does with app tokens.

Session ids are bearer secrets, so the JSON API never shows them: a session is named by its
:func:`session_handle`, a one-way digest of the id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from fastapi import Request, Response

from lychgate.authz.context import AuthzContext
from lychgate.authz.web import secure_cookies, session_cookie_name
from lychgate.domain import Session, User
from lychgate.errors import NotFound
from lychgate.gateway.cookies import cookie_values
from lychgate.ids import SessionId, session_handle

TOUCH_EVERY: Final = timedelta(seconds=60)
MAX_VALUES: Final = 4
_SESSION_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A live session and its (enabled) user."""

    session: Session
    user: User

    @property
    def handle(self) -> str:
        return session_handle(self.session.id)


def is_live(session: Session, now: datetime, idle_ttl: timedelta) -> bool:
    """Not revoked, not expired, and seen within ``idle_ttl``. Pure."""
    if session.revoked or session.expires_at <= now:
        return False
    return now - session.last_seen_at < idle_ttl


async def load_live(
    ctx: AuthzContext, session_id: SessionId, *, touch: bool = True
) -> SignedIn | None:
    """The session and its user if the session is live now; with ``touch``, records the visit
    (at most once every :data:`TOUCH_EVERY`)."""
    now = ctx.clock()
    try:
        session = await ctx.store.sessions.get(session_id)
        if not is_live(session, now, timedelta(seconds=ctx.settings.session_idle_ttl)):
            return None
        user = await ctx.store.users.get(session.user_id)
    except NotFound:
        return None
    if user.disabled:
        return None
    if touch and now - session.last_seen_at >= TOUCH_EVERY:
        if not await ctx.store.sessions.touch(session.id, now):
            return None  # revoked or expired between the read and the write
        session = replace(session, last_seen_at=now)
    return SignedIn(session, user)


def presented_session_ids(ctx: AuthzContext, request: Request) -> list[SessionId]:
    """The distinct, well-formed values of the session cookie; none if there are too many."""
    values = cookie_values(request.headers.getlist("cookie"), session_cookie_name(ctx))
    distinct = list(dict.fromkeys(v for v in values if _SESSION_ID.fullmatch(v)))
    return [] if len(distinct) > MAX_VALUES else [SessionId(v) for v in distinct]


async def current_session(ctx: AuthzContext, request: Request) -> SignedIn | None:
    """The browser's live session, if its cookie names exactly one (see the module docstring)."""
    found: list[SignedIn] = []
    for session_id in presented_session_ids(ctx, request):
        signed_in = await load_live(ctx, session_id)
        if signed_in is not None:
            found.append(signed_in)
    return found[0] if len(found) == 1 else None


def set_session_cookie(response: Response, ctx: AuthzContext, session: Session) -> None:
    """Store the session id: HttpOnly, SameSite=Lax, Path=/, host-only; Secure on https."""
    max_age = int((session.expires_at - session.created_at).total_seconds())
    response.set_cookie(
        session_cookie_name(ctx),
        session.id,
        max_age=max(0, max_age),
        path="/",
        secure=secure_cookies(ctx),
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, ctx: AuthzContext) -> None:
    response.delete_cookie(
        session_cookie_name(ctx),
        path="/",
        secure=secure_cookies(ctx),
        httponly=True,
        samesite="lax",
    )
