"""The authz ASGI application."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from lychgate import __version__
from lychgate.authz import device, enroll, internal, login, portal, public
from lychgate.authz.context import AuthzContext
from lychgate.authz.ratelimit import RateLimiter
from lychgate.authz.snapshots import SnapshotPublisher


def create_app(ctx: AuthzContext, *, poll_interval: float = 1.0) -> FastAPI:
    """Build authz around ``ctx``. The caller owns (opens and closes) the store and the bus."""
    publisher = SnapshotPublisher(ctx, poll_interval=poll_interval)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await publisher.refresh()
        task = asyncio.create_task(publisher.run(), name="snapshot-publisher")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    app = FastAPI(
        title="Lychgate authz",
        version=__version__,
        lifespan=lifespan,
        docs_url="/.lychgate/docs",
        redoc_url=None,
        openapi_url="/.lychgate/openapi.json",
    )
    app.state.ctx = ctx
    app.state.publisher = publisher
    # Abuse control (docs/sign-in-protocol.md): login requests per client IP, approvals per
    # device. Read by the login and device routes through request.app.state.
    app.state.login_limiter = RateLimiter(
        limit=20, window=60, clock=time.monotonic, what="login requests"
    )
    app.state.approve_limiter = RateLimiter(
        limit=10, window=60, clock=time.monotonic, what="approvals"
    )
    app.include_router(internal.router)
    app.include_router(public.router)
    app.include_router(login.routes.router)
    app.include_router(portal.routes.router)
    app.include_router(device.routes.router)
    app.include_router(enroll.routes.router)
    return app
