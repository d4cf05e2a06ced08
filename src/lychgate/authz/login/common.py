"""What the login page and the login API share: one path to start a login request.

The page and ``POST /.lychgate/api/v1/login`` both call :func:`begin_login`, so the rate limit,
the ``rd`` check and the audit row are the same whichever way a request starts.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.responses import RedirectResponse

from lychgate.authz.context import AuthzContext
from lychgate.authz.internal import context
from lychgate.authz.login.service import StartedLogin, start_login
from lychgate.authz.login.target import Target, public_origin, resolve_target
from lychgate.authz.ratelimit import SharedLimit
from lychgate.authz.snapshots import SnapshotPublisher
from lychgate.authz.web import client_ip, request_origin, user_agent
from lychgate.errors import RateLimited, StoreError
from lychgate.gateway.admit_redirect import origin_of
from lychgate.gateway.http.clientcap import client_key
from lychgate.gateway.snapshot import ConfigSnapshot


async def served_snapshot(request: Request) -> ConfigSnapshot:
    """The config snapshot authz publishes to gateways: which origins and apps exist."""
    publisher: SnapshotPublisher = request.app.state.publisher
    if publisher.latest is None:
        await publisher.refresh()
    snapshot = publisher.latest
    if snapshot is None:
        raise StoreError("no configuration snapshot yet")
    return snapshot


async def target_of(request: Request, rd: str | None) -> Target:
    return resolve_target(rd, await served_snapshot(request))


def too_many(exc: RateLimited) -> HTTPException:
    retry = str(max(1, math.ceil(exc.retry_after)))
    return HTTPException(status_code=429, detail="rate_limited", headers={"retry-after": retry})


async def begin_login(ctx: AuthzContext, request: Request, target: Target) -> StartedLogin:
    """Count the attempt against the client's IP (429 when over), then start the request."""
    ip = client_ip(request)
    limiter: SharedLimit = request.app.state.login_limiter
    try:
        await limiter.hit(client_key(ip))  # an IPv6 client is its /64
    except RateLimited as exc:
        raise too_many(exc) from None
    return await start_login(ctx, target, ip=ip, user_agent=user_agent(request))


def single_rd(request: Request) -> str | None:
    """The one ``rd`` query parameter; several of them are refused (treated as none)."""
    values = request.query_params.getlist("rd")
    return values[0] if len(values) == 1 else None


def on_portal_host(request: Request, ctx: Annotated[AuthzContext, Depends(context)]) -> None:
    """A dependency of the login and session APIs: in subdomains mode they answer on the
    portal host only (a 404 elsewhere), as the login page moves there (:func:`to_portal_host`).
    On an app's host, that app's page could start a sign-in there, have it approved, and so
    hold a session cookie on its own origin, with which it read (and could end) the user's
    sessions through the session API."""
    if ctx.settings.routing == "subdomains" and origin_of(
        request_origin(request, ctx)
    ) != public_origin(ctx.settings):
        raise HTTPException(status_code=404, detail="not_found")


def to_portal_host(request: Request, ctx: AuthzContext) -> RedirectResponse | None:
    """Subdomains mode: a page asked for on an app host moves to the portal host, so that the
    binding and session cookies only ever live there. None when already on the right host."""
    home = public_origin(ctx.settings)
    if ctx.settings.routing != "subdomains" or origin_of(request_origin(request, ctx)) == home:
        return None
    query = f"?{request.url.query}" if request.url.query else ""
    location = f"{home}{request.url.path}{query}"
    return RedirectResponse(location, status_code=303, headers={"cache-control": "no-store"})
