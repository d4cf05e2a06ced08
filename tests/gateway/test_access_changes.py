"""Open WebSockets and streaming responses follow each config change (lychgate.gateway.
access_changes): a session that ends closes its event streams as well as its sockets, and an app
that no longer admits a user (removed, admins only, no WebSockets) closes what it opened."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest

from fixtures.keys import KEY_NOW
from gateway.client import RawClient
from gateway.conftest import Connect, Start
from gateway.upstreams import SWITCHED, raw_upstream, read_head
from gateway.waiting import eventually
from gateway.world import APPS, NOW, USERS, Clock, NoAuthz, World, make_app
from lychgate.domain import AppPolicy
from lychgate.gateway.access_changes import admission_refusal, follow_changes
from lychgate.gateway.admit_handler import GatewayHandler, GatewayOptions
from lychgate.gateway.endpoints import Endpoints
from lychgate.gateway.forwarding import Identity
from lychgate.gateway.http import GatewayServer
from lychgate.gateway.snapshot import ConfigSnapshot, SnapshotHolder
from lychgate.gateway.types import Upstream
from lychgate.ids import AppSlug, SessionId, UserId
from lychgate.tokens import Keyring, generate_signing_key

WORLD = World()


def identity(
    app: str = "wiki", *, sid: str = "sess-1", user: str = "user-1", admin: bool = False
) -> Identity:
    return Identity(
        session_id=SessionId(sid),
        user_id=UserId(user),
        app=AppSlug(app),
        admin=admin,
        profile=USERS[UserId("user-1")],
        expires_at=NOW + timedelta(hours=1),
    )


def with_app(slug: str, **changes: object) -> ConfigSnapshot:
    apps = tuple(replace(a, **changes) if a.slug == slug else a for a in APPS)  # type: ignore[arg-type]
    return WORLD.changed(apps=apps)


# -- the rule, without sockets ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("snapshot", "app", "who", "tunnel", "why"),
    [
        (WORLD.snapshot, "wiki", identity(), False, None),
        (WORLD.snapshot, "admin", identity("admin", admin=True), True, None),
        (
            WORLD.changed(revoked_sessions=frozenset({SessionId("sess-1")})),
            "wiki",
            identity(),
            False,
            "session ended",
        ),
        (WORLD.changed(apps=APPS[1:]), "wiki", identity(), False, "app removed or disabled"),
        (with_app("wiki", enabled=False), "wiki", identity(), True, "app removed or disabled"),
        (
            with_app("wiki", policy=AppPolicy.ADMINS),
            "wiki",
            identity(),
            False,
            "app now admits admins only",
        ),
        (with_app("wiki", policy=AppPolicy.ADMINS), "wiki", identity(admin=True), False, None),
        (
            with_app("admin", websockets=False),
            "admin",
            identity("admin", admin=True),
            True,
            "app no longer allows WebSockets",
        ),
        (with_app("admin", websockets=False), "admin", identity("admin", admin=True), False, None),
        (WORLD.changed(users={}), "wiki", identity(), False, "user disabled or removed"),
        (WORLD.changed(apps=()), None, identity(), False, None),  # the control plane's
    ],
)
def test_what_a_new_snapshot_no_longer_admits(
    snapshot: ConfigSnapshot, app: str | None, who: Identity, tunnel: bool, why: str | None
) -> None:
    refuse = admission_refusal(snapshot)
    assert refuse(None if app is None else AppSlug(app), who, tunnel) == why


# -- through the engine ------------------------------------------------------------------------

SOCKET_HANDSHAKE = "/socket"
HANDSHAKE = (
    "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)


@dataclass
class Live:
    server: GatewayServer
    holder: SnapshotHolder
    world: World
    heads: list[bytes]

    @property
    def up_heads(self) -> int:
        """Requests that reached the app."""
        return len(self.heads)


@contextlib.asynccontextmanager
async def live(gateway: Start) -> AsyncIterator[Live]:
    """A single-host gateway whose ``wiki`` streams events for ever and whose ``admin`` app
    answers a WebSocket handshake with a 101 and then echoes, with follow_changes listening."""

    heads: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        heads.append(head)
        while head.startswith(b"GET /plain "):  # an ordinary response, and keep-alive
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            head = await read_head(reader)
        if head.startswith(b"GET /slow-socket "):
            await reader.read()  # never answers; returns when the gateway lets go
            return
        if b"upgrade: websocket" in head.lower():
            writer.write(SWITCHED)
            while data := await reader.read(65536):
                writer.write(data)
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        while not writer.is_closing():
            writer.write(b"8\r\ndata: x\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.02)

    async with raw_upstream(serve) as up:
        apps = (
            make_app("wiki", upstream=up.url),
            make_app("admin", upstream=up.url, policy=AppPolicy.ADMINS, websockets=True),
        )
        world = World("single-host", apps=apps)
        holder = SnapshotHolder()
        holder.replace(world.snapshot)
        handler = GatewayHandler(
            holder,
            GatewayOptions(Upstream("http://127.0.0.1:9")),
            Endpoints(holder, NoAuthz()),
            clock=Clock(),
        )
        server = await gateway(handler)
        holder.add_listener(follow_changes(server))
        yield Live(server, holder, world, heads)


async def open_stream(connect: Connect, d: Live, sid: str) -> asyncio.StreamReader:
    c = await connect(d.server.port)
    token = d.world.token(sid=sid)
    await c.send(
        f"GET /events HTTP/1.1\r\nHost: localhost:8080\r\nCookie: lychgate={token}\r\n\r\n".encode()
    )
    await c.reader.readuntil(b"data: x\n")
    return c.reader


async def still_flowing(stream: asyncio.StreamReader) -> bool:
    async with asyncio.timeout(10):
        return b"data: x" in await stream.readuntil(b"data: x\n")


async def cut(stream: asyncio.StreamReader) -> bool:
    try:
        async with asyncio.timeout(10):
            while await stream.read(65536):
                pass
    except ConnectionError:
        pass
    return True


@pytest.mark.loopback
async def test_a_session_that_ends_closes_its_event_streams_and_no_others(
    gateway: Start, connect: Connect
) -> None:
    async with live(gateway) as d:
        mine = await open_stream(connect, d, "sess-1")
        other = await open_stream(connect, d, "sess-2")
        snapshot = d.holder.current
        assert snapshot is not None
        ended = snapshot.revoked_sessions | {SessionId("sess-1")}
        d.holder.replace(snapshot.with_sessions(serial=2, issued_at=NOW, revoked_sessions=ended))
        assert await cut(mine)
        assert await still_flowing(other)


@pytest.mark.loopback
async def test_an_app_that_turns_admins_only_closes_a_users_stream_and_socket(
    gateway: Start, connect: Connect
) -> None:
    async with live(gateway) as d:
        stream = await open_stream(connect, d, "sess-1")
        port = d.server.port
        admin_token = d.world.token(app="admin", sid="sess-9", sub="user-2", adm=True)
        user_token = d.world.token(app="admin", sid="sess-8", sub="user-1", adm=True)
        sockets = []
        for token in (admin_token, user_token):
            c = await connect(port)
            await c.send(
                f"GET {SOCKET_HANDSHAKE} HTTP/1.1\r\nHost: localhost:8080\r\n"
                f"Cookie: lychgate={token}\r\n{HANDSHAKE}\r\n".encode()
            )
            assert (await c.reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
            await c.send(b"echo")
            assert await c.reader.readexactly(4) == b"echo"
            sockets.append(c)
        assert d.server.open_tunnels == 2
        # wiki becomes admins-only: user-1's token says no admin, so the stream is cut.
        apps = tuple(
            replace(a, policy=AppPolicy.ADMINS) if a.slug == "wiki" else a
            for a in d.world.snapshot.apps
        )
        d.holder.replace(d.world.changed(apps=apps, serial=2))
        assert await cut(stream)
        for c in sockets:  # admin's sockets are no business of that change
            await c.send(b"more")
            assert await c.reader.readexactly(4) == b"more"
        # admin stops allowing WebSockets: both of its sockets close.
        apps = tuple(replace(a, websockets=False) if a.slug == "admin" else a for a in apps)
        d.holder.replace(d.world.changed(apps=apps, serial=3))
        for c in sockets:
            assert await cut(c.reader)
        await eventually(lambda: d.server.open_tunnels == 0, what="tunnels closed")


@pytest.mark.loopback
async def test_a_handshake_the_app_is_answering_is_asked_as_a_tunnel(
    gateway: Start, connect: Connect
) -> None:
    # The app stops allowing WebSockets while a handshake waits on it: no tunnel may open.
    async with live(gateway) as d:
        c = await connect(d.server.port)
        token = d.world.token(app="admin", sid="sess-9", sub="user-2", adm=True)
        await c.send(
            f"GET /slow-socket HTTP/1.1\r\nHost: localhost:8080\r\nCookie: lychgate={token}\r\n"
            f"{HANDSHAKE}\r\n".encode()
        )
        await eventually(lambda: d.up_heads > 0, what="the handshake reached the app")
        apps = tuple(
            replace(a, websockets=False) if a.slug == "admin" else a for a in d.world.snapshot.apps
        )
        d.holder.replace(d.world.changed(apps=apps, serial=2))
        assert await cut(c.reader)
        assert d.server.open_tunnels == 0


@pytest.mark.loopback
async def test_a_dropped_signing_key_closes_what_its_tokens_opened(
    gateway: Start, connect: Connect
) -> None:
    # keys rotate --compromised: the snapshot's keyring no longer holds the key that signed
    # the cookie, so its stream is cut, as a new request with it is refused.
    async with live(gateway) as d:
        stream = await open_stream(connect, d, "sess-1")
        fresh = Keyring([generate_signing_key(KEY_NOW)], KEY_NOW)
        d.holder.replace(d.world.changed(keyring=fresh.public, serial=2))
        assert await cut(stream)


@pytest.mark.loopback
async def test_an_expired_feed_cuts_streams_as_well_as_sockets(
    gateway: Start, connect: Connect
) -> None:
    async with live(gateway) as d:
        stream = await open_stream(connect, d, "sess-1")
        # What the tunnel guard calls once the feed has expired; it counts the stream too.
        assert d.server.close_all_open() == 1
        assert await cut(stream)


@pytest.mark.loopback
async def test_a_lowered_idle_timeout_reaches_connections_already_idle(
    gateway: Start, connect: Connect
) -> None:
    # The operator lowers wiki's keep-alive wait to 1 s: a browser connection idle for longer
    # since wiki's answer is closed at once (counted from when it went idle, not from the
    # change), and one idle after another app's answer keeps the listener's wait.
    async with live(gateway) as d:
        clients: dict[str, tuple[RawClient, bytes]] = {}
        for app, token in (
            ("wiki", d.world.token(sid="sess-1")),
            ("admin", d.world.token(app="admin", sid="sess-9", sub="user-2", adm=True)),
        ):
            c = await connect(d.server.port)
            plain = plain_get(token)
            await c.send(plain)
            assert (await c.read_response()).status == 200
            clients[app] = (c, plain)
        await asyncio.sleep(1.1)
        d.holder.replace(with_idle(d.world, "wiki", 1.0))
        loop = asyncio.get_running_loop()
        changed = loop.time()
        wiki, _ = clients["wiki"]
        assert await wiki.read_until_closed() == b""
        assert loop.time() - changed < 0.9  # not another second from the change
        admin, again = clients["admin"]
        await admin.send(again)
        assert (await admin.read_response()).status == 200


@pytest.mark.loopback
async def test_a_lowered_idle_timeout_reaches_a_connection_just_gone_idle(
    gateway: Start, connect: Connect
) -> None:
    # The same, for a connection whose wait began an instant ago, before it let go of its
    # parser (.turns.SHED_AFTER): the wait's end moves, under the listener's 60 s.
    async with live(gateway) as d:
        c = await connect(d.server.port)
        await c.send(plain_get(d.world.token(sid="sess-1")))
        assert (await c.read_response()).status == 200
        d.holder.replace(with_idle(d.world, "wiki", 0.1))
        assert await c.read_until_closed() == b""


def plain_get(token: str) -> bytes:
    """An ordinary request for the app the token names, on the single host."""
    return (
        f"GET /plain HTTP/1.1\r\nHost: localhost:8080\r\nCookie: lychgate={token}\r\n\r\n".encode()
    )


def with_idle(world: World, slug: str, idle: float) -> ConfigSnapshot:
    apps = tuple(
        replace(a, idle_timeout=idle) if a.slug == slug else a for a in world.snapshot.apps
    )
    return world.changed(apps=apps, serial=2)
