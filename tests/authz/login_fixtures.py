"""Fixtures and helpers for the login and portal tests: a browser, a device, a full sign-in.

Import the fixtures into a test module (``from authz.login_fixtures import browser``); the
helpers approve requests exactly as the device routes do: ``store.login_requests.approve``,
then ``LoginApproved`` on the bus.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from fixtures.store import make_app, make_device, make_user
from lychgate.authz.context import AuthzContext
from lychgate.domain import App, Device, User
from lychgate.events import LoginApproved, LoginDenied
from lychgate.ids import LoginRequestId
from lychgate.store.schema import one_time_codes

API = "/.lychgate/api/v1/login"
JSON = {"content-type": "application/json"}
#: A sign-in state as the gateway's ``/.lychgate/start`` puts it on the way to ``open``.
STATE = "st4te_0f-the_browser-0123"


async def code_count(ctx: AuthzContext) -> int:
    """How many one-time codes (of any purpose, spent or not) the store holds."""
    async with ctx.store.engine.connect() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(one_time_codes))).scalar_one()
        )


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """The response's Set-Cookie lines, by cookie name."""
    return {line.split("=", 1)[0]: line for line in response.headers.get_list("set-cookie")}


def browser_for(authz: FastAPI, base_url: str) -> httpx.AsyncClient:
    """A client with its own cookie jar, like one browser, talking to authz in process."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=authz), base_url=base_url, follow_redirects=False
    )


@pytest.fixture
async def browser(authz: FastAPI, ctx: AuthzContext) -> AsyncIterator[httpx.AsyncClient]:
    """A browser on the public URL (no internal secret: it is just a client)."""
    async with browser_for(authz, ctx.settings.public_url) as client:
        yield client


@pytest.fixture
async def other_browser(authz: FastAPI, ctx: AuthzContext) -> AsyncIterator[httpx.AsyncClient]:
    """A second browser with a cookie jar of its own."""
    async with browser_for(authz, ctx.settings.public_url) as client:
        yield client


@dataclass(frozen=True)
class Person:
    user: User
    device: Device


async def enrolled(ctx: AuthzContext, **user_fields: Any) -> Person:
    """A user with one enrolled device."""
    user = make_user(**user_fields)
    await ctx.store.users.add(user)
    device = make_device(user.id, kind="device_key", credential_id=None)
    await ctx.store.devices.add(device)
    return Person(user, device)


async def add_app(authz: FastAPI, ctx: AuthzContext, **fields: Any) -> App:
    """Add an app and rebuild the snapshot now (rather than within the poll interval)."""
    app = make_app(**fields)
    await ctx.store.apps.add(app)
    await authz.state.publisher.refresh()
    return app


async def approve(ctx: AuthzContext, login_id: str, person: Person) -> None:
    """What the device routes do on a right number."""
    lid = LoginRequestId(login_id)
    ok = await ctx.store.login_requests.approve(
        lid, user_id=person.user.id, device_id=person.device.id, now=ctx.clock()
    )
    assert ok
    await ctx.bus.publish(
        LoginApproved(login_id=lid, user_id=person.user.id, device_id=person.device.id)
    )


async def deny(ctx: AuthzContext, login_id: str) -> None:
    lid = LoginRequestId(login_id)
    assert await ctx.store.login_requests.deny(lid, now=ctx.clock())
    await ctx.bus.publish(LoginDenied(login_id=lid))


async def start(browser: httpx.AsyncClient, rd: str | None = None) -> dict[str, Any]:
    """POST a new login request; returns its JSON body."""
    body = {} if rd is None else {"rd": rd}
    r = await browser.post(API, json=body)
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


async def approved(ctx: AuthzContext, browser: httpx.AsyncClient) -> tuple[Person, str]:
    """A newly enrolled person, and a login request of ``browser`` their device approved."""
    person = await enrolled(ctx)
    created = await start(browser)
    await approve(ctx, created["id"], person)
    return person, created["id"]


async def finish(browser: httpx.AsyncClient, login_id: str) -> httpx.Response:
    return await browser.post(f"{API}/{login_id}/finish", json={})


async def sign_in(
    ctx: AuthzContext, browser: httpx.AsyncClient, person: Person, rd: str | None = None
) -> str:
    """The whole browser flow; returns the redirect that finish answered."""
    created = await start(browser, rd)
    await approve(ctx, created["id"], person)
    r = await finish(browser, created["id"])
    assert r.status_code == 200, r.text
    redirect: str = r.json()["redirect"]
    return redirect
