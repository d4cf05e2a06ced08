"""The browser's login API (docs/sign-in-protocol.md, "Login, browser side").

* ``POST /.lychgate/api/v1/login`` starts a request and sets the binding cookie.
* ``GET /.lychgate/api/v1/login/{id}``, ``.../events`` (SSE) and ``.../qr.svg`` read it.
* ``POST /.lychgate/api/v1/login/{id}/finish`` turns an approved request into a session.

All but the first need the binding cookie and answer 404 without it (:mod:`.binding`). Every
route refuses cross-origin callers and every POST needs JSON (:mod:`.guards`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from lychgate.authz.context import AuthzContext
from lychgate.authz.internal import context
from lychgate.authz.login import sse
from lychgate.authz.login.binding import bound_login, clear_binding_cookie, set_binding_cookie
from lychgate.authz.login.common import begin_login, on_portal_host, target_of
from lychgate.authz.login.events import login_status_events
from lychgate.authz.login.guards import csrf_safe, same_origin
from lychgate.authz.login.models import (
    FinishIn,
    LoginCreated,
    LoginIn,
    LoginStatusOut,
    RedirectOut,
    errors,
)
from lychgate.authz.login.qr import qr_svg
from lychgate.authz.login.service import finish_login, login_url, public_status
from lychgate.authz.portal.session import set_session_cookie
from lychgate.authz.web import client_ip, user_agent
from lychgate.domain import LoginRequest
from lychgate.errors import Conflict, NotFound

PREFIX = "/.lychgate/api/v1/login"
router = APIRouter(tags=["login"], dependencies=[Depends(on_portal_host)])
Ctx = Annotated[AuthzContext, Depends(context)]


async def _bound(ctx: AuthzContext, request: Request, login_id: str) -> LoginRequest:
    try:
        return await bound_login(ctx, request, login_id)
    except NotFound:
        raise HTTPException(status_code=404, detail="not_found") from None


@router.post(
    PREFIX,
    status_code=201,
    response_model=LoginCreated,
    responses=errors(403, 415, 429),
    dependencies=[Depends(csrf_safe)],
    summary="Start a login request",
)
async def create_login(
    body: LoginIn, request: Request, response: Response, ctx: Ctx
) -> LoginCreated:
    """A new request for this browser: show ``login_url`` as a QR code and ``number``."""
    started = await begin_login(ctx, request, await target_of(request, body.rd))
    set_binding_cookie(response, ctx, started.secret)
    response.headers["cache-control"] = "no-store"
    login = started.login
    return LoginCreated(
        id=login.id, login_url=started.login_url, number=login.number, expires_at=login.expires_at
    )


@router.get(
    PREFIX + "/{login_id}",
    response_model=LoginStatusOut,
    responses=errors(403, 404),
    dependencies=[Depends(same_origin)],
    summary="Read a login request's status",
)
async def login_status(login_id: str, request: Request, ctx: Ctx) -> LoginStatusOut:
    login = await _bound(ctx, request, login_id)
    return LoginStatusOut(status=public_status(login, ctx.clock()))


@router.get(
    PREFIX + "/{login_id}/events",
    response_class=StreamingResponse,
    responses={**sse.OPENAPI_STREAM, **errors(403, 404)},
    dependencies=[Depends(same_origin)],
    summary="Wait for a login request's status (server-sent events)",
)
async def login_events(login_id: str, request: Request, ctx: Ctx) -> StreamingResponse:
    """``event: status`` with ``{"status": ...}`` per change; ends once approved or final."""
    login = await _bound(ctx, request, login_id)
    return sse.event_stream(login_status_events(ctx, login.id))


@router.get(
    PREFIX + "/{login_id}/qr.svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}, **errors(403, 404)},
    dependencies=[Depends(same_origin)],
    summary="The QR code of a login request's link",
)
async def login_qr(login_id: str, request: Request, ctx: Ctx) -> Response:
    login = await _bound(ctx, request, login_id)
    svg = qr_svg(login_url(ctx.settings.public_url, login.id))
    headers = {"cache-control": "no-store", "x-content-type-options": "nosniff"}
    return Response(svg, media_type="image/svg+xml", headers=headers)


# Why a finish is refused (409), as the login page reads it: "already_finished" when another
# finish of the same request won (the page reloads and finds the session, if it was its own);
# "approver_gone" when the device that approved it was revoked, or its user disabled, since.
_FINISH_REFUSALS = {
    "status": "not_approved",
    "finished": "already_finished",
    "user": "approver_gone",
    "device": "approver_gone",
}


@router.post(
    PREFIX + "/{login_id}/finish",
    response_model=RedirectOut,
    responses=errors(403, 404, 409, 415),
    dependencies=[Depends(csrf_safe)],
    summary="Finish an approved login request into a session",
)
async def finish(
    login_id: str,
    request: Request,
    ctx: Ctx,
    body: Annotated[FinishIn | None, Body()] = None,
) -> JSONResponse:
    """Sets the session cookie, clears the binding cookie, and says where to go next."""
    login = await _bound(ctx, request, login_id)
    try:
        done = await finish_login(ctx, login, ip=client_ip(request), user_agent=user_agent(request))
    except Conflict as exc:
        detail = _FINISH_REFUSALS.get(exc.field or "", "refused")
        raise HTTPException(status_code=409, detail=detail) from None
    body_out = RedirectOut(redirect=done.redirect).model_dump()
    response = JSONResponse(body_out, headers={"cache-control": "no-store"})
    set_session_cookie(response, ctx, done.session)
    clear_binding_cookie(response, ctx)
    return response
