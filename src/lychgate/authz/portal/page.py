"""The portal (``GET /.lychgate/``): the signed-in user's apps, and opening one.

``GET /.lychgate/open/{slug}`` is the only place that makes one-time handoff codes (DESIGN.md
flow 4), and only for a request carrying exactly one sign-in state (``?state=``), which the app
host's gateway put there at ``/.lychgate/start`` after setting it in a cookie. It answers 303 to
the app host's ``/.lychgate/callback`` with a fresh code and that same state; the callback takes
the code only with the matching cookie, so only in the browser that started (login CSRF,
THREAT_MODEL T30: see :mod:`lychgate.gateway.signin_state`). Without a valid state it makes no
code and answers 303 to the app's start URL, which comes back here with one. Codes are made
when the user opens an app, never ahead of time into the page.

The app links are same-origin links to ``open`` without a state, so a click takes the start
URL's detour. In single-host mode the portal may carry the path the user was going to
(``?rd=``), and each link takes it along.

The page's script (``static/portal.js``) listens for ``open`` events from the device, signs out,
and revokes sessions, all through the JSON API in :mod:`.api`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Final, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse

from lychgate.authz.context import AuthzContext
from lychgate.authz.internal import context
from lychgate.authz.login.common import single_rd, to_portal_host
from lychgate.authz.login.pages import LOGIN_TEMPLATES, asset, render_page
from lychgate.authz.login.target import (
    LOGIN_PATH,
    PORTAL_PATH,
    handoff_url,
    may_open,
    start_url,
)
from lychgate.authz.portal.session import current_session, is_live
from lychgate.authz.web import not_a_navigation, top_level_navigation
from lychgate.domain import App, AppPolicy, Session
from lychgate.gateway.admit_redirect import app_path, safe_redirect
from lychgate.gateway.signin_state import holds, is_state, state_cookies
from lychgate.ids import AppSlug, is_id_text, session_handle

PORTAL_TEMPLATES: Final = (Path(__file__).parent / "templates", LOGIN_TEMPLATES)
PORTAL_STATIC: Final = Path(__file__).parent / "static"
STATIC_FILES: Final = frozenset({"portal.js"})
NO_STORE: Final = {"cache-control": "no-store"}

router = APIRouter(include_in_schema=False)
Ctx = Annotated[AuthzContext, Depends(context)]


@dataclass(frozen=True, slots=True)
class AppTile:
    """An app as the portal shows it."""

    name: str
    description: str
    href: str
    icon_kind: Literal["image", "text", "letter"]
    icon: str
    admins_only: bool


def app_tile(app: App, continue_to: str | None) -> AppTile:
    href = f"/.lychgate/open/{quote(app.slug, safe='')}"
    if continue_to:
        href += f"?rd={quote(continue_to, safe='/')}"
    icon = app.icon.strip()
    kind: Literal["image", "text", "letter"]
    if icon.startswith("/") and safe_redirect(icon) == icon:
        kind = "image"  # same-origin only: the page's CSP allows no other images
    elif 0 < len(icon) <= 4:
        kind = "text"  # an emoji or a short mark
    else:
        kind, icon = "letter", (app.name[:1] or app.slug[:1]).upper()
    return AppTile(app.name, app.description, href, kind, icon, app.policy is AppPolicy.ADMINS)


def continue_path(request: Request) -> str | None:
    """The single-host path the user was going to (``?rd=``), if it is a safe app path."""
    path = app_path(single_rd(request) or "/")
    return None if path == "/" else path


def to_login(continue_to: str | None) -> RedirectResponse:
    url = LOGIN_PATH if continue_to is None else f"{LOGIN_PATH}?rd={quote(continue_to, safe='/')}"
    return RedirectResponse(url, status_code=303, headers=NO_STORE)


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def root() -> RedirectResponse:
    """The sign-in host's root, which authz serves whole in subdomains mode: ``serve`` prints
    it as the deployment's address, and it answered a JSON 404. It opens the portal, which
    sends a browser without a session on to sign in."""
    return RedirectResponse(PORTAL_PATH, status_code=302, headers=NO_STORE)


@router.get(PORTAL_PATH)
async def portal(request: Request, ctx: Ctx) -> Response:
    moved = to_portal_host(request, ctx)
    if moved is not None:
        return moved
    continue_to = continue_path(request)
    me = await current_session(ctx, request)
    if me is None:
        return to_login(continue_to)
    now = ctx.clock()
    apps = [app for app in await ctx.store.apps.list() if may_open(me.user, app)]
    rows = await ctx.store.sessions.list_for_user(me.user.id, live_at=now)
    idle = timedelta(seconds=ctx.settings.session_idle_ttl)
    sessions = [s for s in rows if is_live(s, now, idle)]
    return await render_page(
        PORTAL_TEMPLATES,
        "portal.html",
        {
            "user": me.user,
            "apps": [app_tile(app, continue_to) for app in apps],
            "continue_to": continue_to,
            "sessions": [_session_row(s, me.session) for s in sessions],
        },
    )


def _session_row(session: Session, current: Session) -> dict[str, object]:
    return {
        "handle": session_handle(session.id),
        "created": session.created_at.strftime("%Y-%m-%d %H:%M UTC"),
        "last_seen": session.last_seen_at.strftime("%Y-%m-%d %H:%M UTC"),
        "user_agent": session.user_agent or "unknown browser",
        "ip": session.ip,
        "current": session.id == current.id,
    }


@router.get("/.lychgate/open/{slug}")
async def open_app(slug: str, request: Request, ctx: Ctx) -> Response:
    """303 to the app's callback with a fresh handoff code; 404 for an app the user lacks.

    The code is made only for a request with exactly one valid ``state``; any other goes to
    the app's start URL instead, with no code made. In single-host mode every app's pages
    share this origin, so one of them could ask for a code with ``fetch()`` and read it in the
    URL it was redirected to, then redeem it elsewhere with a state of its choosing: here a
    code is made only for a top-level navigation, and only when the browser holds that very
    state in its sign-in state cookie (which the gateway's ``start`` set on this host).
    """
    if not top_level_navigation(request):
        return not_a_navigation()
    continue_to = continue_path(request)
    me = await current_session(ctx, request)
    if me is None:
        return to_login(None)
    app = await ctx.store.apps.get_by_slug(AppSlug(slug)) if is_id_text(slug) else None
    if app is None or not may_open(me.user, app):
        return await render_page(
            PORTAL_TEMPLATES,
            "message.html",
            {
                "heading": "No such app",
                "message": "There is no app here that you may open.",
                "back_href": PORTAL_PATH,
                "back_label": "Back to your apps",
            },
            status=404,
        )
    path = continue_to or "/"
    state = single_state(request)
    single_host = ctx.settings.routing == "single-host"
    if state is not None and single_host and not _holds(ctx, request, state):
        state = None  # start sets it on this host, then comes back here
    if state is None:
        url = start_url(ctx.settings, app, path)
    else:
        url = await handoff_url(ctx, me.session.id, app, path, state)
    return RedirectResponse(url, status_code=303, headers=NO_STORE)


def _holds(ctx: AuthzContext, request: Request, state: str) -> bool:
    """Whether the browser's one sign-in state cookie is ``state``, as the callback checks."""
    return holds(state_cookies(request.headers.getlist("cookie"), ctx.settings.is_https), state)


def single_state(request: Request) -> str | None:
    """The one ``state`` query parameter, if it has a state's form; several count as none."""
    values = request.query_params.getlist("state")
    return values[0] if len(values) == 1 and is_state(values[0]) else None


@router.get("/.lychgate/static/portal/{name}")
async def portal_asset(name: str) -> Response:
    return asset(PORTAL_STATIC, name, STATIC_FILES)
