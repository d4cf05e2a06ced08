"""TLS on both sides (lychgate.gateway.http.tls), with trustme certificates."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import httpx
import pytest
import trustme

from gateway.client import get, page_body, peer_names
from gateway.conftest import Answers, Connect, Start, assert_cut, forward_to
from gateway.upstreams import Reply, Seen, http_upstream
from gateway.world import APPS, AUTHZ, Clock, NoAuthz, World, make_app
from lychgate.gateway.admit_handler import GatewayHandler, GatewayOptions
from lychgate.gateway.endpoints import Endpoints
from lychgate.gateway.http import Limits
from lychgate.gateway.http.tls import CertPair, client_context, server_context
from lychgate.gateway.snapshot import SnapshotHolder
from lychgate.gateway.types import Decision, Forward, RequestHead, Upstream

pytestmark = pytest.mark.loopback


def _pair(ca: trustme.CA, tmp_path: Path, *names: str) -> CertPair:
    cert = ca.issue_cert(*names)
    stem = names[0].replace("*", "star")
    cert_file, key_file = tmp_path / f"{stem}.crt", tmp_path / f"{stem}.key"
    cert.private_key_pem.write_to_path(str(key_file))
    with cert_file.open("wb") as f:
        for pem in cert.cert_chain_pems:
            f.write(pem.bytes())
    return CertPair(cert_file, key_file)


def _trusting(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.fixture
def listener_ctx(ca: trustme.CA, tmp_path: Path) -> ssl.SSLContext:
    return server_context(
        _pair(ca, tmp_path, "default.example"),
        {
            "app.example": _pair(ca, tmp_path, "app.example"),
            "*.apps.example": _pair(ca, tmp_path, "*.apps.example"),
        },
    )


async def test_https_listener_forwards_and_reports_sni(
    gateway: Start, ca: trustme.CA, listener_ctx: ssl.SSLContext
) -> None:
    seen: list[RequestHead] = []
    async with http_upstream() as up:

        def handler(head: RequestHead) -> Decision:
            seen.append(head)
            return Forward(Upstream(up.url), head.target, head.headers, app=None)

        gw = await gateway(handler, ssl=listener_ctx)
        async with httpx.AsyncClient(verify=_trusting(ca)) as client:
            r = await _get_via_ip(client, gw.port, "App.Example")
        assert r.status_code == 200
        assert r.text == "GET /x 0"
        assert (seen[0].scheme, seen[0].sni) == ("https", "app.example")


async def _get_via_ip(client: httpx.AsyncClient, port: int, name: str) -> httpx.Response:
    # Connect to 127.0.0.1 while presenting ``name`` as SNI and Host.
    return await client.get(
        f"https://127.0.0.1:{port}/x",
        headers={"host": name},
        extensions={"sni_hostname": name},
    )


@pytest.mark.parametrize(
    ("server_name", "expected"),
    [
        ("app.example", "app.example"),
        ("APP.example.", "app.example"),
        ("wiki.apps.example", "*.apps.example"),
        ("unknown.example", "default.example"),
    ],
)
async def test_sni_chooses_the_certificate(
    gateway: Start,
    ca: trustme.CA,
    listener_ctx: ssl.SSLContext,
    server_name: str,
    expected: str,
) -> None:
    gw = await gateway(forward_to("http://127.0.0.1:9"), ssl=listener_ctx)
    assert await peer_names(gw.port, ca, server_name) == [expected]


@pytest.fixture
async def https_upstream(ca: trustme.CA) -> object:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)

    async def app(seen: Seen, reply: Reply) -> None:
        await reply.send(200, b"secure")

    async with http_upstream(app, ssl=ctx) as up:
        yield up


async def test_https_upstream_verified_against_the_ca(
    gateway: Start, ca: trustme.CA, https_upstream: object
) -> None:
    url = https_upstream.url  # type: ignore[attr-defined]
    gw = await gateway(forward_to(url), upstream_ssl=_trusting(ca))
    async with httpx.AsyncClient() as client:
        for _ in range(2):
            r = await client.get(f"http://127.0.0.1:{gw.port}/")
            assert (r.status_code, r.content) == (200, b"secure")
    assert https_upstream.connections == 1  # type: ignore[attr-defined]


async def test_untrusted_https_upstream_is_refused(
    gateway: Start, https_upstream: object, system_ssl: ssl.SSLContext
) -> None:
    url = https_upstream.url  # type: ignore[attr-defined]
    answers = Answers()
    gw = await gateway(forward_to(url), upstream_ssl=system_ssl, on_response=answers)
    async with httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{gw.port}/")
    assert r.status_code == 502
    assert r.content == page_body(
        502, r.headers.get("x-request-id")
    )  # the why is for the operator only:
    [(_, reason)] = answers.seen
    assert reason.startswith("upstream connect failed: TLS certificate not trusted: ")


async def test_wrong_name_on_upstream_certificate_is_refused(
    gateway: Start, ca: trustme.CA
) -> None:
    # A certificate from the trusted CA, for another name than the one the URL reaches.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("other.example").configure_cert(ctx)
    async with http_upstream(ssl=ctx) as up:
        answers = Answers()
        gw = await gateway(forward_to(up.url), upstream_ssl=_trusting(ca), on_response=answers)
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{gw.port}/")
        assert r.status_code == 502
    [(_, reason)] = answers.seen  # reached, and refused by the handshake:
    assert reason == (
        "upstream connect failed: TLS certificate not trusted: "
        "IP address mismatch, certificate is not valid for '127.0.0.1'."
    )


async def test_verify_tls_opt_out(
    gateway: Start, https_upstream: object, system_ssl: ssl.SSLContext
) -> None:
    url = https_upstream.url  # type: ignore[attr-defined]
    gw = await gateway(forward_to(url, verify_tls=False), upstream_ssl=system_ssl)
    async with httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{gw.port}/")
    assert (r.status_code, r.content) == (200, b"secure")


def test_client_context_verifies_by_default() -> None:
    ctx = client_context()
    assert ctx.verify_mode is ssl.CERT_REQUIRED
    assert ctx.check_hostname


@pytest.mark.parametrize("close_notify", [True, False], ids=["close_notify", "truncated"])
async def test_a_tls_body_to_the_close_ends_only_at_close_notify(
    gateway: Start, connect: Connect, ca: trustme.CA, close_notify: bool
) -> None:
    # RFC 9112 section 9.8: content delimited by the close is complete only with a TLS
    # close_notify. A bare TCP FIN can be sent by anyone on the path, to truncate it.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody to the close")
        await writer.drain()
        await asyncio.sleep(0.05)
        if close_notify:
            writer.close()  # TLS shutdown: close_notify, then FIN
        else:
            writer.transport.abort()  # FIN alone

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    try:
        port = server.sockets[0].getsockname()[1]
        gw = await gateway(forward_to(f"https://127.0.0.1:{port}"), upstream_ssl=_trusting(ca))
        c = await connect(gw.port)
        await c.send(get())
        if close_notify:
            r = await c.read_response()
            assert (r.status, r.body) == (200, b"body to the close")
        else:
            assert_cut(await c.read_until_closed(), b"body to the close")
    finally:
        server.close()


@pytest.mark.parametrize("sent", [b"", b"\x16\x03\x01\x00"], ids=["nothing", "half a hello"])
async def test_a_stalled_tls_handshake_is_cut_at_the_header_timeout(
    gateway: Start, listener_ctx: ssl.SSLContext, sent: bytes
) -> None:
    # Slowloris before any HTTP: without its own bound, a handshake that never finishes held
    # its socket for the event loop's default of a minute.
    gw = await gateway(
        forward_to("http://127.0.0.1:9"), ssl=listener_ctx, limits=Limits(header_timeout=0.3)
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        writer.write(sent)
        await writer.drain()
        async with asyncio.timeout(10):  # cut at the header timeout, not the loop's minute
            while await reader.read(1024):
                pass  # the server may say something before it closes
    finally:
        writer.close()


@pytest.fixture
def two_hosts(ca: trustme.CA, tmp_path: Path) -> ssl.SSLContext:
    return server_context(
        _pair(ca, tmp_path, "wiki.example.com"),
        {"metrics.corp.example": _pair(ca, tmp_path, "metrics.corp.example")},
    )


@pytest.mark.parametrize(
    ("sni", "status"), [("wiki.example.com", 200), ("metrics.corp.example", 421)]
)
async def test_a_host_that_disagrees_with_sni_is_421_over_tls(
    gateway: Start,
    connect: Connect,
    ca: trustme.CA,
    two_hosts: ssl.SSLContext,
    sni: str,
    status: int,
) -> None:
    # SECURITY.md item 4 through a real TLS listener and the real handler: a connection
    # made for one host (its certificate chosen by SNI) carries no request for another.
    async with http_upstream() as up:
        world = World("subdomains", apps=(make_app("wiki", upstream=up.url), *APPS[1:]))
        holder = SnapshotHolder()
        holder.replace(world.snapshot)
        handler = GatewayHandler(
            holder, GatewayOptions(AUTHZ), Endpoints(holder, NoAuthz()), clock=Clock()
        )
        gw = await gateway(handler, ssl=two_hosts)
        c = await connect(gw.port, ssl_context=_trusting(ca), server_hostname=sni)
        cookie = f"{world.cookie_name}={world.token()}"
        await c.send(get("/", host="wiki.example.com", extra=f"Cookie: {cookie}\r\n"))
        assert (await c.read_response()).status == status
        assert len(up.seen) == (1 if status == 200 else 0)
