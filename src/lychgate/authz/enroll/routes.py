"""Routes of the enroll slice: redeeming enrollment links, the link page, the setup page.

* ``POST /.lychgate/api/v1/device/enroll``: the one unsigned device call; the code in the body
  is the credential (docs/sign-in-protocol.md, "Device calls"). So that nobody can guess codes
  at speed, failed redemptions are rate limited per client IP (SECURITY.md item 7): over the
  limit, 429 with ``Retry-After``, and the code is not even tried. A request that does not
  validate tests no code and does not count; one that enrolls gives its count back. An
  ill-formed ``user_name`` or ``email`` (they matter to setup links only) is not such a
  request: its code is tried as an ordinary link, and the 400 it gets otherwise counts.
* ``GET /.lychgate/enroll/<code>``: what a browser sees when it opens an enrollment link. It
  never redeems the code: GET is side-effect free, and chat apps and mail scanners fetch links
  to preview them.
* ``GET /.lychgate/setup``: the "finish setup" page the gateway sends browsers to while no
  admin exists (DESIGN.md flow 1).
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from lychgate.authz.context import AuthzContext
from lychgate.authz.device.auth import read_body
from lychgate.authz.device.errors import JsonErrorRoute, parse_body
from lychgate.authz.enroll import service
from lychgate.authz.enroll.pages import page, qr_svg
from lychgate.authz.internal import context
from lychgate.authz.ratelimit import SharedLimit
from lychgate.authz.web import client_ip
from lychgate.deployment.enroll import enrollment_url
from lychgate.gateway.http.clientcap import client_key
from lychgate.tokens.onetime import MAX_CODE_CHARS

Context = Annotated[AuthzContext, Depends(context)]
PORTAL = "/.lychgate/"
_CODE_SHAPE = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_CODE_CHARS}}}")

router = APIRouter()
api = APIRouter(route_class=JsonErrorRoute, tags=["device"])


class EnrollIn(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    code: str = Field(min_length=1, max_length=MAX_CODE_CHARS)
    public_key: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=200)
    user_name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=300)


@api.post("/.lychgate/api/v1/device/enroll", status_code=201, summary="Enroll a device key")
async def enroll(request: Request, ctx: Context) -> JSONResponse:
    """Redeem an enrollment code for a new device key (201), or refuse it (409); 429 when
    this client IP failed too often lately (module docstring)."""
    body = parse_body(EnrollIn, await read_body(request))
    checked = service.check_request(
        code=body.code,
        public_key=body.public_key,
        name=body.name,
        user_name=body.user_name,
        email=body.email,
    )
    ip = client_ip(request)
    limiter: SharedLimit = request.app.state.enroll_limiter
    who = client_key(ip)  # an IPv6 client is its /64
    await limiter.hit(who)  # RateLimited: 429 + Retry-After (JsonErrorRoute)
    done = await service.enroll(ctx, checked, ip=ip)
    await limiter.refund(who)  # only failures count
    user = done.user
    return JSONResponse(
        {
            "device_id": done.device.id,
            "user": {"id": user.id, "name": user.name, "email": user.email},
            "public_url": ctx.settings.public_url,
        },
        status_code=201,
        headers={"cache-control": "no-store"},
    )


@router.get("/.lychgate/enroll/{code}", include_in_schema=False)
async def enroll_page(code: str, ctx: Context) -> Response:
    """How to use an enrollment link. Shows the link; does not look it up or redeem it."""
    if not _CODE_SHAPE.fullmatch(code):  # codes are base64url: anything else is not ours
        return await page("enroll_bad.html", status=404)
    url = enrollment_url(ctx.settings, code)
    return await page("enroll.html", url=url, qr=qr_svg(url))


@router.get("/.lychgate/setup", include_in_schema=False)
async def setup_page(ctx: Context) -> Response:
    """The "finish setup" page while no admin exists; the portal afterwards."""
    if await ctx.store.users.count_admins() > 0:
        return RedirectResponse(PORTAL, status_code=303)
    return await page("setup.html", portal=PORTAL)


router.include_router(api)


@router.get("/.lychgate/d/login/{login_id}", include_in_schema=False)
async def approve_page(login_id: str, ctx: Context) -> Response:
    """What a phone or browser shows for a login QR code: how to approve it with a device.

    It reveals nothing about the request (no browser, IP or number): only an enrolled device,
    over its signed API, sees the context.
    """
    if not _CODE_SHAPE.fullmatch(login_id):
        return await page("enroll_bad.html", status=404)
    url = f"{ctx.settings.public_url}/.lychgate/d/login/{login_id}"
    return await page("approve.html", url=url)
