"""What the browser tests do with the login page: read it, approve it, check where it lands."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from playwright.async_api import Page, expect

from e2e.signin import World, device
from lychgate.ids import AppSlug
from lychgate.tokens import PublicKeyring, verify_assertion

API = "/.lychgate/api/v1/login"
EVENTS = re.compile(r"/\.lychgate/api/v1/login/[A-Za-z0-9_-]+/events$")


@dataclass(frozen=True)
class Shown:
    """The login request the page shows."""

    link: str
    number: int

    @property
    def login_id(self) -> str:
        return self.link.rsplit("/", 1)[1]


def is_status_poll(url: str) -> bool:
    """``GET /.lychgate/api/v1/login/{id}``: the page's polling fallback."""
    return re.fullmatch(API + r"/[A-Za-z0-9_-]+", urlsplit(url).path) is not None


async def shown(page: Page, world: World) -> Shown:
    """Read the link and the number off the login page, checking their form."""
    await expect(page).to_have_url(re.compile("^" + re.escape(world.portal + "/.lychgate/login?")))
    link = (await page.locator("#login-url").inner_text()).strip()
    assert re.fullmatch(re.escape(world.portal) + r"/\.lychgate/d/login/lr_[A-Za-z0-9_-]+", link)
    number = (await page.locator("#number").inner_text()).strip()
    assert re.fullmatch(r"[1-9][0-9]", number), number
    return Shown(link, int(number))


async def approve(world: World, link_or_png: str | Path, number: int) -> None:
    """The enrolled CLI device approves, picking ``number``."""
    out = await asyncio.to_thread(
        device, world.key, "approve", str(link_or_png), "--number", str(number), "--yes"
    )
    assert "approved" in out.lower(), out


async def screenshot_qr(page: Page, path: Path) -> Path:
    """A PNG of the QR code as the browser draws it (the device can read the link from it)."""
    png = await page.locator("#qr").screenshot()
    await asyncio.to_thread(path.write_bytes, png)
    return path


async def assert_in_app(page: Page, world: World, slug: str) -> None:
    """The browser ends up on the app's home page, and the app saw the signed-in user."""
    await expect(page).to_have_url(world.app_origin(slug) + "/")
    await expect(page.locator("body")).to_contain_text(f'"app": "{slug}"')
    home = [s for s in world.upstreams[slug].seen if s.target == "/"]
    assert home, [s.target for s in world.upstreams[slug].seen]
    assert home[-1].header("x-lychgate-email") == "root@example.test"
    async with world.browser() as client:
        jwks = (await client.get("/.lychgate/jwks.json")).json()
    assertion = home[-1].header("x-lychgate-assertion")
    assert assertion is not None
    claims = verify_assertion(
        PublicKeyring.from_jwks(jwks),
        assertion,
        now=datetime.now(UTC),
        issuer=world.portal,
        audience=AppSlug(slug),
    )
    assert claims.email == "root@example.test"
