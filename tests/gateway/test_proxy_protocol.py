"""A listener behind a TCP load balancer reads its PROXY header first (.proxy_accept).

Real sockets on loopback: the test client plays the balancer (its peer address, 127.0.0.1, is
the trusted one) and writes the header the way HAProxy does, then the client's bytes. The
client the header names is the request's client everywhere: the head the handler gets, the
per-client connection cap, the access records. ``tests/e2e/test_proxy_protocol_haproxy.py``
puts a real HAProxy in front of a real ``lychgate serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import struct
import time
from pathlib import Path

import pytest

from gateway.client import get
from gateway.conftest import Answers, Connect, Start
from gateway.test_clientcap import start_sides
from gateway.test_tls_clientcap import Seen
from gateway.test_tunnel_half_close import NAME, client_ctx, listener_ctx
from gateway.waiting import eventually
from lychgate.config import Settings
from lychgate.gateway.http import Limits
from lychgate.gateway.http.proxy_header import V2_SIGNATURE
from lychgate.gateway.runner import proxy_senders

pytestmark = pytest.mark.loopback

__all__ = ["client_ctx", "listener_ctx"]  # fixtures used by name
CLIENT = "203.0.113.9"
V1 = f"PROXY TCP4 {CLIENT} 10.0.0.5 51234 443\r\n".encode()
LOGGER = "lychgate.gateway.http.proxy_accept"


def v1(client: str) -> bytes:
    return f"PROXY TCP4 {client} 10.0.0.5 51234 443\r\n".encode()


def v2(client: str | None) -> bytes:
    """Version 2: PROXY for ``client``, or LOCAL (a balancer's health check) for None."""
    if client is None:
        return V2_SIGNATURE + b"\x20\x00\x00\x00"
    quad = bytes(int(part) for part in client.split("."))
    body = quad + bytes([10, 0, 0, 5]) + struct.pack("!HH", 51234, 443)
    return V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", len(body)) + body


def trusting_loopback(ip: str) -> bool:
    return ip == "127.0.0.1"


async def test_the_header_names_the_client_of_every_request_on_the_connection(
    gateway: Start, connect: Connect
) -> None:
    seen, answers = Seen(), Answers()
    gw = await gateway(seen, proxy_from=trusting_loopback, on_response=answers)
    c = await connect(gw.port)
    await c.send(V1 + get("/one") + get("/two"))  # the header and pipelined requests at once
    assert [(await c.read_response()).body for _ in range(2)] == [b"/one", b"/two"]
    # Version 2, and a header that arrives a few bytes at a time, the request after it.
    d = await connect(gw.port)
    for at in range(0, len(v2("198.51.100.7")), 5):
        await d.send(v2("198.51.100.7")[at : at + 5])
        await asyncio.sleep(0.01)
    await d.send(get("/three"))
    assert (await d.read_response()).body == b"/three"
    assert [head.client_ip for head in seen.heads] == [CLIENT, CLIENT, "198.51.100.7"]
    await eventually(lambda: len(answers.seen) == 3, what="three records")


async def test_a_header_that_names_no_client_leaves_the_balancers_address(
    gateway: Start, connect: Connect
) -> None:
    seen = Seen()
    gw = await gateway(seen, proxy_from=trusting_loopback)
    for header in (v2(None), b"PROXY UNKNOWN\r\n"):  # a health check's, either version
        c = await connect(gw.port)
        await c.send(header + get("/.lychgate/healthz"))
        assert (await c.read_response()).status == 200
    assert [head.client_ip for head in seen.heads] == ["127.0.0.1", "127.0.0.1"]


@pytest.mark.parametrize(
    ("trusts", "sent", "why", "reason"),
    [
        (lambda ip: False, V1 + get("/"), "not one of trusted_proxies", "untrusted_peer"),
        (trusting_loopback, get("/"), "no PROXY header", "malformed"),  # went round it
        (
            trusting_loopback,
            b"PROXY TCP4 203.0.113.009 10.0.0.5 1 2\r\n" + get("/"),
            "address",
            "malformed",
        ),
        (trusting_loopback, b"\x16\x03\x01\x00\x05hello", "no PROXY header", "malformed"),
    ],
)
async def test_a_connection_without_a_good_header_from_a_trusted_peer_is_cut(
    gateway: Start,
    connect: Connect,
    caplog: pytest.LogCaptureFixture,
    trusts: object,
    sent: bytes,
    why: str,
    reason: str,
) -> None:
    seen = Seen()
    gw = await gateway(seen, proxy_from=trusts)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        c = await connect(gw.port)
        with contextlib.suppress(ConnectionError):  # cut before the write: as good
            await c.send(sent)
        assert await c.read_until_closed() == b""  # no answer: HTTP never began
    assert seen.heads == []
    assert "proxy_protocol: cut a connection from 127.0.0.1: " in caplog.text
    assert why in caplog.text
    assert gw.proxy_refusals == {reason: 1}  # for the metrics


async def test_the_header_is_due_within_header_timeout_which_the_first_head_shares(
    gateway: Start, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    seen = Seen()
    limits = Limits(header_timeout=1.5)
    gw = await gateway(seen, proxy_from=trusting_loopback, limits=limits)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        late = await connect(gw.port)
        await late.send(V1[:10])  # never finished
        assert await late.read_until_closed() == b""
    assert "no complete header within header_timeout" in caplog.text
    assert gw.proxy_refusals == {"late": 1}
    # A header sent late leaves the first head only what is left of the bound: the
    # connection is cut 1.5 s after the accept, not 1.5 s after the header.
    started = time.monotonic()
    slow = await connect(gw.port)
    await asyncio.sleep(1.0)
    await slow.send(V1 + b"GET / HT")
    assert b" 408 " in (await slow.read_until_closed())[:20]
    assert time.monotonic() - started < 2.3
    assert seen.heads == []


async def test_the_client_cap_counts_the_client_the_header_names(
    gateway: Start, connect: Connect
) -> None:
    seen = Seen()
    gw = await gateway(
        seen, proxy_from=trusting_loopback, limits=Limits(max_connections_per_client=1)
    )
    first = await connect(gw.port)
    await first.send(V1 + get("/first"))
    assert (await first.read_response()).status == 200
    again = await connect(gw.port)  # the same client, through the same balancer
    await again.send(V1 + get("/again"))
    assert (await again.read_response()).status == 503
    other = await connect(gw.port)  # another client: the balancer itself is not counted
    await other.send(v1("203.0.113.10") + get("/other"))
    assert (await other.read_response()).status == 200
    assert (gw.held_by(CLIENT), gw.held_by("203.0.113.10"), gw.held_by("127.0.0.1")) == (1, 1, 0)


async def test_over_tls_the_header_comes_before_the_handshake(
    gateway: Start, listener_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> None:
    seen = Seen()
    gw = await gateway(seen, ssl=listener_ctx, proxy_from=trusting_loopback)
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        writer.write(v2(CLIENT))  # plain, as a balancer writes it; then the client's TLS
        await writer.drain()
        await writer.start_tls(client_ctx, server_hostname=NAME)
        writer.write(get("/secure"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 200 ")
    [seen_head] = seen.heads
    assert (seen_head.client_ip, seen_head.scheme, seen_head.sni) == (CLIENT, "https", NAME)


async def test_a_listener_that_stops_cuts_the_sockets_still_owing_a_header(
    gateway: Start, connect: Connect
) -> None:
    gw = await gateway(Seen(), proxy_from=trusting_loopback)
    waiting = await connect(gw.port)
    await waiting.send(V1[:5])
    await asyncio.sleep(0.05)
    await asyncio.wait_for(gw.close(drain_timeout=5), 2)  # nothing to drain: no HTTP yet
    assert await waiting.read_until_closed(timeout=2) == b""


def test_settings_ask_for_the_balancers_networks() -> None:
    with pytest.raises(ValueError, match="proxy_protocol needs trusted_proxies"):
        Settings(data_dir=Path("/tmp/x"), proxy_protocol=True)
    on = Settings(data_dir=Path("/tmp/x"), proxy_protocol=True, trusted_proxies=["10.0.0.0/8"])
    senders = proxy_senders(on)
    assert senders is not None
    assert (senders("10.1.2.3"), senders("127.0.0.1"), senders("203.0.113.9")) == (
        True,
        False,
        False,
    )
    assert proxy_senders(Settings(data_dir=Path("/tmp/x"), trusted_proxies=["10.0.0.0/8"])) is None


async def test_the_redirect_listener_reads_the_header_and_the_metrics_listener_does_not(
    connect: Connect, system_ssl: ssl.SSLContext, tmp_path: Path
) -> None:
    # Both public listeners are behind the balancer; the scraper reaches metrics directly.
    settings = Settings(data_dir=tmp_path, proxy_protocol=True, trusted_proxies=["127.0.0.1/32"])
    answers = Answers()
    metrics, redirect = await start_sides(settings, system_ssl, lambda ip: False, answers)
    try:
        scrape = await connect(metrics.port)
        await scrape.send(get("/metrics"))
        assert (await scrape.read_response()).status == 200
        around = await connect(redirect.port)  # no header: cut
        await around.send(get("/"))
        assert await around.read_until_closed() == b""
        through = await connect(redirect.port)
        await through.send(V1 + get("/"))
        assert (await through.read_response()).status == 404  # no snapshot: nowhere to send
        assert redirect.held_by(CLIENT) == 1  # counted as the client the header named
    finally:
        for listener in (metrics, redirect):
            await listener.close(drain_timeout=0.1)
