"""The login page signs a real browser in by itself, told over server-sent events.

Chromium opens an app without a session and is sent to the login page, which shows the QR code
(inline SVG), the sign-in link as text, a two-digit number and the app's name. The enrolled CLI
device reads the link from a screenshot of that QR code and approves with the number the page
shows. The page, waiting on its SSE stream (and never polling), finishes the login and the
browser lands on the app, which receives the user's identity headers and a valid assertion.
Both routing modes: in subdomains mode Chromium resolves ``*.localhost`` itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page, Request, expect

from browser.loginpage import API, EVENTS, approve, assert_in_app, is_status_poll, screenshot_qr
from browser.loginpage import shown as shown_login
from e2e.signin import World

pytestmark = [pytest.mark.browser, pytest.mark.loopback, pytest.mark.slow]


@pytest.mark.parametrize("world", ["single-host", "subdomains"], indirect=True)
async def test_page_signs_in_over_sse(page: Page, world: World, tmp_path: Path) -> None:
    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))
    async with page.expect_request(EVENTS) as events:
        await page.goto(world.app_origin("wiki") + "/")
    shown = await shown_login(page, world)
    assert (await events.value).url.endswith(f"{API}/{shown.login_id}/events")

    await expect(page.locator("#qr > svg")).to_be_visible()
    await expect(page.locator(".destination")).to_contain_text("Wiki")
    await expect(page.locator("#status-text")).to_have_text("Waiting for your device…")

    await approve(world, await screenshot_qr(page, tmp_path / "qr.png"), shown.number)

    await assert_in_app(page, world, "wiki")
    finished = [r for r in requests if r.method == "POST" and r.url.endswith("/finish")]
    assert len(finished) == 1
    assert not [r.url for r in requests if is_status_poll(r.url)], "the page polled"
