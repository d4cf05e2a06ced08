"""The seed's login and service-usage flows end to end, with real processes.

A real ``lychgate serve`` in a temporary deployment, two real upstream apps, a CLI device
enrolled through the admin setup link, and httpx as the browser (with its cookie jar):

browser → 302 to login → login request → device approves with the right number → browser
finishes into a session → portal → the device opens an app → the browser, told over SSE, goes
through the app host's sign-in start and the one-time handoff into the app (the same link
in another browser is refused) → the app sees a verifiable assertion → the device
opens a second app → logout → the old cookie is refused.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from e2e.signin import NAV, World, device, enrolled_world
from lychgate.device.client import Connector
from lychgate.device.runner import open_enrolled
from lychgate.ids import AppSlug
from lychgate.tokens import PublicKeyring, verify_assertion

pytestmark = [pytest.mark.loopback, pytest.mark.slow]


@pytest.fixture(params=["single-host", "subdomains"])
async def world(
    request: pytest.FixtureRequest, data_dir: Path, tmp_path: Path
) -> AsyncIterator[World]:
    async with enrolled_world(data_dir, tmp_path / "device.json", str(request.param)) as world:
        yield world


async def next_open(events: AsyncIterator[str]) -> str:
    async for line in events:
        if line.startswith("data:"):
            message = json.loads(line.removeprefix("data:").strip())
            if message.get("type") == "open":
                return str(message["url"])
    raise AssertionError("the portal's event stream ended")


async def test_login_open_apps_and_logout(world: World) -> None:
    _served, key, setup_link = world.served, world.key, world.setup_link
    async with world.browser() as browser:
        first = await browser.get(world.app_origin("wiki") + "/", headers=NAV)
        assert first.status_code == 302
        login_page = first.url.join(first.headers["location"])
        assert str(login_page).startswith(world.portal + "/.lychgate/login")

        page = await browser.get(login_page, headers=NAV)
        assert page.status_code == 200
        assert "<svg" in page.text or "qr" in page.text.lower()

        created = await browser.post("/.lychgate/api/v1/login", json={"rd": "/"})
        assert created.status_code == 201, created.text
        login = created.json()
        assert 10 <= login["number"] <= 99

        # Another browser (no binding cookie) can neither read nor finish it.
        async with world.browser() as stranger:
            assert (await stranger.get(f"/.lychgate/api/v1/login/{login['id']}")).status_code == 404

        out = await asyncio.to_thread(
            device, key, "approve", login["login_url"], "--number", str(login["number"]), "--yes"
        )
        assert "approved" in out.lower()
        status = await browser.get(f"/.lychgate/api/v1/login/{login['id']}")
        assert status.json()["status"] == "approved"

        done = await browser.post(f"/.lychgate/api/v1/login/{login['id']}/finish", json={})
        assert done.status_code == 200, done.text
        portal = await browser.get(done.json()["redirect"], headers=NAV)
        assert portal.status_code == 200
        assert "Wiki" in portal.text
        assert "Notes" in portal.text
        again = await browser.post(f"/.lychgate/api/v1/login/{login['id']}/finish", json={})
        assert again.status_code in (404, 409)

        apps = await asyncio.to_thread(device, key, "apps")
        assert "wiki" in apps
        assert "notes" in apps

        async with browser.stream("GET", "/.lychgate/api/v1/session/events") as stream:
            lines = stream.aiter_lines()
            for slug in ("wiki", "notes"):
                pushed = asyncio.ensure_future(next_open(lines))
                await asyncio.sleep(0.2)
                await asyncio.to_thread(device, key, "open", slug)
                async with asyncio.timeout(5):
                    url = await pushed
                # The app host sets the sign-in state, then authz makes the code for it.
                assert url.startswith(world.app_origin(slug) + "/.lychgate/start?")

                async def to_callback(start_url: str) -> httpx.URL:
                    start = await browser.get(start_url, headers=NAV)
                    assert start.status_code == 303, start.text
                    opened = await browser.get(
                        start.url.join(start.headers["location"]), headers=NAV
                    )
                    assert opened.status_code == 303, opened.text
                    return opened.url.join(opened.headers["location"])

                callback_url = await to_callback(url)
                assert str(callback_url).startswith(world.app_origin(slug) + "/.lychgate/callback")
                # Login CSRF: the same link in a browser that did not start this sign-in
                # is refused, and its code burnt: nobody can redeem a code that reached a
                # callback it was not made for. The browser that started it begins again.
                async with world.browser() as stranger:
                    planted = await stranger.get(callback_url, headers=NAV)
                    assert planted.status_code == 400, planted.text
                burnt = await browser.get(callback_url, headers=NAV)
                assert burnt.status_code == 400, burnt.text
                callback = await browser.get(await to_callback(url), headers=NAV)
                assert callback.status_code in (302, 303), callback.text
                landed = await browser.get(callback.url.join(callback.headers["location"]))
                assert landed.status_code == 200, landed.text
                body = landed.json()
                assert body["app"] == slug
                seen = {k.lower(): v for k, v in body["headers"]}
                jwks = (await browser.get("/.lychgate/jwks.json")).json()
                claims = verify_assertion(
                    PublicKeyring.from_jwks(jwks),
                    seen["x-lychgate-assertion"],
                    now=datetime.now(UTC),
                    issuer=world.portal,
                    audience=AppSlug(slug),
                )
                assert claims.email == "root@example.test"
                assert claims.adm
                assert "lychgate" not in seen.get("cookie", "")

        notes = world.app_origin("notes")
        app_cookie = next(c.value for c in browser.cookies.jar if c.name == "lychgate")
        bye = await browser.get(notes + "/.lychgate/logout")
        assert bye.status_code in (200, 302, 303)

    async with world.browser() as replay:
        async with asyncio.timeout(3):
            while True:
                r = await replay.get(
                    notes + "/",
                    headers={"cookie": f"lychgate={app_cookie}", "accept": "application/json"},
                )
                if r.status_code == 401:
                    break
                await asyncio.sleep(0.1)

    # The setup link is dead now that an admin exists.
    with pytest.raises(AssertionError):
        await asyncio.to_thread(
            device, key.with_name("other.json"), "enroll", setup_link, "--user-name", "Eve"
        )


async def test_wrong_number_denies(world: World) -> None:
    key = world.key
    async with world.browser() as browser:
        login = (await browser.post("/.lychgate/api/v1/login", json={"rd": "/"})).json()
        enrolled = await asyncio.to_thread(open_enrolled, key, None, Connector())
        context = await asyncio.to_thread(enrolled.run, lambda c: c.login(login["id"]))
        wrong = next(n for n in context.choices if n != login["number"])
        with pytest.raises(AssertionError, match=r"wrong|denied|409"):
            await asyncio.to_thread(
                device, key, "approve", login["login_url"], "--number", str(wrong), "--yes"
            )
        status = await browser.get(f"/.lychgate/api/v1/login/{login['id']}")
        assert status.json()["status"] == "denied"
        done = await browser.post(f"/.lychgate/api/v1/login/{login['id']}/finish", json={})
        assert done.status_code == 409
