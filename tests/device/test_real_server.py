"""The device client against the real authz routes, in process: enroll, then approve.

The fake server pins the client to the contract; this pins the contract to the server.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from fixtures.store import T0, make_login_request, make_user
from lychgate.authz.app import create_app
from lychgate.authz.context import AuthzContext
from lychgate.config import Settings, load_settings
from lychgate.deployment.enroll import issue_enrollment_link
from lychgate.deployment.keys import ensure_signing_key
from lychgate.deployment.secrets import DeploymentSecrets, ensure_secrets
from lychgate.device.client import Connector, DeviceClient, enroll
from lychgate.device.keyfile import new_private_key
from lychgate.device.urls import parse_enrollment_url, parse_login_url
from lychgate.devicesig import DeviceAuthError
from lychgate.domain import LoginStatus
from lychgate.errors import Conflict
from lychgate.events import InProcessBus
from lychgate.store import Store


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(tmp_path, {})  # public_url http://localhost:8080


@pytest.fixture
def deployment_secrets(tmp_path: Path) -> DeploymentSecrets:
    return ensure_secrets(tmp_path / "secrets.json", T0)[0]


@pytest.fixture
async def authz(
    store: Store, settings: Settings, deployment_secrets: DeploymentSecrets
) -> AsyncIterator[FastAPI]:
    await ensure_signing_key(store.signing_keys, T0)
    bus = InProcessBus()
    ctx = AuthzContext(
        settings=settings, store=store, bus=bus, secrets=deployment_secrets, clock=lambda: T0
    )
    app = create_app(ctx, poll_interval=0.05)
    try:
        async with app.router.lifespan_context(app):
            yield app
    finally:
        await bus.close()


async def test_enroll_then_approve_through_the_real_routes(
    authz: FastAPI, store: Store, settings: Settings
) -> None:
    user = make_user(name="Ada", email="ada@example.test")
    await store.users.add(user)
    link = parse_enrollment_url(await issue_enrollment_link(store, settings, user.id, T0))
    connector = Connector(
        transport=lambda _tls: httpx.ASGITransport(app=authz), clock=lambda: T0.timestamp()
    )
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # unused in process

    async with connector.http(str(link.origin), tls) as http:
        key_file = await enroll(
            http, link, new_private_key(), name="laptop", user_name=None, email=None,
            now=T0, ca_file=None,
        )  # fmt: skip
        assert key_file.record.user_id == user.id
        assert key_file.record.server == "http://localhost:8080"
        with pytest.raises(Conflict):  # the link is one-time
            await enroll(
                http, link, new_private_key(), name="again", user_name=None, email=None,
                now=T0, ca_file=None,
            )  # fmt: skip

    request = make_login_request(number=42, app_slug=None)
    await store.login_requests.create(request)
    login_url = f"{settings.public_url}/.lychgate/d/login/{request.id}"
    login_id = parse_login_url(login_url, server=key_file.record.server)

    async with connector.http(key_file.record.server, tls) as http:
        client = DeviceClient(http, key_file, clock=connector.clock)
        context = await client.login(login_id)
        assert context.status is LoginStatus.PENDING
        assert 42 in context.choices
        await client.approve(login_id, 42)
        assert await client.apps() == ()
        assert await client.logout() == 0

        late = DeviceClient(http, key_file, clock=lambda: T0.timestamp() + 61)
        with pytest.raises(DeviceAuthError):
            await late.sessions()

    stored = await store.login_requests.get(request.id)
    assert stored.status is LoginStatus.APPROVED
    assert (stored.user_id, stored.device_id) == (user.id, key_file.record.device_id)
