"""The authz ASGI application.

Failing closed (SECURITY.md item 9): when the store fails (:class:`StoreError`) or the signing
keys are missing or unusable (:class:`ConfigError`, raised by the keyring at request time),
every route answers ``503`` and does nothing more: no cookie, no code, no token. The answer is
``{"error": "unavailable"}`` (the device API's own 503 body), or a plain page for a browser
that asked for HTML, which shows the request's id; the exception is logged, never shown. Any
other exception is a bug and gets Starlette's bare ``500 Internal Server Error`` (``debug``
stays off), also without detail; its log line names the request (:mod:`.request_id`).
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse

from lychgate import __version__
from lychgate.authz import device, enroll, housekeeping, internal, login, portal, public
from lychgate.authz.bodycap import BodyCap
from lychgate.authz.context import AuthzContext
from lychgate.authz.login.pages import PAGE_HEADERS
from lychgate.authz.nosniff import NoSniff
from lychgate.authz.portal.listeners import Listeners
from lychgate.authz.ratelimit import RateLimiter, SharedLimit
from lychgate.authz.request_id import RequestIdScope
from lychgate.authz.snapshots import POLL_INTERVAL, SnapshotPublisher
from lychgate.errors import ConfigError, StoreError
from lychgate.gateway.http.failures import Throttle
from lychgate.gateway.http.limits import CONTROL_PLANE_MAX_BODY
from lychgate.request_log import CURRENT

log = logging.getLogger(__name__)

UNAVAILABLE_PAGE: Final = (
    '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
    "<title>Unavailable</title></head><body><h1>Sign-in is unavailable</h1>"
    "<p>Please try again in a minute.</p>{shown}</body></html>\n"
)


def unavailable_page() -> str:
    """The 503 page, with the id of the request (the gateway's) for the user to quote."""
    rid = html.escape(CURRENT.get())
    return UNAVAILABLE_PAGE.format(shown=f"<p>Request id: <code>{rid}</code></p>" if rid else "")


async def unavailable(request: Request, exc: Exception) -> Response:
    """503 for a failed store or missing keys (see the module docstring).

    Logged with its traceback once per kind of failure every 10 s, with a count of the rest:
    during a store outage every request fails, and each is one a client chose to send."""
    more = request.app.state.outages.due(type(exc).__name__)
    if more is not None:
        log.error(
            "%s %r failed closed: %s%s",
            request.method,
            request.url.path,
            type(exc).__name__,
            more,
            exc_info=exc,
        )
    headers = {"cache-control": "no-store", "retry-after": "30"}
    if "text/html" in request.headers.get("accept", ""):
        return HTMLResponse(unavailable_page(), 503, headers={**PAGE_HEADERS, **headers})
    return JSONResponse({"error": "unavailable"}, 503, headers=headers)


async def invalid_request(request: Request, exc: Exception) -> Response:
    """A 422 that says what was wrong and where, never what was sent: FastAPI's default
    echoes each bad value back (``input``), and those may be codes or tokens."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"type": e.get("type"), "loc": list(e.get("loc", ())), "msg": e.get("msg")}
        for e in exc.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=422)


def shared_limit(
    ctx: AuthzContext,
    scope: str,
    per_minute: int,
    what: str,
    *,
    monotonic: Callable[[], float] = time.monotonic,
) -> SharedLimit:
    """At most ``per_minute`` events a minute per key; counted across the replicas on
    PostgreSQL (:mod:`.ratelimit`). ``monotonic``: the local count's clock."""
    local = RateLimiter(limit=per_minute, window=60, clock=monotonic, what=what)
    counts = ctx.store.rate_counts if ctx.store.backend == "postgresql" else None
    return SharedLimit(local, counts, scope=scope, clock=ctx.clock)


def create_app(
    ctx: AuthzContext,
    *,
    poll_interval: float = POLL_INTERVAL,
    first_sweep_after: float = housekeeping.FIRST_SWEEP_AFTER,
) -> FastAPI:
    """Build authz around ``ctx``. The caller owns (opens and closes) the store and the bus.
    Besides serving, it publishes the gateways' snapshot and sweeps ended rows
    (:mod:`.housekeeping`), the first time ``first_sweep_after`` seconds after it starts."""
    publisher = SnapshotPublisher(ctx, poll_interval=poll_interval)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await publisher.refresh()
        tasks = (
            asyncio.create_task(publisher.run(), name="snapshot-publisher"),
            asyncio.create_task(
                housekeeping.run(ctx, first_after=first_sweep_after), name="housekeeping"
            ),
        )
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    app = FastAPI(
        title="Lychgate authz",
        version=__version__,
        lifespan=lifespan,
        # No Swagger UI page: FastAPI's loads its script from a CDN, unpinned and without an
        # integrity hash, onto the sign-in origin. The schema alone is served; any OpenAPI
        # viewer reads it.
        docs_url=None,
        redoc_url=None,
        openapi_url="/.lychgate/openapi.json",
    )
    app.add_exception_handler(StoreError, unavailable)
    app.add_exception_handler(ConfigError, unavailable)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.state.ctx = ctx
    app.state.publisher = publisher
    app.state.outages = Throttle(time.monotonic)  # see unavailable()
    app.state.refused_handoffs = Throttle(time.monotonic)  # see .internal.handoff
    app.state.device_refusals = Throttle(time.monotonic)  # see .device.errors.error_response
    app.state.portal_listeners = Listeners()  # see .portal.listeners
    # Abuse control (docs/sign-in-protocol.md): login requests per client IP, approvals per
    # device, failed enrollment attempts (guessed links) per client IP. Read by the login,
    # device and enroll routes through request.app.state.
    app.state.login_limiter = shared_limit(ctx, "login", 20, "login requests")
    app.state.approve_limiter = shared_limit(ctx, "approve", 10, "approvals")
    app.state.enroll_limiter = shared_limit(ctx, "enroll", 10, "failed enrollment attempts")
    app.add_middleware(BodyCap, limit=CONTROL_PLANE_MAX_BODY)
    app.add_middleware(NoSniff)  # its 413 gets the header too
    app.add_middleware(RequestIdScope)  # the outermost: every line logged names the request
    app.include_router(internal.router)
    app.include_router(public.router)
    app.include_router(login.routes.router)
    app.include_router(portal.routes.router)
    app.include_router(device.routes.router)
    app.include_router(enroll.routes.router)
    return app
