"""``lychgate serve`` end to end over loopback: admission, identity, tunnels, revocation, feed.

One deployment per test module (starting serve costs about a second); each test uses its own
user and session so that they do not interfere.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed, InvalidStatus

from e2e.deployment import Served, free_port, lychgate, serve
from gateway.upstreams import Reply, Seen, Upstream, http_upstream
from lychgate.ids import AppSlug
from lychgate.tokens import PublicKeyring, verify_assertion

pytestmark = [pytest.mark.loopback, pytest.mark.slow]
NAV = {"accept": "text/html", "sec-fetch-mode": "navigate"}
# Hang guards, never bounds on how soon: python -m bench.revocation measures that.
HANG_S = 10


async def echo_headers(seen: Seen, reply: Reply) -> None:
    body = json.dumps({"target": seen.target, "headers": seen.headers}).encode()
    await reply.send(200, body, [("content-type", "application/json")])


async def ws_echo(conn: ServerConnection) -> None:
    async for message in conn:
        await conn.send(message)


@pytest.fixture
def ports() -> tuple[int, int, int]:
    return free_port(), free_port(), free_port()


@pytest.fixture
def deployment(data_dir: Path, ports: tuple[int, int, int]) -> Path:
    gateway_port, _, ws_port = ports
    d = str(data_dir)
    lychgate("init", "--dir", d, "--public-url", f"http://127.0.0.1:{gateway_port}")
    lychgate(
        "app",
        "add",
        "--dir",
        d,
        "--slug",
        "chat",
        "--name",
        "Chat",
        "--websockets",
        "--upstream",
        f"http://127.0.0.1:{ws_port}",
    )
    lychgate("user", "add", "Admin", "--email", "admin@example.test", "--admin", "--dir", d)
    lychgate("user", "add", "Ada", "--email", "ada@example.test", "--dir", d)
    return data_dir


def mint(data_dir: Path, app: str, user: str = "ada@example.test", ttl: int | None = None) -> str:
    """A cookie value NAME=TOKEN (setup happens off the event loop in a thread).

    With ``ttl``, the session (and its token) ends that many seconds after minting.
    """
    args = ["token", "mint", "--dir", str(data_dir), "--app", app, "--user", user]
    if ttl is not None:
        args += ["--ttl", str(ttl)]
    return lychgate(*args).split("\n")[0]


@pytest.fixture
async def running(
    deployment: Path, ports: tuple[int, int, int]
) -> AsyncIterator[tuple[Served, Upstream]]:
    gateway_port, _, ws_port = ports
    async with (
        http_upstream(echo_headers) as up,
        ws_serve(ws_echo, "127.0.0.1", ws_port),
    ):
        # The h11 upstream picks its own port, so its app is added now (in a thread: the CLI
        # runs its own event loop).
        await asyncio.to_thread(
            lychgate,
            "app",
            "add",
            "--dir",
            str(deployment),
            "--slug",
            "echo",
            "--name",
            "Echo",
            "--upstream",
            up.url,
        )
        async with serve(deployment, gateway_port) as served:
            yield served, up


async def test_no_cookie_navigation_goes_to_login(running: tuple[Served, Upstream]) -> None:
    served, up = running
    async with httpx.AsyncClient(base_url=served.url) as c:
        r = await c.get("/some/page?x=1", headers=NAV)
        assert r.status_code == 302
        location = urlsplit(r.headers["location"])
        assert location.path == "/.lychgate/login"
        assert parse_qs(location.query) == {"rd": ["/some/page?x=1"]}
        api = await c.get("/api", headers={"accept": "application/json"})
        assert api.status_code == 401
        assert api.json()["error"] == "login_required"
    assert up.seen == []


async def test_valid_cookie_reaches_the_app_with_a_verifiable_assertion(
    running: tuple[Served, Upstream], deployment: Path
) -> None:
    served, _up = running
    cookie = await asyncio.to_thread(mint, deployment, "echo")
    spoof = {
        "x-lychgate-user": "admin",
        "x_lychgate_email": "admin@example.test",
        "x-forwarded-for": "6.6.6.6",
        "cookie": f"{cookie}; theme=dark",
    }
    async with httpx.AsyncClient(base_url=served.url) as c:
        r = await c.get("/hello", headers=spoof)
        assert r.status_code == 200, r.text
        seen = {k.lower(): v for k, v in r.json()["headers"]}
        jwks = (await c.get("/.lychgate/jwks.json")).json()
    assert seen["x-lychgate-email"] == "ada@example.test"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert "x_lychgate_email" not in seen
    assert seen["cookie"] == "theme=dark"
    claims = verify_assertion(
        PublicKeyring.from_jwks(jwks),
        seen["x-lychgate-assertion"],
        now=datetime.now(UTC),
        issuer=f"http://127.0.0.1:{served.port}",
        audience=AppSlug("echo"),
    )
    assert claims.email == "ada@example.test"
    assert not claims.adm


BAD_COOKIES = ["lychgate=", "lychgate=garbage", "lychgate=a.b.c", "lychgate=" + "A" * 9000]


async def test_bad_cookies_never_reach_the_app(running: tuple[Served, Upstream]) -> None:
    """Each is a failed token check (the long one is well under the 16 KiB head limit), so a
    navigation with it is sent to sign in, as one without a cookie is."""
    served, up = running
    async with httpx.AsyncClient(base_url=served.url) as c:
        for cookie in BAD_COOKIES:
            r = await c.get("/", headers={"cookie": cookie, **NAV})
            assert r.status_code == 302, cookie[:20]
            assert urlsplit(r.headers["location"]).path == "/.lychgate/login", cookie[:20]
    assert up.seen == []


async def test_websocket_tunnel_closes_when_the_session_is_revoked(
    running: tuple[Served, Upstream], deployment: Path
) -> None:
    served, _ = running
    cookie = await asyncio.to_thread(mint, deployment, "chat")
    ws_url = f"ws://127.0.0.1:{served.port}/socket"
    async with ws_connect(ws_url, additional_headers={"cookie": cookie}) as ws:
        await ws.send("ping")
        assert await ws.recv() == "ping"
        async with httpx.AsyncClient(base_url=served.url) as c:
            out = await c.get("/.lychgate/logout", headers={"cookie": cookie})
            assert out.status_code in (200, 302, 303)
        # How soon: python -m bench.revocation. Here only that it happens (10 s: a hang guard).
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(HANG_S):
                await ws.recv()
    async with httpx.AsyncClient(base_url=served.url) as c:
        again = await c.get("/", headers={"cookie": cookie, "accept": "application/json"})
        assert again.status_code == 401
    # The revocation travelled as the revoked set alone, not as a whole snapshot.
    assert "config feed: applied sessions update" in await asyncio.to_thread(served.log.read_text)


async def test_websocket_tunnel_closes_when_its_session_ends(
    running: tuple[Served, Upstream], deployment: Path
) -> None:
    served, _ = running
    cookie = await asyncio.to_thread(mint, deployment, "chat", ttl=4)
    ws_url = f"ws://127.0.0.1:{served.port}/socket"
    async with ws_connect(ws_url, additional_headers={"cookie": cookie}) as ws:
        await ws.send("ping")
        assert await ws.recv() == "ping"
        # Closed by the gateway at the session's end (4 s), not by anything else: how soon
        # after it is python -m bench.revocation's figure.
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(4 + HANG_S):
                await ws.recv()
    async with httpx.AsyncClient(base_url=served.url) as c:
        again = await c.get("/", headers={"cookie": cookie, "accept": "application/json"})
        assert again.status_code == 401


async def test_disabling_a_user_closes_their_websockets_and_refuses_them(
    running: tuple[Served, Upstream], deployment: Path
) -> None:
    served, _ = running
    await asyncio.to_thread(
        lychgate, "user", "add", "Cleo", "--email", "cleo@example.test", "--dir", str(deployment)
    )
    cookie = await asyncio.to_thread(mint, deployment, "chat", "cleo@example.test")
    async with httpx.AsyncClient(base_url=served.url) as c, asyncio.timeout(HANG_S):
        while True:  # a user added while running reaches the gateway within a second
            r = await c.get("/", headers={"cookie": cookie, "accept": "application/json"})
            if r.status_code != 401:
                break
            await asyncio.sleep(0.1)
    ws_url = f"ws://127.0.0.1:{served.port}/socket"
    async with ws_connect(ws_url, additional_headers={"cookie": cookie}) as ws:
        await ws.send("ping")
        assert await ws.recv() == "ping"
        out = await asyncio.to_thread(
            lychgate, "user", "disable", "cleo@example.test", "--dir", str(deployment)
        )
        assert "1 session(s) ended" in out
        with pytest.raises(ConnectionClosed):  # how soon: python -m bench.revocation
            async with asyncio.timeout(HANG_S):
                await ws.recv()
    async with httpx.AsyncClient(base_url=served.url) as c:
        again = await c.get("/", headers={"cookie": cookie, "accept": "application/json"})
        assert again.status_code == 401
    # Adding and disabling her travelled as the users that changed, not as every user again.
    assert "config feed: applied users update" in await asyncio.to_thread(served.log.read_text)


async def test_websocket_without_a_session_is_refused(running: tuple[Served, Upstream]) -> None:
    served, _ = running
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(f"ws://127.0.0.1:{served.port}/socket"):
            pass
    assert refused.value.response.status_code == 401  # not a navigation: no redirect to login


async def test_apps_added_while_running_are_served_within_seconds(
    running: tuple[Served, Upstream], deployment: Path
) -> None:
    served, up = running
    await asyncio.to_thread(
        lychgate,
        "app",
        "add",
        "--dir",
        str(deployment),
        "--slug",
        "late",
        "--name",
        "Late",
        "--upstream",
        up.url,
    )
    cookie = await asyncio.to_thread(mint, deployment, "late")
    async with httpx.AsyncClient(base_url=served.url) as c, asyncio.timeout(HANG_S):
        while True:
            r = await c.get("/late", headers={"cookie": cookie})
            if r.status_code == 200:
                break
            await asyncio.sleep(0.1)
