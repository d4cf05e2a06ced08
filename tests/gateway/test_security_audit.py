"""SECURITY.md items 3 and 8 through the whole gateway: raw bytes in, what the upstream gets.

These complete the unit tests of :mod:`lychgate.gateway.forwarding` and the engine tests in
``test_connection.py`` and ``test_proxy.py``: the real :class:`GatewayHandler` decides, the
real engine carries the decision out, and h11 upstreams (an independent parser) record what
reached them. Each gap found by the SECURITY.md audit is one test here, including two bugs it
found and that are fixed: a client's ``Connection`` header naming the fields the gateway adds,
and ``Transfer-Encoding`` on HTTP/1.0.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from gateway import upstreams
from gateway.conftest import Connect, Start, forward_to
from gateway.upstreams import Reply, Seen, http_upstream, raw_upstream, read_head
from gateway.world import APPS, NOW, Clock, NoAuthz, World, make_app
from lychgate.gateway.admit_handler import GatewayHandler, GatewayOptions
from lychgate.gateway.endpoints import Endpoints
from lychgate.gateway.snapshot import SnapshotHolder
from lychgate.gateway.types import Upstream
from lychgate.ids import AppSlug
from lychgate.tokens import verify_assertion

pytestmark = pytest.mark.loopback

HOST = "localhost:8080"  # the World's single-host public host


async def ok(seen: Seen, reply: Reply) -> None:
    await reply.send(200, b"ok")


@dataclass
class Deployment:
    """A single-host gateway whose app ``wiki`` and authz are h11 upstreams."""

    port: int
    app: upstreams.Upstream
    authz: upstreams.Upstream
    world: World

    def cookie(self) -> bytes:
        return b"Cookie: lychgate=" + self.world.token().encode() + b"\r\n"


@contextlib.asynccontextmanager
async def deployment(gateway: Start, **options: Any) -> AsyncIterator[Deployment]:
    async with http_upstream(ok) as app, http_upstream(ok) as authz:
        world = World("single-host", apps=(make_app("wiki", upstream=app.url), *APPS[1:]))
        holder = SnapshotHolder()
        holder.replace(world.snapshot)
        handler = GatewayHandler(
            holder,
            GatewayOptions(Upstream(authz.url), **options),
            Endpoints(holder, NoAuthz()),
            clock=Clock(),
        )
        server = await gateway(handler)
        yield Deployment(server.port, app, authz, world)


def values(seen: Seen, name: str) -> list[str]:
    return [v for k, v in seen.headers if k.lower() == name]


# -- SECURITY.md item 3: identity and forwarding headers from the client ------------------------

SPOOFED = (
    b"X-Lychgate-User: admin\r\n"
    b"x-lychgate-user: root\r\n"
    b"X_LYCHGATE_USER: eve\r\n"
    b"X-Lychgate-Assertion: forged.jws.token\r\n"
    b"x-lychgate-assertion: forged.jws.token2\r\n"
    b"X-Lychgate-Email: admin@example.com\r\n"
    b"Remote-User: admin\r\n"
    b"remote_user: admin\r\n"
    b"X-Forwarded-For: 127.0.0.1\r\n"
    b"X-Forwarded-For: 10.0.0.1\r\n"
    b"x_forwarded_for: 10.0.0.2\r\n"
    b"X-Forwarded-Host: evil.example\r\n"
    b"X-Forwarded-Host: evil2.example\r\n"
    b"X-Forwarded-Proto: https\r\n"
    b"X-Forwarded-Prefix: /admin\r\n"
    b"Forwarded: for=127.0.0.1;host=evil.example\r\n"
    b"Forwarded: for=10.0.0.1\r\n"
)
CLIENT_ONLY = (
    "remote-user",
    "remote_user",
    "x_lychgate_user",
    "x_forwarded_for",
    "x-forwarded-prefix",
    "forwarded",
)


async def test_literal_duplicates_of_identity_headers_never_reach_the_app(
    gateway: Start, connect: Connect
) -> None:
    async with deployment(gateway) as d:
        c = await connect(d.port)
        await c.send(b"GET /x HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n" + SPOOFED + d.cookie())
        await c.send(b"\r\n")
        assert (await c.read_response()).status == 200
        [seen] = d.app.seen
    assert values(seen, "x-lychgate-user") == ["user-1"]
    assert values(seen, "x-lychgate-email") == ["ann@example.com"]
    assert values(seen, "x-forwarded-for") == ["127.0.0.1"]  # the TCP peer, nothing else
    assert values(seen, "x-forwarded-host") == [HOST]
    assert values(seen, "x-forwarded-proto") == ["http"]
    for name in CLIENT_ONLY:
        assert values(seen, name) == [], name
    [assertion] = values(seen, "x-lychgate-assertion")
    keyring = d.world.snapshot.assertion_keyring
    assert keyring is not None
    claims = verify_assertion(
        keyring.public,
        assertion,
        now=NOW,
        issuer=d.world.snapshot.issuer,
        audience=AppSlug("wiki"),
    )
    assert (claims.sub, claims.adm) == ("user-1", False)


async def test_literal_duplicates_never_reach_authz_either(
    gateway: Start, connect: Connect
) -> None:
    async with deployment(gateway) as d:
        c = await connect(d.port)
        await c.send(b"GET /.lychgate/login HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n")
        await c.send(SPOOFED + b"\r\n")
        assert (await c.read_response()).status == 200
        [seen] = d.authz.seen
    assert values(seen, "x-forwarded-for") == ["127.0.0.1"]
    assert values(seen, "x-forwarded-host") == [HOST]
    assert values(seen, "x-forwarded-proto") == ["http"]
    for name in (*CLIENT_ONLY, "x-lychgate-user", "x-lychgate-assertion", "x-lychgate-email"):
        assert values(seen, name) == [], name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("x-forwarded-for", "127.0.0.1"),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", HOST),
        ("x-lychgate-user", "user-1"),
        ("x-lychgate-email", "ann@example.com"),
        ("x-lychgate-assertion", None),  # present; its value is a fresh JWS
        ("host", HOST),
    ],
)
async def test_connection_cannot_remove_what_the_gateway_adds_for_an_app(
    gateway: Start, connect: Connect, name: str, expected: str | None
) -> None:
    async with deployment(gateway) as d:
        c = await connect(d.port)
        await c.send(b"GET /x HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n" + d.cookie())
        await c.send(b"Connection: keep-alive, " + name.encode() + b"\r\n\r\n")
        r = await c.read_response()
        assert r.status == 200
        [seen] = d.app.seen
    got = values(seen, name)
    assert len(got) == 1
    if expected is not None:
        assert got == [expected]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("x-forwarded-for", "127.0.0.1"), ("x-forwarded-proto", "http"), ("host", HOST)],
)
async def test_connection_cannot_remove_what_the_gateway_adds_for_authz(
    gateway: Start, connect: Connect, name: str, expected: str
) -> None:
    async with deployment(gateway) as d:
        c = await connect(d.port)
        await c.send(b"GET /.lychgate/login HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n")
        await c.send(b"Connection: " + name.encode() + b"\r\n\r\n")
        r = await c.read_response()
        assert r.status == 200
        [seen] = d.authz.seen
    assert values(seen, name) == [expected]


async def test_a_trusted_proxy_with_duplicate_proto_headers_is_refused_on_the_wire(
    gateway: Start, connect: Connect
) -> None:
    # "An unparsable value is an error, not a skip", with the proxy's peer address as the
    # engine reports it (127.0.0.1 on loopback).
    trusted = (ipaddress.ip_network("127.0.0.0/8"),)
    async with deployment(gateway, trusted_proxies=trusted) as d:
        c = await connect(d.port)
        await c.send(b"GET /x HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n" + d.cookie())
        await c.send(b"X-Forwarded-Proto: https\r\nx_forwarded_proto: http\r\n\r\n")
        assert (await c.read_response()).status == 400
        assert d.app.seen == []


@pytest.mark.parametrize(
    "field",
    [
        b'Forwarded: for="<img src=x onerror=alert(1)>";proto=javascript;host=evil.example',
        b"Forwarded: for=198.51.100.7;host=evil.example",
        b"X-Forwarded-Port: 1337",
    ],
)
async def test_a_trusted_proxy_passing_on_a_clients_forwarding_words_is_refused(
    gateway: Start, connect: Connect, field: bytes
) -> None:
    # A load balancer passes on what its client sent: an app that read the first Forwarded
    # element, or X-Forwarded-Port, built links to a host or port the client chose.
    trusted = (ipaddress.ip_network("127.0.0.0/8"),)
    async with deployment(gateway, trusted_proxies=trusted) as d:
        c = await connect(d.port)
        await c.send(b"GET /x HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n" + d.cookie())
        await c.send(field + b"\r\n\r\n")
        assert (await c.read_response()).status == 400
        assert d.app.seen == []


# -- SECURITY.md item 8: responses without content, and faulty framing --------------------------


@contextlib.asynccontextmanager
async def answering(gateway: Start, first: bytes) -> AsyncIterator[tuple[int, upstreams.Upstream]]:
    """A gateway in front of an upstream that answers ``/first`` with ``first`` and anything
    else with ``200 next``."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await read_head(reader)
            if head.startswith(b"GET /first "):
                writer.write(first)
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext")
            await writer.drain()

    async with raw_upstream(serve) as up:
        server = await gateway(forward_to(up.url))
        yield server.port, up


