"""Gateway engine tests run on uvloop, the loop the gateway runs on in production."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
import uvloop
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve

from gateway.client import RawClient
from gateway.fake_authz import FakeAuthz
from gateway.feed_harness import version
from gateway.upstreams import Raw, raw_upstream
from gateway.upstreams import Upstream as RawUpstream
from lychgate.gateway.feed_wire import snapshot_line
from lychgate.gateway.http import GatewayServer, Limits, start_server
from lychgate.gateway.http.tls import client_context
from lychgate.gateway.types import Decision, Forward, Handler, Principal, RequestHead, Upstream
from lychgate.ids import AppSlug, SessionId, UserId


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Mapping[str, Any]:
    return {"uvloop": uvloop.new_event_loop}


def forward_to(url: str, **upstream: Any) -> Handler:
    """A handler that forwards everything to ``url`` with the client's headers."""
    up = Upstream(url, **upstream)

    def handler(head: RequestHead) -> Decision:
        return Forward(up, head.target, head.headers, app=None)

    return handler


class Answers:
    """An ``on_response`` hook that keeps (status, reason) of every finished response, and
    its request id, and its recorded seconds by its target."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, str]] = []
        self.rids: list[str] = []
        self.seconds: dict[str, float] = {}

    def __call__(
        self,
        head: RequestHead | None,
        app: AppSlug | None,
        status: int,
        t: float,
        reason: str,
        who: Principal | None,
        rid: str,
    ) -> None:
        self.seen.append((status, reason))
        self.rids.append(rid)
        if head is not None:
            self.seconds[head.target] = t


Start = Callable[..., Awaitable[GatewayServer]]
Connect = Callable[..., Awaitable[RawClient]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """Open raw clients (closed after the test): ``await connect(port)``."""
    clients: list[RawClient] = []

    async def open_client(port: int, **kwargs: Any) -> RawClient:
        client = await RawClient.connect(port, **kwargs)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.close()


class RawRoute:
    """Connects a client to a raw upstream (gateway.upstreams.raw_upstream) through a
    gateway: ``async with raw_route(serve) as (client, upstream)``."""

    def __init__(self, gateway: Start, connect: Connect) -> None:
        self._gateway, self._connect = gateway, connect

    @contextlib.asynccontextmanager
    async def __call__(
        self, serve: Raw, **options: Any
    ) -> AsyncIterator[tuple[RawClient, RawUpstream]]:
        async with raw_upstream(serve) as up:
            gw = await self._gateway(forward_to(up.url), **options)
            yield await self._connect(gw.port), up


@pytest.fixture
def raw_route(gateway: Start, connect: Connect) -> RawRoute:
    return RawRoute(gateway, connect)


def assert_cut(data: bytes, content: bytes) -> None:
    """``data`` (all a client read until the close) holds ``content`` but no end of chunked
    content: the client can tell the response was cut."""
    assert content in data
    assert not data.endswith(b"0\r\n\r\n")


@pytest.fixture(scope="session")
def system_ssl() -> ssl.SSLContext:
    """The default upstream-verifying context, built once, outside any event loop."""
    return client_context()


@pytest.fixture
async def gateway(system_ssl: ssl.SSLContext) -> AsyncIterator[Start]:
    """Start gateways (closed after the test): ``await gateway(handler, limits=..., ...)``."""
    servers: list[GatewayServer] = []

    async def start(handler: Handler, **kwargs: Any) -> GatewayServer:
        kwargs.setdefault("limits", Limits())
        kwargs.setdefault("upstream_ssl", system_ssl)
        server = await start_server(handler, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close(drain_timeout=1.0)


SID = SessionId("sess-1")


@dataclass(frozen=True)
class SignedIn:
    """A :class:`Principal`: the user and session a test's forward was admitted for."""

    user_id: UserId
    session_id: SessionId


def upgrade_to(url: str, *, allow: bool = True, app: AppSlug | None = None) -> Handler:
    who = SignedIn(UserId("user-1"), SID)

    def handler(head: RequestHead) -> Decision:
        return Forward(
            Upstream(url), head.target, head.headers, app=app, allow_upgrade=allow, who=who
        )

    return handler


async def _ws_echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


@pytest.fixture
async def ws_upstream() -> AsyncIterator[str]:
    """A WebSocket echo server (websockets): its http:// URL."""
    async with ws_serve(_ws_echo, "127.0.0.1", 0, max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
async def feed_authz(tmp_path: Path) -> AsyncIterator[tuple[FakeAuthz, str]]:
    """A FakeAuthz on a unix socket greeting each feed with snapshot 1; (server, base URL)."""
    server = FakeAuthz(greeting=[snapshot_line(version(1))])
    base = await server.start_unix(tmp_path / "authz.sock")
    yield server, base
    await server.stop()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A test certificate authority, one per test module: its certificates for the listeners,
    its trust for the clients."""
    return trustme.CA()
