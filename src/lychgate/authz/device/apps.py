"""The device's app list, and opening an app in the browser the device signed in.

Theory of operation (DESIGN.md flow 4). The device never holds an app cookie. To open an app
it asks authz, which finds the browser session this device approved most recently (sessions
record the approving device), preferring one whose portal page is listening, and pushes
``OpenApp(session_id, start URL)`` on the bus; the portal page of that session, listening on
SSE, navigates to the app host's ``/.lychgate/start``, and from there the browser takes the
same way as any other: the gateway sets its sign-in state cookie and the portal's ``open``
makes the one-time code for that state. An ``OpenApp`` that no page hears is lost, so the
answer says whether a page was listening (:mod:`lychgate.authz.portal.listeners`), and the
device says so rather than "opening". No code is made here: one pushed straight to a callback
would be bound to no browser (login CSRF, THREAT_MODEL T30: see
:mod:`lychgate.gateway.signin_state`). Admin-only apps are listed and opened only for admins;
the policy is checked again at ``open`` and when the code is redeemed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from lychgate.authz.context import AuthzContext
from lychgate.authz.device.auth import DeviceCaller
from lychgate.authz.login.target import app_origin, may_open, start_url
from lychgate.authz.portal.listeners import Listeners
from lychgate.authz.portal.session import is_live
from lychgate.domain import Session, User
from lychgate.errors import NotFound
from lychgate.events import OpenApp
from lychgate.ids import AppSlug, is_id_text


async def apps_for(ctx: AuthzContext, user: User) -> list[dict[str, str]]:
    """The apps ``user`` may open, as the device API lists them."""
    return [
        {
            "slug": app.slug,
            "name": app.name,
            "description": app.description,
            "icon": app.icon,
            "url": app_origin(ctx.settings, app),
        }
        for app in await ctx.store.apps.list()
        if may_open(user, app)
    ]


def approved_by(sessions: Sequence[Session], caller: DeviceCaller) -> list[Session]:
    """The caller's sessions among ``sessions`` (the store lists them newest first)."""
    return [s for s in sessions if s.device_id == caller.device.id]


async def sessions_of_device(
    ctx: AuthzContext, caller: DeviceCaller, *, idle: bool = False
) -> list[Session]:
    """Unrevoked, unexpired sessions this device approved, newest first; with ``idle`` False,
    also only those the portal still counts as live (seen within ``session_idle_ttl``)."""
    now = ctx.clock()
    sessions = await ctx.store.sessions.list_for_user(caller.user.id, live_at=now)
    if not idle:
        idle_ttl = timedelta(seconds=ctx.settings.session_idle_ttl)
        sessions = [s for s in sessions if is_live(s, now, idle_ttl)]
    return approved_by(sessions, caller)


@dataclass(frozen=True, slots=True)
class Opened:
    """Where ``open`` sent the app, and whether a portal page of that session got it (None:
    cannot tell, see :meth:`~lychgate.authz.portal.listeners.Listeners.delivery`)."""

    session: Session
    delivered: bool | None


async def open_app(
    ctx: AuthzContext, caller: DeviceCaller, slug: str, *, listeners: Listeners
) -> Opened:
    """Push ``OpenApp`` for ``slug`` to the browser this device most recently signed in whose
    portal page is listening, else to the most recent one.

    The URL is the app's start URL: no one-time code is made here (see the module docstring).
    """
    app = await ctx.store.apps.get_by_slug(AppSlug(slug)) if is_id_text(slug) else None
    if app is None or not may_open(caller.user, app):
        raise NotFound("no such app", field="slug")
    sessions = await sessions_of_device(ctx, caller)
    if not sessions:
        raise NotFound("no live browser session was signed in by this device", field="session")
    session = next((s for s in sessions if listeners.listens(s.id)), sessions[0])
    url = start_url(ctx.settings, app, "/")
    # Looked at before publishing, with no await between: a page counted now gets the event.
    delivered = listeners.delivery(session.id, ctx.bus)
    await ctx.bus.publish(OpenApp(session_id=session.id, url=url))
    return Opened(session, delivered)
