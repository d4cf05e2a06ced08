"""The device's app list and "open this app in my browser"."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from authz.conftest import Clock
from authz.device_fixtures import SignedClient, browser_session, enroll_key, next_event
from fixtures.store import T0, make_app
from lychgate.authz.context import AuthzContext
from lychgate.authz.login.target import app_origin
from lychgate.config import load_settings
from lychgate.domain import App, AppPolicy
from lychgate.events import OpenApp
from lychgate.gateway.admit_redirect import safe_redirect
from lychgate.gateway.feed_http import REDEEM_PATH
from lychgate.ids import AppSlug


async def add_apps(ctx: AuthzContext) -> dict[str, App]:
    apps = {
        "wiki": make_app(slug=AppSlug("wiki"), name="Wiki", description="Notes", icon="📓"),
        "admin": make_app(slug=AppSlug("admin"), policy=AppPolicy.ADMINS),
        "old": make_app(slug=AppSlug("old"), enabled=False),
    }
    for app in apps.values():
        await ctx.store.apps.add(app)
    return apps


async def test_users_see_their_apps_admins_also_admin_apps(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    await add_apps(ctx)
    user = await enroll_key(ctx)
    admin = await enroll_key(ctx, admin=True)
    r = await SignedClient(client, clock, user).get("/apps")
    assert r.status_code == 200
    assert r.json() == {
        "apps": [
            {
                "slug": "wiki",
                "name": "Wiki",
                "description": "Notes",
                "icon": "📓",
                "url": "http://localhost:8080",
            }
        ]
    }
    r = await SignedClient(client, clock, admin).get("/apps")
    assert [a["slug"] for a in r.json()["apps"]] == ["admin", "wiki"]


@pytest.mark.parametrize(
    ("public_url", "host", "origin"),
    [
        ("https://auth.example.com", None, "https://wiki.example.com"),
        ("https://auth.example.com:8443", None, "https://wiki.example.com:8443"),
        ("https://auth.example.com:443", None, "https://wiki.example.com"),
        ("http://auth.localhost:8080", "notes.test", "http://notes.test:8080"),
    ],
)
def test_app_origin_in_subdomains_mode(
    tmp_path: Path, public_url: str, host: str | None, origin: str
) -> None:
    settings = load_settings(tmp_path, {}, public_url=public_url, routing="subdomains")
    assert app_origin(settings, make_app(slug=AppSlug("wiki"), host=host)) == origin


def test_app_origin_in_single_host_mode(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, {}, public_url="https://gate.example.com")
    app = make_app(slug=AppSlug("wiki"), host="ignored.example.com")
    assert app_origin(settings, app) == "https://gate.example.com"


async def test_open_pushes_a_handoff_to_the_browser_this_device_signed_in(
    ctx: AuthzContext, authz: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    await add_apps(ctx)
    who = await enroll_key(ctx)
    other_device = await enroll_key(ctx, who.user, name="phone")
    older = await browser_session(ctx, who, age=timedelta(hours=1))
    newest = await browser_session(ctx, who)
    await browser_session(ctx, other_device, age=timedelta(seconds=-5))  # newer, not ours
    async with ctx.bus.subscribe() as events:
        r = await SignedClient(client, clock, who).post("/open", {"slug": "wiki"})
        assert r.status_code == 200, r.text
        event = await next_event(events, OpenApp)
    assert isinstance(event, OpenApp)
    assert event.session_id == newest.id != older.id
    url = urlsplit(event.url)
    assert (url.scheme, url.netloc, url.path) == ("http", "localhost:8080", "/.lychgate/callback")
    query = parse_qs(url.query)
    assert query["rd"] == ["/"]
    # The portal re-checks the URL against the origins the gateway serves before navigating.
    snapshot = authz.state.publisher.latest
    assert safe_redirect(event.url, origins=snapshot.served_origins()) == event.url
    # The code is a real handoff for this session and app: the gateway can redeem it once.
    redeemed = await client.post(REDEEM_PATH, json={"code": query["code"][0]})
    assert redeemed.status_code == 200


async def test_open_without_a_live_session_is_404(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    await add_apps(ctx)
    who = await enroll_key(ctx)
    signed = SignedClient(client, clock, who)
    assert (await signed.post("/open", {"slug": "wiki"})).status_code == 404
    revoked = await browser_session(ctx, who)
    await ctx.store.sessions.revoke(revoked.id, T0)
    await browser_session(ctx, who, expires_at=T0)
    await browser_session(ctx, who, last_seen_at=T0 - timedelta(hours=3))  # idle: signed out
    r = await signed.post("/open", {"slug": "wiki"})
    assert r.status_code == 404
    assert r.json()["field"] == "session"


@pytest.mark.parametrize("slug", ["admin", "old", "nope"])
async def test_open_refuses_apps_the_user_may_not_open(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock, slug: str
) -> None:
    await add_apps(ctx)
    who = await enroll_key(ctx)
    await browser_session(ctx, who)
    r = await SignedClient(client, clock, who).post("/open", {"slug": slug})
    assert r.status_code == 404
    assert r.json()["field"] == "slug"
