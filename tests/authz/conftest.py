"""An authz context over the real store (both backends), an in-process bus and a fixed clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from fixtures.store import T0
from lychgate.authz.app import create_app
from lychgate.authz.context import AuthzContext
from lychgate.config import Settings, load_settings
from lychgate.deployment.keys import ensure_signing_key
from lychgate.deployment.secrets import DeploymentSecrets, ensure_secrets
from lychgate.events import InProcessBus
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


@pytest.fixture
async def client(authz: FastAPI, ctx: AuthzContext) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client that presents the internal secret."""
    secret = ctx.secrets.internal_token.reveal()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=authz),
        base_url="http://authz.internal",
        headers={"authorization": f"Bearer {secret}"},
    ) as c:
        yield c
