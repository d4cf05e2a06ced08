"""The login page (HTML): QR code, link, number, destination, CSP, and the signed-in skip."""

from __future__ import annotations

import re
from html import unescape

import httpx
import pytest
from fastapi import FastAPI

from authz.login_fixtures import add_app, browser, code_count, enrolled, sign_in
from authz.outage import count_rows
from lychgate.authz.context import AuthzContext
from lychgate.authz.login.qr import qr_svg
from lychgate.ids import LoginRequestId
from lychgate.store.schema import login_requests

__all__ = ["browser"]

LOGIN = "/.lychgate/login"


def data_attribute(html: str, name: str) -> str:
    match = re.search(rf'data-{name}="([^"]*)"', html)
    assert match is not None, name
    return unescape(match.group(1))


async def test_the_page_shows_the_qr_code_the_link_and_the_number(
    ctx: AuthzContext, browser: httpx.AsyncClient
) -> None:
    r = await browser.get(LOGIN)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    login_id = data_attribute(r.text, "login-id")
    login = await ctx.store.login_requests.get(LoginRequestId(login_id))
    url = f"{ctx.settings.public_url}/.lychgate/d/login/{login_id}"
    assert qr_svg(url) in r.text  # the inline SVG encodes exactly the link
    assert f'<code id="login-url" class="url" aria-labelledby="link-label">{url}</code>' in r.text
    assert re.search(rf'<output id="number"[^>]*>{login.number}</output>', r.text)
    assert "to your apps" in r.text
    assert "2:00" in r.text
    assert "lychgate_login" in browser.cookies
    actions = [e.action for e in await ctx.store.audit.list()]
    assert actions == ["login.requested"]  # the same path as the JSON API


async def test_the_page_has_a_strict_policy_and_no_inline_script(
    browser: httpx.AsyncClient,
) -> None:
    r = await browser.get(LOGIN)
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", r.text) == []
    assert " style=" not in r.text
    assert re.findall(r"\son[a-z]+=", r.text) == []


async def test_the_page_names_the_only_app_and_the_path(
    ctx: AuthzContext, authz: FastAPI, browser: httpx.AsyncClient
) -> None:
    await add_app(authz, ctx, name="Wiki <b>&</b>")
    r = await browser.get(LOGIN, params={"rd": "/page?id=<x>"})
    assert "to <strong>Wiki &lt;b&gt;&amp;&lt;/b&gt;</strong>" in r.text
    assert '<span class="where">/page?id=&lt;x&gt;</span>' in r.text


async def test_a_refused_rd_shows_the_portal(browser: httpx.AsyncClient) -> None:
    r = await browser.get(LOGIN, params={"rd": '"><script>alert(1)</script>'})
    assert r.status_code == 200
    assert "to your apps" in r.text
    assert "<script>alert" not in r.text
    assert data_attribute(r.text, "rd") == "/.lychgate/"


async def test_a_signed_in_browser_skips_the_qr_code(
    ctx: AuthzContext, browser: httpx.AsyncClient
) -> None:
    person = await enrolled(ctx)
    await sign_in(ctx, browser, person)
    before = len(await ctx.store.audit.list(action_prefix="login.requested"))
    r = await browser.get(LOGIN)
    assert r.status_code == 303
    assert r.headers["location"] == "/.lychgate/"
    assert len(await ctx.store.audit.list(action_prefix="login.requested")) == before


async def test_a_signed_in_browser_is_sent_to_the_apps_start_url(
    ctx: AuthzContext, authz: FastAPI, browser: httpx.AsyncClient
) -> None:
    app = await add_app(authz, ctx)
    person = await enrolled(ctx)
    await sign_in(ctx, browser, person)
    r = await browser.get(LOGIN, params={"rd": "/notes/1"})
    assert r.status_code == 303
    assert r.headers["location"] == (
        f"{ctx.settings.public_url}/.lychgate/start?app={app.slug}&rd=/notes/1"
    )
    assert await code_count(ctx) == 0  # the code comes later, from open, for a state


async def test_a_revoked_session_shows_the_qr_code_again(
    ctx: AuthzContext, browser: httpx.AsyncClient
) -> None:
    person = await enrolled(ctx)
    await sign_in(ctx, browser, person)
    sid = browser.cookies["lychgate_session"]
    await ctx.store.sessions.revoke(sid, ctx.clock())  # type: ignore[arg-type]
    assert (await browser.get(LOGIN)).status_code == 200


async def test_too_many_page_loads_get_a_429_page(browser: httpx.AsyncClient) -> None:
    for _ in range(20):
        assert (await browser.get(LOGIN)).status_code == 200
    r = await browser.get(LOGIN)
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    assert "Too many sign-in attempts" in r.text
    assert "lychgate_login=" not in r.headers.get("set-cookie", "")


@pytest.mark.parametrize(
    "fetched_as",
    [
        {"sec-fetch-dest": "image", "sec-fetch-mode": "no-cors", "sec-fetch-site": "cross-site"},
        {"sec-fetch-dest": "empty", "sec-fetch-mode": "cors", "sec-fetch-site": "cross-site"},
        {"sec-fetch-dest": "iframe", "sec-fetch-mode": "navigate", "sec-fetch-site": "same-site"},
    ],
    ids=["img", "fetch", "iframe"],
)
async def test_only_a_navigation_makes_a_login_request(
    ctx: AuthzContext, browser: httpx.AsyncClient, fetched_as: dict[str, str]
) -> None:
    # Twenty <img src=".../.lychgate/login"> on any site made twenty login requests and
    # locked the visitor's network out of signing in (429) while the page stayed open.
    for _ in range(25):
        r = await browser.get(LOGIN, headers=fetched_as)
        assert r.status_code == 403
        assert "lychgate_login=" not in r.headers.get("set-cookie", "")
    assert await count_rows(ctx.store, login_requests) == 0
    assert (await browser.get(LOGIN, headers={"sec-fetch-dest": "document"})).status_code == 200


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/.lychgate/static/login/login.js", "text/javascript"),
        ("/.lychgate/static/login/lychgate.css", "text/css"),
        ("/.lychgate/static/portal/portal.js", "text/javascript"),
    ],
)
async def test_static_files(browser: httpx.AsyncClient, path: str, media_type: str) -> None:
    r = await browser.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(media_type)
    assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "name", ["page.py", "..%2fpage.py", "../templates/login.html", "%2e%2e/qr.py", "missing.js"]
)
async def test_only_the_listed_static_files_are_served(
    browser: httpx.AsyncClient, name: str
) -> None:
    assert (await browser.get(f"/.lychgate/static/login/{name}")).status_code == 404
