"""The signed-in browser's API: its event stream, signing out, and its sessions.

* ``GET /.lychgate/api/v1/session/events``: SSE, ``open`` pushed by the device (:mod:`.events`).
* ``POST /.lychgate/logout`` and ``POST /.lychgate/api/v1/session/logout``: revoke this
  session, clear the cookie, audit ``logout``. Both do the same; the portal page uses the
  second, because in single-host mode the gateway answers ``/.lychgate/logout`` itself.
* ``GET /.lychgate/logout``: the same by a link or a typed address on the portal host
  (subdomains mode; the gateway answers it on app hosts and in single-host mode, by the same
  rule): a top-level navigation from this origin or typed, then a redirect to the login page.
* ``GET /.lychgate/api/v1/sessions`` and ``DELETE /.lychgate/api/v1/sessions/{id}``: the user's
  own live sessions, named by handles (:func:`~.session.session_handle`); another user's
  session, or an unknown handle, is a 404.

Without a live session the JSON routes answer 401. Cross-site callers are refused, and POSTs
need JSON (:mod:`lychgate.authz.login.guards`).
"""

from __future__ import annotations

import hmac
from collections.abc import Collection
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse

from lychgate.authz.context import AuthzContext
from lychgate.authz.internal import context
from lychgate.authz.login import sse
from lychgate.authz.login.common import on_portal_host
from lychgate.authz.login.guards import csrf_safe, same_origin
from lychgate.authz.login.models import errors
from lychgate.authz.login.target import LOGIN_PATH
from lychgate.authz.portal.events import session_events
from lychgate.authz.portal.listeners import listeners_of
from lychgate.authz.portal.models import LogoutOut, SessionOut, SessionsOut
from lychgate.authz.portal.session import (
    SignedIn,
    clear_session_cookie,
    current_session,
    is_live,
    presented_session_ids,
)
from lychgate.authz.sessions import revoke_session
from lychgate.authz.snapshots import SnapshotPublisher
from lychgate.authz.web import client_ip, not_a_navigation, secure_cookies, top_level_navigation
from lychgate.domain import AuditEvent
from lychgate.errors import NotFound
from lychgate.gateway.cookies import clear_app_cookie
from lychgate.ids import session_handle

router = APIRouter(tags=["session"], dependencies=[Depends(on_portal_host)])
Ctx = Annotated[AuthzContext, Depends(context)]


async def signed_in(request: Request, ctx: Ctx) -> SignedIn:
    """Dependency: the browser's live session, else 401."""
    found = await current_session(ctx, request)
    if found is None:
        raise HTTPException(status_code=401, detail="login_required")
    return found


SignedInDep = Annotated[SignedIn, Depends(signed_in)]


@router.get(
    "/.lychgate/api/v1/session/events",
    response_class=StreamingResponse,
    responses={**sse.OPENAPI_STREAM, **errors(401, 403)},
    dependencies=[Depends(same_origin)],
    summary="Apps to open, pushed by the device (server-sent events)",
)
async def events(request: Request, ctx: Ctx, me: SignedInDep) -> StreamingResponse:
    """``{"type": "open", "url": ...}`` when the device opens an app for this browser;
    ``{"type": "signed_out"}`` and the end of the stream when the session ends."""
    publisher: SnapshotPublisher = request.app.state.publisher

    def origins() -> Collection[str]:
        latest = publisher.latest
        return () if latest is None else latest.served_origins()

    listeners = listeners_of(request.app.state)
    return sse.event_stream(
        session_events(ctx, me.session.id, origins=origins, listeners=listeners)
    )


async def sign_out(ctx: AuthzContext, request: Request) -> None:
    """Revoke every session the cookie names (live or not: the holder may end it)."""
    ip = client_ip(request) or None
    for session_id in presented_session_ids(ctx, request):
        try:
            session = await ctx.store.sessions.get(session_id)
        except NotFound:
            continue
        if await revoke_session(ctx, session_id, ip=ip):
            await ctx.store.audit.append(
                AuditEvent(None, ctx.clock(), "logout", session.user_id, session.device_id, ip)
            )


