"""Sign-in in subdomains mode over https: apps by host, secure cookies, origins."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from authz.login_fixtures import (
    API,
    STATE,
    add_app,
    approve,
    browser,
    code_count,
    enrolled,
    finish,
    set_cookies,
    sign_in,
    start,
)
from lychgate.authz.context import AuthzContext
from lychgate.config import Settings, load_settings
from lychgate.domain import App
from lychgate.gateway.feed_http import REDEEM_PATH
from lychgate.ids import LoginRequestId

__all__ = ["browser"]

PORTAL = "https://auth.example.test"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Overrides conftest's: an https portal host, apps on <slug>.example.test."""
    return load_settings(tmp_path, {}, public_url=PORTAL, routing="subdomains")


@pytest.fixture
async def wiki(ctx: AuthzContext, authz: FastAPI) -> App:
    return await add_app(authz, ctx, slug="wiki", name="Team wiki")


async def test_an_app_host_rd_leads_to_the_start_url_on_that_host(
    ctx: AuthzContext, browser: httpx.AsyncClient, wiki: App
) -> None:
    person = await enrolled(ctx)
    redirect = await sign_in(ctx, browser, person, "https://wiki.example.test/page?a=1")
    assert redirect == "https://wiki.example.test/.lychgate/start?app=wiki&rd=/page%3Fa%3D1"
    assert parse_qs(urlsplit(redirect).query)["rd"] == ["/page?a=1"]
    assert await code_count(ctx) == 0


async def test_an_explicit_app_host(
    ctx: AuthzContext, authz: FastAPI, browser: httpx.AsyncClient
) -> None:
    await add_app(authz, ctx, slug="crm", host="crm.other.test")
    person = await enrolled(ctx)
    created = await start(browser, "https://CRM.other.test./x")
    login = await ctx.store.login_requests.get(LoginRequestId(created["id"]))
    assert login.app_slug == "crm"
    redirect = await sign_in(ctx, browser, person, "https://crm.other.test/x")
    assert redirect == "https://crm.other.test/.lychgate/start?app=crm&rd=/x"


@pytest.mark.parametrize(
    "rd",
    [
        "http://wiki.example.test/",  # a plain-http downgrade
        "https://wiki.example.test:8443/",  # an unexpected port
        "https://evil.example.test/",  # not a served host
        "https://wiki.example.test.evil.example/",
        "https://wiki.example.test@evil.example/",
        "//wiki.example.test/",
        "https://auth.example.test/somewhere",  # the portal host: no app
        "/somewhere",
    ],
)
async def test_other_targets_lead_to_the_portal(
    ctx: AuthzContext, browser: httpx.AsyncClient, wiki: App, rd: str
) -> None:
    person = await enrolled(ctx)
    assert await sign_in(ctx, browser, person, rd) == "/.lychgate/"


async def test_cookies_are_secure_and_host_prefixed(
    ctx: AuthzContext, browser: httpx.AsyncClient
) -> None:
    person = await enrolled(ctx)
    r = await browser.post(API, json={})
    # The binding too: no sibling app's page may plant it for the portal (five values made
    # every sign-in of that browser fail until they expired).
    binding = set_cookies(r)["__Host-lychgate_login"]
    for attribute in ("Secure", "HttpOnly", "Path=/;", "SameSite=lax"):
        assert attribute in binding + ";"
    assert "domain" not in binding.lower()
    assert "lychgate_login" not in set_cookies(r)  # no unprefixed twin
    login_id = r.json()["id"]
    await approve(ctx, login_id, person)
    done = await finish(browser, login_id)
    cookie = set_cookies(done)["__Host-lychgate_session"]
    for attribute in ("Secure", "HttpOnly", "Path=/", "SameSite=lax"):
        assert attribute in cookie
    assert "Domain" not in cookie


