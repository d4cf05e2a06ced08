"""A deployment ready for sign-in tests, shared by the loopback and browser tiers.

:func:`enrolled_world` runs ``lychgate init`` in a temporary data directory, adds echo upstream
apps, starts a real ``lychgate serve``, enrolls a CLI device as the first admin through the
setup link, and waits until the gateway knows that setup is finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from e2e.deployment import Served, add_app, free_port, lychgate, serve
from gateway.upstreams import App, Reply, Seen, Upstream, http_upstream

NAV = {"accept": "text/html", "sec-fetch-mode": "navigate"}


def echo_as(name: str) -> App:
    """An upstream app that answers with its name, the target and the headers it received."""

    async def app(seen: Seen, reply: Reply) -> None:
        body = json.dumps({"app": name, "target": seen.target, "headers": seen.headers})
        await reply.send(200, body.encode(), [("content-type", "application/json")])

    return app


def device(key: Path, *args: str) -> str:
    return lychgate("device", *args, "--key", str(key))


class Loopback(httpx.AsyncBaseTransport):
    """Sends every request to 127.0.0.1 while the client keeps the real URL: the Host header
    and the cookie jar see ``wiki.localhost`` as a browser would, without any DNS."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        routed = httpx.Request(
            request.method,
            request.url.copy_with(host="127.0.0.1"),
            headers=request.headers,
            stream=request.stream,
        )
        return await self._inner.handle_async_request(routed)

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass
class World:
    served: Served
    key: Path
    setup_link: str
    portal: str  # the public URL: login, portal and JWKS live here
    mode: str
    upstreams: dict[str, Upstream]  # by app slug

    def app_origin(self, slug: str) -> str:
        if self.mode == "single-host":
            return self.portal
        return f"http://{slug}.localhost:{self.served.port}"

    def browser(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.portal, transport=Loopback())


@contextlib.asynccontextmanager
async def enrolled_world(
    data_dir: Path,
    key: Path,
    mode: str,
    *,
    apps: Sequence[str] = ("wiki", "notes"),
    settings: Mapping[str, int | str] | None = None,
) -> AsyncIterator[World]:
    """A served deployment in ``mode`` with echo apps ``apps`` and a device enrolled at ``key``
    as the admin (root@example.test). ``settings`` go into lychgate.toml before it starts."""
    port = free_port()
    d = str(data_dir)
    portal = (
        f"http://127.0.0.1:{port}" if mode == "single-host" else f"http://auth.localhost:{port}"
    )
    out = await asyncio.to_thread(
        lychgate, "init", "--dir", d, "--public-url", portal, "--routing", mode
    )
    setup = re.search(r"(http://\S+/\.lychgate/enroll/[A-Za-z0-9_-]+)", out)
    assert setup, out
    if settings:
        config = data_dir / "lychgate.toml"
        lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
        text = await asyncio.to_thread(config.read_text)
        await asyncio.to_thread(config.write_text, lines + text)  # top-level keys go first
    async with contextlib.AsyncExitStack() as stack:
        upstreams: dict[str, Upstream] = {}
        for slug in apps:
            upstreams[slug] = await stack.enter_async_context(http_upstream(echo_as(slug)))
            await asyncio.to_thread(add_app, d, slug, slug.title(), upstreams[slug].url)
        served = await stack.enter_async_context(serve(data_dir, port))
        world = World(served, key, setup.group(1), portal, mode, upstreams)
        await asyncio.to_thread(
            device,
            world.key,
            "enroll",
            world.setup_link,
            "--user-name",
            "Root",
            "--email",
            "root@example.test",
            "--name",
            "laptop",
        )
        # The gateways learn that setup is finished from the next snapshot (≤ 1 s).
        async with world.browser() as c, asyncio.timeout(5):
            home = world.app_origin(apps[0]) + "/"
            while "/setup" in (await c.get(home, headers=NAV)).headers.get("location", ""):
                await asyncio.sleep(0.1)
        yield world
