"""A wrong number on the device denies the login, and the page says so and offers a new code.

The device is offered three numbers; it picks one that the page does not show, which denies
the request. The page stops waiting, says the sign-in was refused, and shows its "new code"
button; clicking it shows a fresh request, which the device then approves with the right
number, and the browser lands on the app.
"""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Page, expect

from browser.loginpage import approve, assert_in_app
from browser.loginpage import shown as shown_login
from e2e.signin import World
from lychgate.device.client import Connector, DeviceClient
from lychgate.device.runner import open_enrolled
from lychgate.device.wire import LoginContext
from lychgate.ids import LoginRequestId

pytestmark = [pytest.mark.browser, pytest.mark.loopback, pytest.mark.slow]


async def offered(world: World, login_id: str) -> tuple[int, ...]:
    """The numbers the device is offered for ``login_id``."""
    enrolled = await asyncio.to_thread(open_enrolled, world.key, None, Connector())

    async def read(client: DeviceClient) -> LoginContext:
        return await client.login(LoginRequestId(login_id))

    context = await asyncio.to_thread(enrolled.run, read)
    return context.choices


async def test_wrong_number_denies_on_the_page(page: Page, world: World) -> None:
    await page.goto(world.app_origin("wiki") + "/")
    denied = await shown_login(page, world)
    choices = await offered(world, denied.login_id)
    assert denied.number in choices
    wrong = next(n for n in choices if n != denied.number)
    with pytest.raises(AssertionError, match=r"wrong|denied|409"):
        await approve(world, denied.link, wrong)

    status = page.locator("#status")
    await expect(page.locator("#status-text")).to_have_text(
        "The sign-in was refused on the device."
    )
    await expect(status).to_have_class("status error")
    await expect(page.locator("#countdown")).to_be_hidden()
    retry = page.locator("#retry")
    await expect(retry).to_be_visible()
    await expect(retry).to_be_focused()

    await retry.click()
    await expect(page.locator("#login-url")).not_to_have_text(denied.link)
    await expect(page.locator("#status-text")).to_have_text("Waiting for your device…")
    await expect(retry).to_be_hidden()
    fresh = await shown_login(page, world)
    assert fresh.login_id != denied.login_id
    await approve(world, fresh.link, fresh.number)
    await assert_in_app(page, world, "wiki")
