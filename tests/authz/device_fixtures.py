"""Helpers for the device API tests: enrolled device keys and a client that signs its calls.

``enroll_key`` puts a user and a device key straight into the store (the enrollment route has
its own tests); :class:`SignedClient` signs every request exactly as ``lychgate device`` does,
with the test's clock, and lets a test break one part of the signature at a time.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from authz.conftest import Clock
from fixtures.store import T0, make_login_request, make_session, make_user
from lychgate.authz.context import AuthzContext
from lychgate.devicesig import b64url, sign_request
from lychgate.domain import Device, LoginRequest, Session, User
from lychgate.events import Received, Subscription
from lychgate.ids import DeviceId, new_id

API: Final = "/.lychgate/api/v1/device"
WAIT: Final = 5.0


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True, slots=True)
class DeviceKey:
    """An enrolled device key: the private half stays in the test."""

    key: Ed25519PrivateKey
    device: Device
    user: User

    @property
    def public_b64(self) -> str:
        return b64url(raw_public(self.key))


async def add_user(ctx: AuthzContext, **fields: Any) -> User:
    fields.setdefault("email", f"u{secrets.token_hex(4)}@example.test")
    user = make_user(**fields)
    await ctx.store.users.add(user)
    return user


async def enroll_key(
    ctx: AuthzContext,
    user: User | None = None,
    *,
    admin: bool = False,
    name: str = "laptop",
    public_key: bytes | None = None,
) -> DeviceKey:
    """A fresh Ed25519 device key enrolled for ``user`` (a new user when None). With
    ``public_key``, the device is stored with those bytes instead of the key's own (as a
    device enrolled before public keys were checked)."""
    if user is None:
        user = await add_user(ctx, is_admin=admin)
    key = Ed25519PrivateKey.generate()
    device = Device(
        id=DeviceId(new_id("dev_")),
        user_id=user.id,
        kind="device_key",
        name=name,
        public_key=raw_public(key) if public_key is None else public_key,
        credential_id=None,
        sign_count=0,
        created_at=T0,
        last_used_at=None,
        revoked=False,
    )
    await ctx.store.devices.add(device)
    return DeviceKey(key, device, user)


class SignedClient:
    """Signs requests as device ``who`` at the clock's time (overridable per call)."""

    def __init__(self, client: httpx.AsyncClient, clock: Clock, who: DeviceKey) -> None:
        self.client = client
        self.clock = clock
        self.who = who

    async def call(
        self,
        method: str,
        path: str,
        body: object | None = None,
        *,
        skew: int = 0,
        sign_path: str | None = None,
        sign_body: bytes | None = None,
        key: Ed25519PrivateKey | None = None,
        device_id: str | None = None,
    ) -> httpx.Response:
        """Send a signed call; the keyword arguments spoil one part of the signature."""
        content = b"" if body is None else json.dumps(body).encode()
        now = int(self.clock.now.timestamp()) + skew
        signed = sign_request(
            key or self.who.key,
            device_id or self.who.device.id,
            method,
            sign_path or path,
            content if sign_body is None else sign_body,
            now,
        )
        headers = signed.as_dict()
        if body is not None:
            headers["content-type"] = "application/json"
        return await self.client.request(method, path, content=content, headers=headers)

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.call("GET", API + path, **kw)

    async def post(self, path: str, body: object | None = None, **kw: Any) -> httpx.Response:
        return await self.call("POST", API + path, body, **kw)

    async def delete(self, path: str, **kw: Any) -> httpx.Response:
        return await self.call("DELETE", API + path, **kw)


async def pending_login(ctx: AuthzContext, **fields: Any) -> LoginRequest:
    request = make_login_request(**fields)
    await ctx.store.login_requests.create(request)
    return request


async def browser_session(
    ctx: AuthzContext, who: DeviceKey, *, age: timedelta = timedelta(0), **fields: Any
) -> Session:
    """A live browser session of ``who``'s user, signed in by ``who`` ``age`` before T0."""
    fields.setdefault("device_id", who.device.id)
    session = make_session(who.user.id, created_at=T0 - age, **fields)
    await ctx.store.sessions.create(session)
    return session


async def next_event(events: Subscription, *types: type) -> Received:
    """The next bus item of one of ``types`` (others are skipped), within :data:`WAIT`."""
    async with asyncio.timeout(WAIT):
        async for item in events:
            if isinstance(item, types):
                return item
    pytest.fail("the bus closed before the event arrived")
