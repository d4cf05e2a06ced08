"""The device's app list and "open this app in my browser"."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from authz.conftest import Clock
from authz.device_fixtures import SignedClient, browser_session, enroll_key, next_event
from authz.login_fixtures import code_count
from fixtures.store import T0, make_app
from lychgate.authz.context import AuthzContext
from lychgate.authz.device.apps import Opened, open_app
from lychgate.authz.device.auth import DeviceCaller
from lychgate.authz.login.target import app_origin, start_url
from lychgate.authz.portal.listeners import Listeners
from lychgate.config import Settings, load_settings
from lychgate.domain import App, AppPolicy
from lychgate.events import OpenApp
from lychgate.gateway.admit_redirect import safe_redirect
from lychgate.ids import AppSlug


async def test_a_slug_no_app_could_have_is_a_miss(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    # A NUL reached PostgreSQL, which refused it: a 503 where any other miss is a 404.
    who = await enroll_key(ctx)
    for slug in ("a\u0000b", "x" * 65, "../wiki", ""):
        r = await SignedClient(client, clock, who).post("/open", {"slug": slug})
        assert r.status_code in (404, 422), (slug, r.status_code)


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


@pytest.mark.parametrize(
    ("routing", "origin"),
    [("subdomains", "https://wiki.example.com"), ("single-host", "https://auth.example.com")],
)
@pytest.mark.parametrize(
    ("path", "rd"),
    [
        ("/", "/"),
        ("/doc/1?a=b&c", "/doc/1%3Fa%3Db%26c"),
        ("/a/./b/../c", "/a/c"),
        ("/.lychgate/logout", "/"),
        ("/.LYCHGATE/callback?code=x", "/"),
        ("//evil.example/", "/"),
        ("https://evil.example/x", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_start_url_is_on_the_apps_origin_with_an_app_path(
    tmp_path: Path, routing: str, origin: str, path: str, rd: str
) -> None:
    settings = load_settings(tmp_path, {}, public_url="https://auth.example.com", routing=routing)
    app = make_app(slug=AppSlug("wiki"))
    assert start_url(settings, app, path) == f"{origin}/.lychgate/start?app=wiki&rd={rd}"


def test_start_url_uses_an_explicit_app_host(tmp_path: Path) -> None:
    settings = load_settings(
        tmp_path, {}, public_url="http://auth.localhost:8080", routing="subdomains"
    )
    app = make_app(slug=AppSlug("notes"), host="notes.test")
    assert (
        start_url(settings, app, "/x") == "http://notes.test:8080/.lychgate/start?app=notes&rd=/x"
    )


async def test_open_pushes_the_start_url_to_the_browser_this_device_signed_in(
    ctx: AuthzContext, authz: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    await add_apps(ctx)
    who = await enroll_key(ctx)
    other_device = await enroll_key(ctx, who.user, name="phone")
    older = await browser_session(ctx, who, age=timedelta(hours=1))
    newest = await browser_session(ctx, who)
    await browser_session(ctx, other_device, age=timedelta(seconds=-5))  # newer, not ours
    before = await code_count(ctx)
    async with ctx.bus.subscribe() as events:
        r = await SignedClient(client, clock, who).post("/open", {"slug": "wiki"})
        assert r.status_code == 200, r.text
        event = await next_event(events, OpenApp)
    assert isinstance(event, OpenApp)
    assert event.session_id == newest.id != older.id
    assert event.url == "http://localhost:8080/.lychgate/start?app=wiki&rd=/"
    # The portal re-checks the URL against the origins the gateway serves before navigating.
    snapshot = authz.state.publisher.latest
    assert safe_redirect(event.url, origins=snapshot.served_origins()) == event.url
    # No code: the browser gets one from open, for the state the gateway's start gives it.
    assert await code_count(ctx) == before


@pytest.fixture
def subdomains(tmp_path: Path) -> Settings:
    """Subdomains mode: each app on its own host (loaded outside the event loop)."""
    return load_settings(tmp_path, {}, public_url="https://auth.example.com", routing="subdomains")


async def test_open_in_subdomains_mode_pushes_the_apps_own_start_url(
    ctx: AuthzContext, subdomains: Settings
) -> None:
    here = replace(ctx, settings=subdomains)
    await add_apps(here)
    who = await enroll_key(here)
    session = await browser_session(here, who)
    async with here.bus.subscribe() as events:
        opened = await open_app(
            here, DeviceCaller(who.device, who.user), "wiki", listeners=Listeners()
        )
        assert opened == Opened(session, delivered=False)  # no portal page listens
        event = await next_event(events, OpenApp)
    assert event == OpenApp(
        session_id=session.id, url="https://wiki.example.com/.lychgate/start?app=wiki&rd=/"
    )
    assert await code_count(here) == 0


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
    r = await signed.post("/open", {"slug": "wiki"}, skew=1)
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
