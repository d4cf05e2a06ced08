"""Where a browser goes after signing in: the ``rd`` target, its app, and the handoff URL.

Theory of operation
-------------------
``rd`` arrives from the gateway's login redirect (or from anyone: it is attacker-controlled).
It is checked once, by :func:`~lychgate.gateway.admit_redirect.safe_redirect` against the
origins the gateway serves (SECURITY.md item 1); a refused ``rd`` becomes the portal and leads
to no app, so no handoff code is ever made for it.

An accepted target names an app or none:

* **subdomains**: an absolute URL on an app host names that app; anything on the portal host
  names none.
* **single-host**: the gateway routes by the token, not by the path, so a path names no app by
  itself. When the deployment has exactly one enabled app, that is where the user is going;
  with several, the portal lets the user choose and carries the path along (``?rd=``).

A target under ``/.lychgate/`` is the portal, and such a path never becomes a callback's
``rd``: the gateway answers some of them itself (``/.lychgate/logout``), and sending a fresh
sign-in there would undo it.

After sign-in the browser is sent to the app host's start URL,
``<app origin>/.lychgate/start?app=<slug>&rd=<path>``, or to the portal. No code is made here:
the gateway sets the sign-in state cookie there and sends the browser on to the portal's
``open``, which alone makes one-time codes, each bound to that state (DESIGN.md flow 4; the why
is login CSRF, THREAT_MODEL T30, in :mod:`lychgate.gateway.signin_state`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, urlsplit

from lychgate.authz.context import AuthzContext
from lychgate.authz.handoff import issue_handoff
from lychgate.config import Settings
from lychgate.domain import App, AppPolicy, User
from lychgate.gateway.admit_redirect import app_path, origin_of, safe_redirect
from lychgate.gateway.paths import is_reserved
from lychgate.gateway.signin_state import START_PATH
from lychgate.gateway.snapshot import ConfigSnapshot
from lychgate.ids import AppSlug, SessionId

PORTAL_PATH: Final = "/.lychgate/"
LOGIN_PATH: Final = "/.lychgate/login"
CALLBACK_PATH: Final = "/.lychgate/callback"


@dataclass(frozen=True, slots=True)
class Target:
    """An accepted sign-in target.

    ``rd`` is the normalized value that is stored with the login request (the portal path when
    ``rd`` was refused or absent); ``path`` is its path and query on ``origin``; ``app`` is the
    app it leads to, None for the portal.
    """

    rd: str
    origin: str
    path: str
    app: App | None


def public_origin(settings: Settings) -> str:
    """The canonical origin of the public (portal) URL."""
    return origin_of(settings.public_url) or settings.public_url


def app_origin(settings: Settings, app: App) -> str:
    """Where ``app`` is served: the public origin in single-host mode, else its own host."""
    origin = public_origin(settings)
    if settings.routing == "single-host":
        return origin
    parts = urlsplit(origin)
    host = app.host or f"{app.slug}.{settings.app_domain}"
    port = "" if parts.port is None else f":{parts.port}"
    return f"{parts.scheme}://{host}{port}"


def resolve_target(rd: str | None, snapshot: ConfigSnapshot) -> Target:
    """Check ``rd`` and find the app it leads to (see the module docstring). Pure."""
    portal = Target(PORTAL_PATH, snapshot.public_origin, PORTAL_PATH, None)
    value = safe_redirect(rd or "", origins=snapshot.served_origins())
    if value is None:
        return portal
    origin, path = split_origin(value, snapshot.public_origin)
    if is_reserved(urlsplit(path).path):
        return portal  # ours (the portal itself, an admin page ...): no app to hand off to
    if origin != snapshot.public_origin:
        by_origin = {snapshot.origin_for(h): a for h, a in snapshot.apps_by_host.items()}
        app = by_origin.get(origin)
        # None cannot happen after safe_redirect; refuse rather than guess.
        return portal if app is None else Target(value, origin, path, app)
    if snapshot.routing == "subdomains":
        return portal  # the portal host serves no app
    return Target(value, origin, path, _single_app(snapshot))


def split_origin(value: str, default_origin: str) -> tuple[str, str]:
    """``(origin, path)`` of a value accepted by ``safe_redirect`` (a path or an absolute URL)."""
    if value.startswith("/"):
        return default_origin, value
    scheme, _, rest = value.partition("://")
    authority, slash, path = rest.partition("/")
    return f"{scheme}://{authority}", slash + path


def _single_app(snapshot: ConfigSnapshot) -> App | None:
    apps = list(snapshot.apps_by_slug.values())
    return apps[0] if len(apps) == 1 else None


def may_open(user: User, app: App) -> bool:
    """Whether ``user`` may be handed an app token for ``app`` (checked again at redemption)."""
    if user.disabled or not app.enabled:
        return False
    return app.policy is not AppPolicy.ADMINS or user.is_admin


def portal_url(path: str | None = None) -> str:
    """The portal, carrying a single-host path the user was going to (``?rd=``)."""
    if path is None or app_path(path) == "/":
        return PORTAL_PATH
    return f"{PORTAL_PATH}?rd={quote(app_path(path), safe='/')}"


def start_url(settings: Settings, app: App, path: str) -> str:
    """The app host's start URL: where every way into ``app`` begins, carrying ``path``.

    It names the app (``app=``) in both modes: the gateway needs it in single-host mode, where
    the host names none, and checks it against the host in subdomains mode.
    """
    slug = quote(app.slug, safe="")
    back = quote(app_path(path), safe="/")
    return f"{app_origin(settings, app)}{START_PATH}?app={slug}&rd={back}"


async def handoff_url(
    ctx: AuthzContext, session_id: SessionId, app: App, path: str, state: str
) -> str:
    """A fresh one-time code for (session, app), as the app host's callback URL.

    ``state`` is the browser's sign-in state (already checked, URL-safe): the callback takes the
    code only with the cookie that holds the same one.
    """
    code = await issue_handoff(ctx, session_id, app.slug)
    back = quote(app_path(path), safe="/")
    return f"{app_origin(ctx.settings, app)}{CALLBACK_PATH}?code={code}&rd={back}&state={state}"


async def redirect_after_sign_in(
    ctx: AuthzContext,
    user: User,
    *,
    app_slug: AppSlug | None,
    rd: str,
) -> str:
    """Where a browser that just signed in (or already was) goes for a stored target.

    For an app, that is its start URL: no code is made here (see the module docstring). The
    app is read again from the store: it may have been disabled, or be one this user may not
    open, since the target was resolved. Either way the portal is the answer.
    """
    _, path = split_origin(rd, public_origin(ctx.settings))
    app = None if app_slug is None else await ctx.store.apps.get_by_slug(app_slug)
    if app is not None and may_open(user, app):
        return start_url(ctx.settings, app, path)
    if ctx.settings.routing == "single-host" and rd != PORTAL_PATH:
        return portal_url(path)
    return PORTAL_PATH
