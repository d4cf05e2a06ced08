"""Chromium for the browser tier, and the deployment it signs in to.

The tier drives Debian's ``chromium`` package (``/usr/bin/chromium``) through Playwright's async
API; Playwright's own browser downloads are never used. A missing Chromium fails the tests with
the command that installs it (``.ci/run`` installs it on CI): a browser tier that silently
skips proves nothing.

Timeouts are generous (15 s) because CI machines are loaded; every wait is on a condition.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Error, Page, async_playwright, expect

from e2e.signin import World, enrolled_world

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 15_000


@pytest.fixture(autouse=True)
def chromium() -> Path:
    """Debian's Chromium; fails (never skips) the test when it is not installed."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} not found: the browser tests drive Debian's Chromium. Install it with "
            "`apt-get install -y chromium` (as root; .ci/run does this). "
            "Do not use `playwright install`.",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh page in its own context (no cookies); fails the test on any uncaught script
    error on the page."""
    expect.set_options(timeout=TIMEOUT_MS)
    context = await browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    errors: list[Error] = []
    opened = await context.new_page()
    opened.on("pageerror", lambda error: errors.append(error))
    try:
        yield opened
    finally:
        await context.close()
    assert not errors, f"script errors on the page: {errors}"


@pytest.fixture
async def world(
    request: pytest.FixtureRequest, data_dir: Path, tmp_path: Path
) -> AsyncIterator[World]:
    """A served deployment with one app, ``wiki``, and an enrolled CLI device. Single-host
    unless a test parametrizes ``world`` indirectly with the routing mode."""
    mode = str(getattr(request, "param", "single-host"))
    async with enrolled_world(data_dir, tmp_path / "device.json", mode, apps=("wiki",)) as w:
        yield w
