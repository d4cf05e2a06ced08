"""``lychgate serve`` in subdomains mode and over HTTPS with the internal CA."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from e2e.deployment import Served, add_app, free_port, lychgate, serve
from gateway.upstreams import Upstream, echo, http_upstream

pytestmark = [pytest.mark.loopback, pytest.mark.slow]


def mint(data_dir: Path, app: str) -> str:
    out = lychgate("token", "mint", "--dir", str(data_dir), "--app", app, "--user", "a@x.test")
    return out.split("\n")[0]


@pytest.fixture
async def subdomains(data_dir: Path) -> AsyncIterator[tuple[Served, Upstream, int]]:
    port = free_port()
    d = str(data_dir)
    await asyncio.to_thread(
        lychgate,
        "init",
        "--dir",
        d,
        "--routing",
        "subdomains",
        "--public-url",
        f"http://auth.localhost:{port}",
    )
    await asyncio.to_thread(
        lychgate, "user", "add", "A", "--email", "a@x.test", "--admin", "--dir", d
    )
    async with http_upstream(echo) as up:
        for slug in ("wiki", "chat"):
            await asyncio.to_thread(add_app, d, slug, slug, up.url)
        async with serve(data_dir, port) as served:
            yield served, up, port


async def test_subdomains_route_by_host(
    subdomains: tuple[Served, Upstream, int], data_dir: Path
) -> None:
    served, up, port = subdomains
    wiki = await asyncio.to_thread(mint, data_dir, "wiki")
    async with httpx.AsyncClient(base_url=served.url) as c:
        ok = await c.get("/page", headers={"host": f"WIKI.localhost.:{port}", "cookie": wiki})
        assert ok.status_code == 200
        assert ok.text.startswith("GET /page")
        # A token for wiki is no key to chat (cookie tossing across sibling hosts).
        other = await c.get(
            "/",
            headers={
                "host": f"chat.localhost:{port}",
                "cookie": wiki,
                "accept": "application/json",
            },
        )
        assert other.status_code == 401
        unknown = await c.get("/", headers={"host": f"nope.localhost:{port}", "cookie": wiki})
        assert unknown.status_code == 404
        login = await c.get(
            "/x",
            headers={
                "host": f"chat.localhost:{port}",
                "accept": "text/html",
                "sec-fetch-mode": "navigate",
            },
        )
        assert login.status_code == 302
        assert login.headers["location"].startswith(f"http://auth.localhost:{port}/.lychgate/login")
    assert [s.target for s in up.seen] == ["/page"]


async def test_a_sibling_apps_page_cannot_post_as_the_user(
    subdomains: tuple[Served, Upstream, int], data_dir: Path
) -> None:
    # The store, the feed and admission step 8 together: a write that chat's page makes to
    # wiki is refused; wiki's own page may write; after `app update --allow-cross-origin`
    # (reaching the gateway through the feed), the sibling's write passes too.
    served, up, port = subdomains
    wiki = await asyncio.to_thread(mint, data_dir, "wiki")
    host = {"host": f"wiki.localhost:{port}", "cookie": wiki}

    async def post(origin: str) -> int:
        async with httpx.AsyncClient(base_url=served.url) as c:
            r = await c.post("/save", content=b"x", headers={**host, "origin": origin})
            return r.status_code

    assert await post(f"http://chat.localhost:{port}") == 403
    assert await post(f"http://wiki.localhost:{port}") == 200
    await asyncio.to_thread(
        lychgate, "app", "update", "wiki", "--dir", str(data_dir), "--allow-cross-origin"
    )
    async with asyncio.timeout(10):  # authz's next snapshot, then the feed
        while await post(f"http://chat.localhost:{port}") != 200:
            await asyncio.sleep(0.1)
    assert [s.method for s in up.seen] == ["POST", "POST"]


async def test_https_with_the_internal_ca(data_dir: Path) -> None:
    port, metrics_port = free_port(), free_port()
    d = str(data_dir)
    await asyncio.to_thread(
        lychgate, "init", "--dir", d, "--public-url", f"https://localhost:{port}"
    )
    config = data_dir / "lychgate.toml"
    top = f'metrics_listen = "127.0.0.1:{metrics_port}"\n'  # top-level keys go first
    await asyncio.to_thread(config.write_text, top + config.read_text())
    await asyncio.to_thread(
        lychgate, "user", "add", "A", "--email", "a@x.test", "--admin", "--dir", d
    )
    ca = data_dir / "tls" / "ca.pem"
    trust = await asyncio.to_thread(ssl.create_default_context, cafile=str(ca))
    async with http_upstream(echo) as up:
        await asyncio.to_thread(
            lychgate,
            "app",
            "add",
            "--dir",
            d,
            "--slug",
            "wiki",
            "--name",
            "Wiki",
            "--upstream",
            up.url,
        )
        cookie = await asyncio.to_thread(mint, data_dir, "wiki")
        assert cookie.startswith("__Host-lychgate=")
        async with serve(data_dir, port, health_url=f"https://localhost:{port}", verify=trust) as _:
            async with httpx.AsyncClient(verify=trust) as c:
                r = await c.get(f"https://localhost:{port}/tls", headers={"cookie": cookie})
                assert r.status_code == 200
                assert r.text.startswith("GET /tls")
            async with httpx.AsyncClient(verify=True) as untrusting:
                with pytest.raises(httpx.ConnectError):
                    await untrusting.get(f"https://localhost:{port}/")
            # A socket that never says hello is a handshake in progress, in the metrics.
            _, stalled = await asyncio.open_connection("127.0.0.1", port)
            try:
                await _until_scraped(
                    metrics_port, 'lychgate_gateway_tls_handshakes{worker="0"} 1.0'
                )
            finally:
                stalled.close()
            scraped = await _until_scraped(
                metrics_port, 'lychgate_gateway_tls_handshakes{worker="0"} 0.0'
            )
            assert "lychgate_gateway_tls_not_after_timestamp_seconds" in scraped


async def _until_scraped(port: int, line: str) -> str:
    """The gateway's metrics once they show ``line``."""
    async with httpx.AsyncClient() as client, asyncio.timeout(10):
        while True:
            with contextlib.suppress(httpx.TransportError):  # not listening yet
                scraped = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
                if line in scraped:
                    return scraped
            await asyncio.sleep(0.1)
