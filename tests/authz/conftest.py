"""An authz context over the real store (both backends), an in-process bus and a fixed clock."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import ASGIApp

from fixtures.store import T0, make_app, make_session, make_user
from lychgate.authz.app import create_app
from lychgate.authz.context import AuthzContext
from lychgate.config import Settings, load_settings
from lychgate.deployment.keys import ensure_signing_key
from lychgate.deployment.secrets import DeploymentSecrets, ensure_secrets
from lychgate.domain import Session
from lychgate.events import InProcessBus
from lychgate.ids import AppSlug
from lychgate.store import Store


class Clock:
    """A settable clock; tests move time explicitly."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Loaded outside the event loop: reading lychgate.toml is blocking file I/O."""
    return load_settings(tmp_path, {})


@pytest.fixture
def secrets(tmp_path: Path) -> DeploymentSecrets:
    return ensure_secrets(tmp_path / "secrets.json", T0)[0]


@pytest.fixture
async def ctx(
    store: Store, settings: Settings, secrets: DeploymentSecrets, clock: Clock
) -> AsyncIterator[AuthzContext]:
    await ensure_signing_key(store.signing_keys, T0)
    bus = InProcessBus()
    try:
        yield AuthzContext(settings=settings, store=store, bus=bus, secrets=secrets, clock=clock)
    finally:
        await bus.close()


@pytest.fixture
async def authz(ctx: AuthzContext) -> AsyncIterator[FastAPI]:
    app = create_app(ctx, poll_interval=0.05)
    async with app.router.lifespan_context(app):
        yield app


@contextlib.asynccontextmanager
async def internal_client(app: ASGIApp, ctx: AuthzContext) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of ``app`` that presents the internal secret, as a gateway does."""
    secret = ctx.secrets.internal_token.reveal()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://authz.internal",
        headers={"authorization": f"Bearer {secret}"},
    ) as c:
        yield c


@pytest.fixture
async def client(authz: FastAPI, ctx: AuthzContext) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client that presents the internal secret."""
    async with internal_client(authz, ctx) as c:
        yield c


async def live_session(ctx: AuthzContext) -> tuple[AppSlug, Session]:
    """A live session and an app its user may open; returns (app slug, session)."""
    user = make_user()
    await ctx.store.users.add(user)
    app = make_app()
    await ctx.store.apps.add(app)
    session = make_session(user.id)
    await ctx.store.sessions.create(session)
    return app.slug, session
