"""Where a sign-in leads (single-host mode): ``rd`` tricks (SECURITY.md item 1) end at the
portal; a good ``rd`` leads to the app's start URL, and on through the portal's ``open`` with
the browser's sign-in state to a code that redeems. A sign-in itself never makes a code."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from authz.login_fixtures import (
    STATE,
    add_app,
    approve,
    browser,
    code_count,
    enrolled,
    finish,
    sign_in,
    start,
)
from lychgate.authz.context import AuthzContext
from lychgate.authz.login.target import resolve_target
from lychgate.domain import AppPolicy
from lychgate.gateway.feed_http import REDEEM_PATH
from lychgate.gateway.snapshot import ConfigSnapshot
from lychgate.ids import LoginRequestId, SessionId, token_sid
from lychgate.tokens import PublicKeyring, verify_app_token

__all__ = ["browser"]

PUBLIC = "http://localhost:8080"

BAD_RD = [
    "https://evil.example",
    "http://evil.example/",
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/%09/evil.example",
    "/\t/evil.example",
    "https:evil.example",
    "http:evil.example",
    "https://localhost:8080/",  # the wrong scheme for this deployment
    "http://localhost:8080.evil.example/",
    "http://localhost.evil.example:8080/",
    "http://localhost:8080@evil.example/",
    "http://user@localhost:8080/",
    "http://evil.example\\@localhost:8080/",
    "http://localhost:9999/",  # an unexpected port
    "http://localhost:8080:80/",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "DATA:text/html;base64,PHNjcmlwdD4=",
    "/\r\nSet-Cookie: x=1",
    "/%0d%0aSet-Cookie:%20x=1",
    "/page\nx",
    "%2F%2Fevil.example",
    "http://l\u043ecalhost:8080/",  # a Cyrillic o: an IDN look-alike
    "http://xn--lcalhost-9fg:8080/",
    "/page#frag",
    "",
    "x" * 3000,
]


@pytest.mark.parametrize("rd", BAD_RD)
async def test_a_refused_rd_leads_to_the_portal_and_makes_no_code(
    ctx: AuthzContext, authz: FastAPI, browser: httpx.AsyncClient, rd: str
) -> None:
    await add_app(authz, ctx)  # the one app: a good rd would be handed off to it
    person = await enrolled(ctx)
    created = await start(browser, rd)
    stored = await ctx.store.login_requests.get(LoginRequestId(created["id"]))
    assert (stored.rd, stored.app_slug) == ("/.lychgate/", None)
    redirect = await sign_in(ctx, browser, person, rd)
    assert redirect == "/.lychgate/"
    assert await code_count(ctx) == 0


async def test_several_rd_parameters_are_refused(
    ctx: AuthzContext, authz: FastAPI, browser: httpx.AsyncClient
) -> None:
    await add_app(authz, ctx)
    r = await browser.get("/.lychgate/login", params=[("rd", "/a"), ("rd", "/b")])
    assert r.status_code == 200
    assert 'data-rd="/.lychgate/"' in r.text


async def test_a_good_rd_leads_to_the_start_url_and_makes_no_code(
    ctx: AuthzContext, authz: FastAPI, browser: httpx.AsyncClient
) -> None:
    app = await add_app(authz, ctx)
    person = await enrolled(ctx)
    redirect = await sign_in(ctx, browser, person, "/wiki/Page?x=1&y=%2F")
    assert redirect == f"{PUBLIC}/.lychgate/start?app={app.slug}&rd=/wiki/Page%3Fx%3D1%26y%3D%252F"
    assert parse_qs(urlsplit(redirect).query, strict_parsing=True) == {
        "app": [app.slug],
        "rd": ["/wiki/Page?x=1&y=%2F"],
    }
    assert await code_count(ctx) == 0


@pytest.mark.parametrize(
    ("cookie", "fetch"),
    [
        (None, {}),  # a state of the page's choosing, never set on this browser
        ("x" * 22, {}),  # another state
        ("same", {"sec-fetch-mode": "cors", "sec-fetch-dest": "empty"}),  # a fetch()
        ("same", {"sec-fetch-mode": "navigate", "sec-fetch-dest": "iframe"}),
    ],
    ids=["no state cookie", "other state", "fetch", "iframe"],
)
async def test_single_host_makes_no_code_for_an_apps_page(
    ctx: AuthzContext,
    authz: FastAPI,
    browser: httpx.AsyncClient,
    cookie: str | None,
    fetch: dict[str, str],
) -> None:
    # In single-host mode every app's page shares this origin: one could fetch() open with a
    # state of its choosing, read the code in the URL it was sent on to, and redeem it
    # elsewhere for a token to any app this user may open, admins-only ones included.
    app = await add_app(authz, ctx)
    person = await enrolled(ctx)
    await sign_in(ctx, browser, person, "/")
    if cookie is not None:
        browser.cookies.set("lychgate_state", STATE if cookie == "same" else cookie)
    r = await browser.get(f"/.lychgate/open/{app.slug}", params={"state": STATE}, headers=fetch)
    assert "code=" not in r.headers.get("location", "")
    assert r.status_code == (403 if fetch else 303)
    assert await code_count(ctx) == 0


async def test_the_start_url_leads_on_to_a_code_that_redeems(
    ctx: AuthzContext, authz: FastAPI, browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    """The whole way in: sign in, then (as the gateway's start sends it) ``open`` with a state."""
    app = await add_app(authz, ctx)
    person = await enrolled(ctx)
    redirect = await sign_in(ctx, browser, person, "/wiki/Page?x=1&y=%2F")
    rd = parse_qs(urlsplit(redirect).query)["rd"][0]
    browser.cookies.set("lychgate_state", STATE)  # as the gateway's start set it on this host
    r = await browser.get(f"/.lychgate/open/{app.slug}", params={"rd": rd, "state": STATE})
    assert r.status_code == 303
    parts = urlsplit(r.headers["location"])
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{PUBLIC}/.lychgate/callback"
    query = parse_qs(parts.query, strict_parsing=True)
    assert (query["rd"], query["state"]) == (["/wiki/Page?x=1&y=%2F"], [STATE])
    r = await client.post(REDEEM_PATH, json={"code": query["code"][0]})
    assert r.status_code == 200
    jwks = (await client.get("/.lychgate/jwks.json")).json()
    claims = verify_app_token(
        PublicKeyring.from_jwks(jwks), r.json()["token"], now=ctx.clock(), issuer=PUBLIC
    )
    assert (claims.sub, claims.app, claims.sid) == (
        person.user.id,
        app.slug,
        token_sid(SessionId(browser.cookies["lychgate_session"])),  # its handle, not the id
    )


async def test_an_absolute_rd_on_the_public_origin_is_a_path(
    ctx: AuthzContext, authz: FastAPI, browser: httpx.AsyncClient
) -> None:
    await add_app(authz, ctx)
    person = await enrolled(ctx)
    redirect = await sign_in(ctx, browser, person, "HTTP://LOCALHOST:8080/docs")
    assert parse_qs(urlsplit(redirect).query)["rd"] == ["/docs"]


async def test_several_apps_send_the_browser_to_the_portal_with_the_path(
    ctx: AuthzContext, authz: FastAPI, browser: httpx.AsyncClient
) -> None:
    await add_app(authz, ctx)
    await add_app(authz, ctx)
    person = await enrolled(ctx)
    assert await sign_in(ctx, browser, person, "/wiki/Page") == "/.lychgate/?rd=/wiki/Page"
    assert await code_count(ctx) == 0


async def test_an_admin_app_is_not_handed_to_a_user(
    ctx: AuthzContext, authz: FastAPI, browser: httpx.AsyncClient
) -> None:
    await add_app(authz, ctx, policy=AppPolicy.ADMINS)
    person = await enrolled(ctx)
    assert await sign_in(ctx, browser, person, "/admin/") == "/.lychgate/?rd=/admin/"
    assert await code_count(ctx) == 0


async def test_an_app_disabled_meanwhile_is_not_handed_off(
    ctx: AuthzContext, authz: FastAPI, browser: httpx.AsyncClient
) -> None:
    app = await add_app(authz, ctx)
    person = await enrolled(ctx)
    created = await start(browser, "/x")
    assert await ctx.store.apps.set_enabled(app.slug, False)
    await approve(ctx, created["id"], person)
    r = await finish(browser, created["id"])
    assert r.json() == {"redirect": "/.lychgate/?rd=/x"}


@pytest.mark.parametrize(
    "rd", ["/.lychgate/", "/.lychgate/logout", "/.LYCHGATE/callback?code=x", "/.lychgate"]
)
async def test_our_own_paths_lead_to_the_portal(
    ctx: AuthzContext, authz: FastAPI, browser: httpx.AsyncClient, rd: str
) -> None:
    await add_app(authz, ctx)
    person = await enrolled(ctx)
    assert await sign_in(ctx, browser, person, rd) == "/.lychgate/"


def test_resolve_target_is_pure(authz: FastAPI) -> None:
    snapshot: ConfigSnapshot = authz.state.publisher.latest
    target = resolve_target("/a/../b/./c//d/%2e%2e/e?q", snapshot)
    assert (target.rd, target.path, target.origin, target.app) == (
        "/b/c//e?q",  # an empty segment inside a path is kept, as nginx keeps it
        "/b/c//e?q",
        PUBLIC,
        None,
    )
    assert resolve_target(None, snapshot).rd == "/.lychgate/"