@router.post(
    "/.lychgate/logout",
    response_model=LogoutOut,
    responses=errors(403, 415),
    dependencies=[Depends(csrf_safe)],
    summary="Sign out (portal host)",
)
@router.post(
    "/.lychgate/api/v1/session/logout",
    response_model=LogoutOut,
    responses=errors(403, 415),
    dependencies=[Depends(csrf_safe)],
    summary="Sign out",
)
async def logout(request: Request, ctx: Ctx) -> JSONResponse:
    """Revoke this browser's session and clear its cookies. Idempotent."""
    await sign_out(ctx, request)
    response = JSONResponse(
        LogoutOut(redirect=LOGIN_PATH).model_dump(), headers={"cache-control": "no-store"}
    )
    _clear_cookies(response, ctx)
    return response


@router.get("/.lychgate/logout", include_in_schema=False)
async def logout_link(request: Request, ctx: Ctx) -> Response:
    """Sign out by a link or a typed address: what the README tells users to do, which on the
    portal host answered 405 in subdomains mode. Not from another site, nor an ``<img>`` or a
    ``fetch()`` (they would sign out anyone who views a page): the gateway's rule for this
    path on app hosts."""
    site = request.headers.get("sec-fetch-site")
    if not top_level_navigation(request) or site not in (None, "same-origin", "none"):
        return not_a_navigation()
    await sign_out(ctx, request)
    response = RedirectResponse(LOGIN_PATH, status_code=303, headers={"cache-control": "no-store"})
    _clear_cookies(response, ctx)
    return response


def _clear_cookies(response: Response, ctx: AuthzContext) -> None:
    clear_session_cookie(response, ctx)
    if ctx.settings.routing == "single-host":
        # The app cookie lives on this same host; its session is gone, so drop it too.
        response.headers.append("set-cookie", clear_app_cookie(secure=secure_cookies(ctx)))


@router.get(
    "/.lychgate/api/v1/sessions",
    response_model=SessionsOut,
    responses=errors(401, 403),
    dependencies=[Depends(same_origin)],
    summary="The signed-in user's live sessions",
)
async def list_sessions(ctx: Ctx, me: SignedInDep, response: Response) -> SessionsOut:
    response.headers["cache-control"] = "no-store"  # IPs, browsers, handles: for no cache
    now = ctx.clock()
    idle = ctx.settings.session_idle_ttl
    rows = await ctx.store.sessions.list_for_user(me.user.id, live_at=now)
    return SessionsOut(
        sessions=[
            SessionOut.of(s, current=s.id == me.session.id)
            for s in rows
            if is_live(s, now, _seconds(idle))
        ]
    )


@router.delete(
    "/.lychgate/api/v1/sessions/{handle}",
    status_code=204,
    response_class=Response,
    responses=errors(401, 403, 404),
    dependencies=[Depends(csrf_safe)],
    summary="Revoke one of the signed-in user's sessions",
)
async def delete_session(handle: str, request: Request, ctx: Ctx, me: SignedInDep) -> Response:
    rows = await ctx.store.sessions.list_for_user(me.user.id, live_at=ctx.clock())
    wanted = handle.encode("utf-8", "surrogatepass")[:64]
    match = [s for s in rows if hmac.compare_digest(session_handle(s.id).encode(), wanted)]
    if not match:
        raise HTTPException(status_code=404, detail="not_found")
    session = match[0]
    await revoke_session(ctx, session.id, ip=client_ip(request) or None)
    response = Response(status_code=204)
    if session.id == me.session.id:
        clear_session_cookie(response, ctx)
    return response


def _seconds(n: int) -> timedelta:
    return timedelta(seconds=n)
