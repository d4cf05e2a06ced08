"""An expired login request is replaced on the page by itself, and the new code works.

``login_request_ttl`` is shortened in lychgate.toml. When the first request expires, the page
starts a fresh one through the JSON API without being reloaded: a new link, a new QR code (now
an image from ``.../qr.svg``) and the countdown again. A screenshot of that new QR code gives
the device the new link, its approval signs the browser in to the app, and the expired link
can no longer be approved.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from browser.loginpage import API, approve, assert_in_app, screenshot_qr
from browser.loginpage import shown as shown_login
from e2e.signin import World, enrolled_world

pytestmark = [pytest.mark.browser, pytest.mark.loopback, pytest.mark.slow]

# Long enough for the device to approve the fresh request on a loaded machine, short enough
# to wait for the first one to expire.
TTL = 8


@pytest.fixture
async def short_lived(data_dir: Path, tmp_path: Path) -> AsyncIterator[World]:
    key = tmp_path / "device.json"
    settings = {"login_request_ttl": TTL}
    async with enrolled_world(data_dir, key, "single-host", apps=("wiki",), settings=settings) as w:
        yield w


async def test_expired_code_is_replaced(page: Page, short_lived: World, tmp_path: Path) -> None:
    world = short_lived
    await page.goto(world.app_origin("wiki") + "/")
    first = await shown_login(page, world)

    link = page.locator("#login-url")
    await expect(link).not_to_have_text(first.link, timeout=(TTL + 15) * 1000)
    fresh = await shown_login(page, world)
    assert fresh.login_id != first.login_id
    image = page.locator("#qr > img")
    await expect(image).to_have_attribute("src", f"{API}/{fresh.login_id}/qr.svg")
    await page.wait_for_function("() => document.querySelector('#qr > img').naturalWidth > 0")
    await expect(page.locator("#status-text")).to_have_text("Waiting for your device…")
    await expect(page.locator("#countdown")).to_be_visible()

    await approve(world, await screenshot_qr(page, tmp_path / "fresh.png"), fresh.number)
    await assert_in_app(page, world, "wiki")

    with pytest.raises(AssertionError, match="expired"):
        await approve(world, first.link, first.number)
