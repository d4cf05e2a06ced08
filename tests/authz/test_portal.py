"""The portal page, opening apps, signing out, and the user's own sessions."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from authz.login_fixtures import (
    JSON,
    STATE,
    Person,
    add_app,
    browser,
    code_count,
    enrolled,
    other_browser,
    set_cookies,
    sign_in,
)
from lychgate.authz.context import AuthzContext
from lychgate.domain import AppPolicy
from lychgate.events import SessionRevoked
from lychgate.gateway.feed_http import REDEEM_PATH
from lychgate.ids import SessionId, session_handle

__all__ = ["browser", "other_browser"]

PORTAL = "/.lychgate/"
SESSIONS = "/.lychgate/api/v1/sessions"
LOGOUT = "/.lychgate/api/v1/session/logout"
OPEN_WIKI = "/.lychgate/open/wiki"


@pytest.fixture
async def ada(ctx: AuthzContext, browser: httpx.AsyncClient) -> Person:
    """Ada, signed in in ``browser``."""
    person = await enrolled(ctx, name="Ada")
    await sign_in(ctx, browser, person)
    return person


def sid_of(client: httpx.AsyncClient) -> SessionId:
    return SessionId(client.cookies["lychgate_session"])


async def test_without_a_session_the_portal_sends_to_the_login(
    browser: httpx.AsyncClient,
) -> None:
    r = await browser.get(PORTAL)
    assert r.status_code == 303
    assert r.headers["location"] == "/.lychgate/login"
    carried = await browser.get(PORTAL, params={"rd": "/wiki/x"})
    assert carried.headers["location"] == "/.lychgate/login?rd=/wiki/x"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_the_sign_in_hosts_root_opens_the_portal(
    browser: httpx.AsyncClient, method: str
) -> None:
    # In subdomains mode authz serves the whole sign-in host, whose root is the address serve
    # prints: a browser opening it got a JSON 404.
    r = await browser.request(method, "/")
    assert r.status_code == 302
    assert r.headers["location"] == PORTAL
    assert r.headers["cache-control"] == "no-store"
    portal = await browser.get(r.headers["location"])
    assert portal.headers["location"] == "/.lychgate/login"  # no session yet: sign in


async def test_the_portal_lists_the_apps_a_user_may_open(
    ctx: AuthzContext, authz: FastAPI, browser: httpx.AsyncClient, ada: Person
) -> None:
    await add_app(authz, ctx, slug="wiki", name="Wiki", description="Team notes", icon="📚")
    await add_app(authz, ctx, slug="files", name="files", icon="/static/files.png")
    await add_app(authz, ctx, slug="admin", name="Admin", policy=AppPolicy.ADMINS)
    await add_app(authz, ctx, slug="old", name="Retired", enabled=False)
    r = await browser.get(PORTAL)
    assert r.status_code == 200
    assert "Signed in as <strong>Ada</strong>" in r.text
    assert 'href="/.lychgate/open/wiki"' in r.text
    assert "Team notes" in r.text
    assert "📚" in r.text
    assert '<img src="/static/files.png" alt="">' in r.text
    assert "/.lychgate/open/admin" not in r.text
    assert "Retired" not in r.text
    assert r.headers["content-security-policy"].startswith("default-src 'none'")


async def test_admins_also_see_admin_apps(
    ctx: AuthzContext, authz: FastAPI, browser: httpx.AsyncClient
) -> None:
    await add_app(authz, ctx, slug="admin", name="Admin panel", policy=AppPolicy.ADMINS)
    boss = await enrolled(ctx, is_admin=True)
    await sign_in(ctx, browser, boss)
    r = await browser.get(PORTAL)
    assert 'href="/.lychgate/open/admin"' in r.text
    assert re.search(r"Admin panel<span class=\"badge\">admins</span>", r.text)


async def test_opening_an_app_with_a_state_hands_off_a_fresh_code(
    ctx: AuthzContext,
    authz: FastAPI,
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    ada: Person,
) -> None:
    await add_app(authz, ctx, slug="wiki")
    browser.cookies.set("lychgate_state", STATE)  # as the gateway's start set it on this host
    first = await browser.get(OPEN_WIKI, params={"state": STATE})
    second = await browser.get(OPEN_WIKI, params={"rd": "/page/2", "state": STATE})
    codes = []
    for r, rd in ((first, "/"), (second, "/page/2")):
        assert r.status_code == 303
        assert r.headers["cache-control"] == "no-store"
        location = urlsplit(r.headers["location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == (
            f"{ctx.settings.public_url}/.lychgate/callback"
        )
        query = parse_qs(location.query, strict_parsing=True)
        assert query.keys() == {"code", "rd", "state"}
        assert (query["rd"], query["state"]) == ([rd], [STATE])
        codes.append(query["code"][0])
    assert codes[0] != codes[1]
    assert await code_count(ctx) == 2
    assert (await client.post(REDEEM_PATH, json={"code": codes[0]})).status_code == 200


BAD_STATES = [
    pytest.param([], id="none"),
    pytest.param([("state", "")], id="empty"),
    pytest.param([("state", STATE[:21])], id="too-short"),
    pytest.param([("state", "a" * 65)], id="too-long"),
    pytest.param([("state", STATE[:-1] + "!")], id="bad-character"),
    pytest.param([("state", STATE[:-1] + "=")], id="padding"),
    pytest.param([("state", STATE + " ")], id="trailing-space"),
    pytest.param([("state", STATE + "\n")], id="trailing-newline"),
    pytest.param([("state", STATE), ("state", STATE)], id="twice-the-same"),
    pytest.param([("state", STATE), ("state", "x")], id="twice-one-bad"),
    pytest.param([("State", STATE)], id="wrong-name"),
]


@pytest.mark.parametrize("state", BAD_STATES)
async def test_opening_without_one_valid_state_goes_to_the_start_url_and_makes_no_code(
    ctx: AuthzContext,
    authz: FastAPI,
    browser: httpx.AsyncClient,
    ada: Person,
    state: list[tuple[str, str]],
) -> None:
    await add_app(authz, ctx, slug="wiki")
    browser.cookies.set("lychgate_state", STATE)  # as the gateway's start set it on this host
    made = await browser.get(OPEN_WIKI, params={"state": STATE})
    assert "code=" in made.headers["location"]  # the counting does see a code made here
    before = await code_count(ctx)
    assert before == 1
    start = f"{ctx.settings.public_url}/.lychgate/start?app=wiki"
    for rd, carried in ((None, "/"), ("/page/2?x=1", "/page/2%3Fx%3D1")):
        query = urlencode(state if rd is None else [("rd", rd), *state])
        r = await browser.get(f"{OPEN_WIKI}?{query}")
        assert r.status_code == 303
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["location"] == f"{start}&rd={carried}"
    assert await code_count(ctx) == before


@pytest.mark.parametrize(
    ("rd", "carried"),
    [
        ("/.lychgate/logout", "/"),
        ("/.lychgate/callback?code=x", "/"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/a/../b", "/b"),
    ],
)
async def test_open_carries_only_an_app_path(
    ctx: AuthzContext,
    authz: FastAPI,
    browser: httpx.AsyncClient,
    ada: Person,
    rd: str,
    carried: str,
) -> None:
    await add_app(authz, ctx, slug="wiki")
    r = await browser.get(OPEN_WIKI, params={"rd": rd})
    assert (
        r.headers["location"] == f"{ctx.settings.public_url}/.lychgate/start?app=wiki&rd={carried}"
    )
    r = await browser.get(OPEN_WIKI, params={"rd": rd, "state": STATE})
    assert parse_qs(urlsplit(r.headers["location"]).query)["rd"] == [carried]


@pytest.mark.parametrize("slug", ["nope", "admin", "x" * 100, "wiki%2F..", "%00"])
@pytest.mark.parametrize("state", [None, STATE])
async def test_apps_a_user_may_not_open_are_404(
    ctx: AuthzContext,
    authz: FastAPI,
    browser: httpx.AsyncClient,
    ada: Person,
    slug: str,
    state: str | None,
) -> None:
    """With a state or without, and neither a code nor a start URL for them."""
    await add_app(authz, ctx, slug="wiki")
    await add_app(authz, ctx, slug="admin", policy=AppPolicy.ADMINS)
    params = {} if state is None else {"state": state}
    r = await browser.get(f"/.lychgate/open/{slug}", params=params)
    assert r.status_code == 404
    assert "location" not in r.headers
    assert "/.lychgate/start" not in r.text
    assert await code_count(ctx) == 0


@pytest.mark.parametrize("state", [None, STATE])
async def test_opening_without_a_session_goes_to_the_login(
    ctx: AuthzContext, authz: FastAPI, browser: httpx.AsyncClient, state: str | None
) -> None:
    await add_app(authz, ctx, slug="wiki")
    params = {} if state is None else {"state": state}
    r = await browser.get(OPEN_WIKI, params=params)
    assert (r.status_code, r.headers["location"]) == (303, "/.lychgate/login")
    assert await code_count(ctx) == 0


@pytest.mark.parametrize("path", [LOGOUT, "/.lychgate/logout"])
async def test_logout_revokes_the_session_and_clears_the_cookies(
    ctx: AuthzContext, browser: httpx.AsyncClient, ada: Person, path: str
) -> None:
    sid = sid_of(browser)
    async with ctx.bus.subscribe() as events:
        r = await browser.post(path, json={})
        assert r.status_code == 200
        assert r.json() == {"redirect": "/.lychgate/login"}
        event = await asyncio.wait_for(anext(events), 2)
    assert event == SessionRevoked(session_id=sid, user_id=ada.user.id)
    assert (await ctx.store.sessions.get(sid)).revoked
    cookies = set_cookies(r)
    assert "Max-Age=0" in cookies["lychgate_session"]
    assert "Max-Age=0" in cookies["lychgate"]  # single-host: the app cookie is on this host
    actions = {e.action for e in await ctx.store.audit.list()}
    assert {"logout", "session.revoked"} <= actions
    assert (await browser.get(PORTAL)).status_code == 303
    again = await browser.post(path, json={}, headers={"cookie": f"lychgate_session={sid}"})
    assert again.status_code == 200  # idempotent
    assert len(await ctx.store.audit.list(action_prefix="logout")) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "text/plain"},
        {"content-type": "application/x-www-form-urlencoded"},
        {**JSON, "origin": "https://evil.example"},
        {**JSON, "sec-fetch-site": "cross-site"},
    ],
)
async def test_logout_refuses_cross_site_requests(
    ctx: AuthzContext, browser: httpx.AsyncClient, ada: Person, headers: dict[str, str]
) -> None:
    r = await browser.post(LOGOUT, content=b"{}", headers=headers)
    assert r.status_code in (403, 415)
    assert not (await ctx.store.sessions.get(sid_of(browser))).revoked


async def test_a_user_lists_their_sessions_by_handle(
    ctx: AuthzContext, browser: httpx.AsyncClient, other_browser: httpx.AsyncClient, ada: Person
) -> None:
    await sign_in(ctx, other_browser, ada)
    r = await browser.get(SESSIONS)
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"  # IPs and browsers: kept by no cache
    sessions = r.json()["sessions"]
    assert len(sessions) == 2
    handles = {s["id"] for s in sessions}
    assert handles == {session_handle(sid_of(browser)), session_handle(sid_of(other_browser))}
    assert sid_of(browser) not in r.text  # the secret id itself is never shown
    assert [s["current"] for s in sessions if s["id"] == session_handle(sid_of(browser))] == [True]


async def test_a_user_revokes_their_other_session(
    ctx: AuthzContext, browser: httpx.AsyncClient, other_browser: httpx.AsyncClient, ada: Person
) -> None:
    await sign_in(ctx, other_browser, ada)
    handle = session_handle(sid_of(other_browser))
    r = await browser.delete(f"{SESSIONS}/{handle}")
    assert r.status_code == 204
    assert (await ctx.store.sessions.get(sid_of(other_browser))).revoked
    assert (await other_browser.get(PORTAL)).status_code == 303
    assert (await browser.get(PORTAL)).status_code == 200
    assert (await browser.delete(f"{SESSIONS}/{handle}")).status_code == 404


async def test_revoking_the_current_session_clears_its_cookie(
    ctx: AuthzContext, browser: httpx.AsyncClient, ada: Person
) -> None:
    r = await browser.delete(f"{SESSIONS}/{session_handle(sid_of(browser))}")
    assert r.status_code == 204
    assert "Max-Age=0" in set_cookies(r)["lychgate_session"]


async def test_another_users_session_is_404(
    ctx: AuthzContext, browser: httpx.AsyncClient, other_browser: httpx.AsyncClient, ada: Person
) -> None:
    eve = await enrolled(ctx, name="Eve")
    await sign_in(ctx, other_browser, eve)
    for target in (session_handle(sid_of(other_browser)), sid_of(other_browser), "x" * 500):
        assert (await browser.delete(f"{SESSIONS}/{target}")).status_code == 404
    assert not (await ctx.store.sessions.get(sid_of(other_browser))).revoked


async def test_the_session_api_needs_a_session(browser: httpx.AsyncClient) -> None:
    assert (await browser.get(SESSIONS)).status_code == 401
    assert (await browser.delete(f"{SESSIONS}/abc")).status_code == 401
    assert (await browser.get("/.lychgate/api/v1/session/events")).status_code == 401


async def test_session_events_refuse_a_foreign_origin(
    browser: httpx.AsyncClient, ada: Person
) -> None:
    r = await browser.get(
        "/.lychgate/api/v1/session/events", headers={"origin": "https://evil.example"}
    )
    assert r.status_code == 403


NAVIGATION = {"sec-fetch-mode": "navigate", "sec-fetch-dest": "document"}


@pytest.mark.parametrize("site", ["none", "same-origin", None])
async def test_a_link_or_a_typed_address_signs_out(
    ctx: AuthzContext, browser: httpx.AsyncClient, ada: Person, site: str | None
) -> None:
    # The README's "/.lychgate/logout in the browser": on the portal host (subdomains mode,
    # where authz answers it) that was a 405 in JSON, and the session lived on.
    sid = sid_of(browser)
    headers = NAVIGATION if site is None else {**NAVIGATION, "sec-fetch-site": site}
    r = await browser.get("/.lychgate/logout", headers=headers)
    assert (r.status_code, r.headers["location"]) == (303, "/.lychgate/login")
    assert r.headers["cache-control"] == "no-store"
    assert "Max-Age=0" in set_cookies(r)["lychgate_session"]
    assert (await ctx.store.sessions.get(sid)).revoked


@pytest.mark.parametrize(
    "headers",
    [
        {**NAVIGATION, "sec-fetch-site": "cross-site"},
        {**NAVIGATION, "sec-fetch-site": "same-site"},
        {"sec-fetch-mode": "no-cors", "sec-fetch-dest": "image", "sec-fetch-site": "same-origin"},
        {"sec-fetch-mode": "cors", "sec-fetch-dest": "empty", "sec-fetch-site": "same-origin"},
    ],
    ids=["cross-site link", "sibling app's link", "img", "fetch"],
)
async def test_no_other_page_signs_out_by_a_get(
    ctx: AuthzContext, browser: httpx.AsyncClient, ada: Person, headers: dict[str, str]
) -> None:
    sid = sid_of(browser)
    r = await browser.get("/.lychgate/logout", headers=headers)
    assert r.status_code == 403
    assert "set-cookie" not in r.headers
    assert not (await ctx.store.sessions.get(sid)).revoked
