"""Routes of the device slice: the signed JSON API a device calls (docs/sign-in-protocol.md).

Every route here needs a signed device call (:mod:`lychgate.authz.device.auth`); bodies are
parsed from the verified bytes. Enrollment, the one unsigned device call, lives in the enroll
slice. Errors are JSON (:mod:`lychgate.authz.device.errors`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from lychgate.authz.device import apps, login, sessions
from lychgate.authz.device.auth import Caller, Context
from lychgate.authz.device.errors import JsonErrorRoute, parse_body
from lychgate.authz.device.schemas import ApproveIn, OpenIn
from lychgate.authz.portal.listeners import listeners_of
from lychgate.authz.ratelimit import SharedLimit
from lychgate.authz.web import client_ip

PREFIX = "/.lychgate/api/v1/device"

router = APIRouter(prefix=PREFIX, route_class=JsonErrorRoute, tags=["device"])


def _approve_limiter(request: Request) -> SharedLimit:
    limiter: SharedLimit = request.app.state.approve_limiter
    return limiter


@router.get("/login/{request_id}", summary="A login request, as the device shows it")
async def login_context(request_id: str, caller: Caller, ctx: Context) -> JSONResponse:
    view = await login.describe(ctx, caller, request_id)
    return JSONResponse(view.to_json(), headers={"cache-control": "no-store"})


@router.post("/login/{request_id}/approve", summary="Approve with the number the user picked")
async def approve(request_id: str, request: Request, caller: Caller, ctx: Context) -> JSONResponse:
    # Per device, before anything else: guessing numbers across requests costs attempts.
    await _approve_limiter(request).hit(caller.device.id)
    body = parse_body(ApproveIn, caller.body)
    await login.approve(ctx, caller, request_id, body.number, ip=client_ip(request))
    return JSONResponse({"status": "approved"})


@router.post("/login/{request_id}/deny", summary="Deny a login request")
async def deny(request_id: str, request: Request, caller: Caller, ctx: Context) -> JSONResponse:
    await _approve_limiter(request).hit(caller.device.id)
    await login.deny(ctx, caller, request_id, ip=client_ip(request))
    return JSONResponse({"status": "denied"})


@router.get("/apps", summary="The apps this device's user may open")
async def list_apps(caller: Caller, ctx: Context) -> JSONResponse:
    return JSONResponse({"apps": await apps.apps_for(ctx, caller.user)})


@router.post("/open", summary="Open an app in the browser this device signed in")
async def open_app(request: Request, caller: Caller, ctx: Context) -> JSONResponse:
    body = parse_body(OpenIn, caller.body)
    listeners = listeners_of(request.app.state)
    opened = await apps.open_app(ctx, caller, body.slug, listeners=listeners)
    answer: dict[str, object] = {"status": "sent", "slug": body.slug}
    if opened.delivered is not None:  # absent: cannot tell (a page may listen elsewhere)
        answer["delivered"] = opened.delivered
    return JSONResponse(answer)


@router.get("/sessions", summary="The user's live browser sessions")
async def list_sessions(caller: Caller, ctx: Context) -> JSONResponse:
    listed = await sessions.list_sessions(ctx, caller)
    return JSONResponse({"sessions": listed}, headers={"cache-control": "no-store"})


@router.delete("/sessions/{handle}", status_code=204, summary="Revoke one session")
async def revoke_session(handle: str, request: Request, caller: Caller, ctx: Context) -> Response:
    await sessions.revoke_own(ctx, caller, handle, ip=client_ip(request))
    return Response(status_code=204)


@router.post("/logout", summary="Revoke every session this device signed in")
async def logout(request: Request, caller: Caller, ctx: Context) -> JSONResponse:
    revoked = await sessions.logout(ctx, caller, ip=client_ip(request))
    return JSONResponse({"revoked": revoked})
