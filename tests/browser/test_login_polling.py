"""Without server-sent events the login page falls back to polling, and still signs in.

Every request for the page's SSE stream is aborted in the browser (``page.route``), so its
EventSource fails at once. The page must then poll ``GET /.lychgate/api/v1/login/{id}``: the test
waits for a poll that reads ``pending`` before the device approves; the browser then finishes
by itself, on the word of a poll, and lands on the app with the user's identity.
"""

from __future__ import annotations

import pytest
from playwright.async_api import Page, Request, Response, Route

from browser.loginpage import API, EVENTS, approve, assert_in_app, is_status_poll
from browser.loginpage import shown as shown_login
from e2e.signin import World

pytestmark = [pytest.mark.browser, pytest.mark.loopback, pytest.mark.slow]


def is_poll(response: Response) -> bool:
    return response.request.method == "GET" and is_status_poll(response.url)


async def test_page_falls_back_to_polling(page: Page, world: World) -> None:
    aborted: list[str] = []
    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))

    async def no_sse(route: Route) -> None:
        aborted.append(route.request.url)
        await route.abort()

    await page.route(EVENTS, no_sse)
    async with page.expect_response(is_poll) as first_poll:
        await page.goto(world.app_origin("wiki") + "/")
    shown = await shown_login(page, world)
    poll = await first_poll.value
    assert poll.url.endswith(shown.login_id)
    assert poll.status == 200
    assert await poll.json() == {"status": "pending"}
    assert aborted, "the page never opened its event stream"

    await approve(world, shown.link, shown.number)
    await assert_in_app(page, world, "wiki")
    # What told the page to finish was a poll: the last login call before the finish.
    calls = [(r.method, r.url) for r in requests if API in r.url]
    finish = calls.index(("POST", f"{world.portal}{API}/{shown.login_id}/finish"))
    assert is_status_poll(calls[finish - 1][1]), calls
    assert len(aborted) == 1, aborted
