"""A sibling app's page cannot change state in another app, in a real browser (admission step 8).

Subdomains mode under a real public suffix: Chromium resolves ``*.example.com`` to loopback,
so ``chat.example.com`` and ``wiki.example.com`` are two origins of one *site*, as in a real
deployment. The browser is signed in to both (their ``__Host-lychgate`` cookies are
``SameSite=Lax``). A page of chat then fetches from wiki: the GET carries wiki's cookie, which
shows that the attack is real (SameSite does not stop it), and the POST, which carries it
too, is refused by the gateway before it reaches wiki. Wiki's own page may still POST.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, async_playwright

from browser.conftest import CHROMIUM_ARGS, TIMEOUT_MS
from e2e.deployment import add_app, free_port, lychgate, serve
from gateway.upstreams import Upstream, echo, http_upstream

pytestmark = [pytest.mark.browser, pytest.mark.loopback, pytest.mark.slow]


@pytest.fixture
async def site_browser(chromium: Path) -> AsyncIterator[Browser]:
    """Chromium that resolves every ``*.example.com`` name to 127.0.0.1."""
    rules = "--host-resolver-rules=MAP *.example.com 127.0.0.1"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=[*CHROMIUM_ARGS, rules]
        )
        try:
            yield launched
        finally:
            await launched.close()


async def test_a_sibling_origin_reads_with_the_cookie_but_cannot_write(
    site_browser: Browser, data_dir: Path
) -> None:
    port = free_port()
    d = str(data_dir)
    portal, wiki = f"https://auth.example.com:{port}", f"https://wiki.example.com:{port}"
    await asyncio.to_thread(
        lychgate, "init", "--dir", d, "--routing", "subdomains", "--public-url", portal
    )
    await asyncio.to_thread(
        lychgate, "user", "add", "A", "--email", "a@x.test", "--admin", "--dir", d
    )
    async with http_upstream(echo) as up:
        signed_in: list[tuple[str, str, str]] = []  # cookie name, token, app URL
        for slug in ("wiki", "chat"):
            await asyncio.to_thread(add_app, d, slug, slug.title(), up.url)
            minted = await asyncio.to_thread(
                lychgate, "token", "mint", "--dir", d, "--app", slug, "--user", "a@x.test"
            )
            name, _, token = minted.split("\n")[0].partition("=")
            assert name == "__Host-lychgate"
            signed_in.append((name, token, f"https://{slug}.example.com:{port}/"))
        async with serve(data_dir, port, health_url=f"https://localhost:{port}", verify=False):
            context = await site_browser.new_context(ignore_https_errors=True)
            context.set_default_timeout(TIMEOUT_MS)
            try:
                await context.add_cookies(
                    [
                        {"name": n, "value": v, "url": u, "sameSite": "Lax", "secure": True}
                        for n, v, u in signed_in
                    ]
                )
                await _attack_and_own_write(context, f"https://chat.example.com:{port}", wiki, up)
            finally:
                await context.close()


async def _attack_and_own_write(
    context: BrowserContext, sibling_origin: str, wiki: str, up: Upstream
) -> None:
    sibling = await context.new_page()
    await sibling.goto(sibling_origin + "/evil")  # a page of chat, the sibling app
    await sibling.evaluate(
        """async (wiki) => {
            const opts = {credentials: "include", mode: "no-cors"};
            await fetch(wiki + "/read", opts);
            await fetch(wiki + "/write", {...opts, method: "POST", body: "delete everything"});
        }""",
        wiki,
    )
    reads = [s for s in up.seen if s.target == "/read"]
    assert reads, [s.target for s in up.seen]
    assert reads[0].header("x-lychgate-email") == "a@x.test"  # the cookie rode along
    assert not [s for s in up.seen if s.target == "/write"]  # the write never reached wiki

    own = await context.new_page()
    await own.goto(wiki + "/home")
    status = await own.evaluate(
        """async () => (await fetch("/save", {method: "POST", body: "x"})).status"""
    )
    assert status == 200
    saves = [s for s in up.seen if s.target == "/save"]
    assert [s.method for s in saves] == ["POST"]
