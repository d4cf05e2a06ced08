"""``GET /.lychgate/login``: the QR login page (DESIGN.md flow 3).

The page starts its first login request on the server, through the same
:func:`~lychgate.authz.login.common.begin_login` as the JSON API, so that it arrives complete:
the QR code (inline SVG), the link as text, the number and where the user is going. Its script
(``static/login.js``) then waits on the SSE stream, falls back to polling, finishes on approval,
and starts a fresh request through the JSON API when one expires.

A browser that already has a live session skips all that: it goes at once to the app host's
sign-in start, which leads through a fresh handoff (:mod:`lychgate.gateway.signin_state`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import RedirectResponse
from markupsafe import Markup

from lychgate.authz.context import AuthzContext
from lychgate.authz.internal import context
from lychgate.authz.login.binding import set_binding_cookie
from lychgate.authz.login.common import begin_login, single_rd, target_of, to_portal_host
from lychgate.authz.login.pages import LOGIN_STATIC, LOGIN_TEMPLATES, asset, render_page
from lychgate.authz.login.qr import qr_svg
from lychgate.authz.login.service import StartedLogin
from lychgate.authz.login.target import LOGIN_PATH, PORTAL_PATH, Target, redirect_after_sign_in
from lychgate.authz.portal.session import current_session
from lychgate.authz.web import not_a_navigation, top_level_navigation

API = "/.lychgate/api/v1/login"
STATIC_FILES = frozenset({"login.js", "lychgate.css"})
TEMPLATES = (LOGIN_TEMPLATES,)

router = APIRouter(include_in_schema=False)


@router.get(LOGIN_PATH)
async def login_page(request: Request, ctx: Annotated[AuthzContext, Depends(context)]) -> Response:
    moved = to_portal_host(request, ctx)
    if moved is not None:
        return moved
    if not top_level_navigation(request):
        # An <img> or fetch() of the login page on any site would make a login request and
        # count against the visitor's IP: twenty of them locked the network out of signing in.
        return not_a_navigation()
    target = await target_of(request, single_rd(request))
    signed_in = await current_session(ctx, request)
    if signed_in is not None:
        url = await redirect_after_sign_in(
            ctx,
            signed_in.user,
            app_slug=None if target.app is None else target.app.slug,
            rd=target.rd,
        )
        return RedirectResponse(url, status_code=303, headers={"cache-control": "no-store"})
    try:
        started = await begin_login(ctx, request, target)
    except HTTPException as exc:
        if exc.status_code != 429:
            raise
        retry = (exc.headers or {}).get("retry-after", "60")
        return await render_page(
            TEMPLATES,
            "message.html",
            {
                "heading": "Too many sign-in attempts",
                "message": f"Too many sign-in attempts came from your network. "
                f"Try again in {retry} seconds.",
            },
            status=429,
            headers={"retry-after": retry},
        )
    page = await render_page(TEMPLATES, "login.html", page_variables(ctx, target, started))
    set_binding_cookie(page, ctx, started.secret)
    return page


def page_variables(ctx: AuthzContext, target: Target, started: StartedLogin) -> dict[str, Any]:
    """What login.html shows: the request, and where the user is going."""
    login = started.login
    app = target.app
    if target.rd == PORTAL_PATH:
        where: str | None = None
    elif ctx.settings.routing == "subdomains":
        where = target.origin + target.path
    else:
        where = target.path  # single-host: the gateway routes by token, so show the path
    return {
        "login_id": login.id,
        "login_url": started.login_url,
        "number": f"{login.number:02d}",
        "qr": Markup(qr_svg(started.login_url)),  # noqa: S704 -- segno's own SVG, our URL
        "ttl": ctx.settings.login_request_ttl,
        "countdown": _mm_ss(ctx.settings.login_request_ttl),
        "rd": target.rd,
        "app_name": None if app is None else app.name,
        "where": where,
        "api": API,
    }


def _mm_ss(seconds: int) -> str:
    return f"{seconds // 60}:{seconds % 60:02d}"


@router.get("/.lychgate/static/login/{name}")
async def login_asset(name: str) -> Response:
    return asset(LOGIN_STATIC, name, STATIC_FILES)