async def test_a_304_with_a_content_length_ends_at_its_head(
    gateway: Start, connect: Connect
) -> None:
    # RFC 9110 section 8.6: a 304 may state the representation's length; no content follows.
    first = b'HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\nETag: "v1"\r\n\r\n'
    async with answering(gateway, first) as (port, up):
        c = await connect(port)
        await c.send(
            b"GET /first HTTP/1.1\r\nHost: h\r\n\r\nGET /second HTTP/1.1\r\nHost: h\r\n\r\n"
        )
        not_modified = await c.read_response()
        assert (not_modified.status, not_modified.header("etag")) == (304, '"v1"')
        assert not_modified.header("transfer-encoding") is None
        second = await c.read_response()  # in step: nothing was read as the 304's content
        assert (second.status, second.body) == (200, b"next")
        assert up.connections == 1  # the upstream connection was not left waiting for 1234


@pytest.mark.parametrize(
    "first",
    [
        b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ],
    ids=["204_length", "204_chunked", "304_chunked"],
)
async def test_content_after_a_no_content_head_never_reaches_the_client(
    gateway: Start, connect: Connect, first: bytes
) -> None:
    async with answering(gateway, first) as (port, up):
        c = await connect(port)
        await c.send(b"GET /first HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        data = await c.read_until_closed()
        assert b"hello" not in data
        assert b"transfer-encoding" not in data.lower()
        # The misbehaving connection is not reused: a new request gets a clean answer.
        again = await connect(port)
        await again.send(b"GET /second HTTP/1.1\r\nHost: h\r\n\r\n")
        assert (await again.read_response()).body == b"next"
        assert up.connections == 2


async def test_transfer_encoding_on_http10_ends_the_connection(
    gateway: Start, connect: Connect
) -> None:
    async with deployment(gateway) as d:
        c = await connect(d.port)
        await c.send(
            b"POST /x HTTP/1.0\r\nHost: " + HOST.encode() + b"\r\n" + d.cookie() + b"Connection: "
            b"keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            b"GET /smuggled HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n" + d.cookie() + b"\r\n"
        )
        first = await c.read_response()
        # HTTP/1.0 has no chunked coding (RFC 9112 section 6.1): the framing is unknowable.
        assert first.status == 400
        assert first.header("connection") == "close"
        await c.read_until_closed()
        assert d.app.seen == []


# -- SECURITY.md item 10: WebSockets -----------------------------------------------------------


@pytest.mark.parametrize("origin", [b"Origin: https://evil.example\r\n", b""])
async def test_no_websocket_reaches_authz(gateway: Start, connect: Connect, origin: bytes) -> None:
    # authz serves no WebSocket, so a page on another site (or anyone) cannot open a socket on
    # the control plane: the gateway refuses the Upgrade itself and never forwards it.
    async with deployment(gateway) as d:
        c = await connect(d.port)
        await c.send(
            b"GET /.lychgate/login HTTP/1.1\r\nHost: "
            + HOST.encode()
            + b"\r\n"
            + origin
            + b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        r = await c.read_response()
        assert (r.status, r.header("connection")) == (403, "close")
        assert await c.read_until_closed() == b""
        assert d.authz.seen == []


async def test_a_socket_from_another_origin_never_reaches_an_app(
    gateway: Start, connect: Connect
) -> None:
    # Admission step 7 through the engine: the handshake is refused before any upstream.
    async with deployment(gateway) as d:
        token = d.world.token(app="admin", adm=True).encode()
        c = await connect(d.port)
        await c.send(
            b"GET /socket HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n"
            b"Cookie: lychgate=" + token + b"\r\nOrigin: http://evil.example\r\n"
            b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        r = await c.read_response()
        assert (r.status, r.header("connection")) == (403, "close")
        assert await c.read_until_closed() == b""