async def test_the_page_shows_the_app_and_its_address(
    browser: httpx.AsyncClient, wiki: App
) -> None:
    r = await browser.get("/.lychgate/login", params={"rd": "https://wiki.example.test/doc"})
    assert "to <strong>Team wiki</strong>" in r.text
    assert "https://wiki.example.test/doc" in r.text


async def test_an_app_host_cannot_act_on_the_portal(
    ctx: AuthzContext, browser: httpx.AsyncClient, wiki: App
) -> None:
    """The apps are same-site with the portal: their pages must not finish or sign out."""
    person = await enrolled(ctx)
    created = await start(browser)
    await approve(ctx, created["id"], person)
    for headers in (
        {"origin": "https://wiki.example.test"},
        {"sec-fetch-site": "same-site"},
        {"origin": "http://auth.example.test"},
    ):
        r = await browser.post(f"{API}/{created['id']}/finish", json={}, headers=headers)
        assert r.status_code == 403
    ok = await browser.post(
        f"{API}/{created['id']}/finish",
        json={},
        headers={"origin": PORTAL, "sec-fetch-site": "same-origin"},
    )
    assert ok.status_code == 200


async def test_the_portal_opens_apps_on_their_hosts(
    ctx: AuthzContext, browser: httpx.AsyncClient, client: httpx.AsyncClient, wiki: App
) -> None:
    person = await enrolled(ctx)
    await sign_in(ctx, browser, person)
    r = await browser.get("/.lychgate/open/wiki", params={"rd": "/doc"})
    assert r.status_code == 303
    assert r.headers["location"] == "https://wiki.example.test/.lychgate/start?app=wiki&rd=/doc"
    assert await code_count(ctx) == 0
    r = await browser.get("/.lychgate/open/wiki", params={"rd": "/doc", "state": STATE})
    assert r.status_code == 303
    parts = urlsplit(r.headers["location"])
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        "https://wiki.example.test/.lychgate/callback"
    )
    query = parse_qs(parts.query, strict_parsing=True)
    assert (query["rd"], query["state"]) == (["/doc"], [STATE])
    assert (await client.post(REDEEM_PATH, json={"code": query["code"][0]})).status_code == 200


@pytest.mark.parametrize(
    "path", ["/.lychgate/login?rd=https%3A%2F%2Fwiki.example.test%2F", "/.lychgate/"]
)
async def test_pages_on_an_app_host_move_to_the_portal_host(
    browser: httpx.AsyncClient, wiki: App, path: str
) -> None:
    forwarded = {"x-forwarded-host": "wiki.example.test", "x-forwarded-proto": "https"}
    r = await browser.get(path, headers=forwarded)
    assert r.status_code == 303
    assert r.headers["location"] == PORTAL + path
    assert "set-cookie" not in r.headers


APP_ORIGIN = {
    "x-forwarded-host": "wiki.example.test",
    "x-forwarded-proto": "https",
    "origin": "https://wiki.example.test",
    "sec-fetch-site": "same-origin",
}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", API),  # start a sign-in
        ("GET", f"{API}/lr_someone"),
        ("GET", f"{API}/lr_someone/events"),
        ("POST", f"{API}/lr_someone/finish"),
        ("GET", "/.lychgate/api/v1/sessions"),
        ("POST", "/.lychgate/api/v1/session/logout"),
    ],
)
async def test_the_login_and_session_apis_answer_on_the_portal_host_only(
    ctx: AuthzContext, browser: httpx.AsyncClient, wiki: App, method: str, path: str
) -> None:
    # An app's page could start a sign-in on its own host, have the user approve it, and
    # finish it there: a session cookie on the app's origin, with which it read the user's
    # sessions (IPs, browsers) and could end them. The page on the portal host is unchanged.
    r = await browser.request(method, path, json={}, headers=APP_ORIGIN)
    assert (r.status_code, r.json()) == (404, {"detail": "not_found"})
    assert "set-cookie" not in r.headers
    started = await browser.post(API, json={}, headers={"origin": PORTAL})
    assert started.status_code == 201
