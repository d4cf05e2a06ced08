"""Connections per client (lychgate.gateway.http.clientcap): one address cannot take them all."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as ws_connect

from gateway.client import get
from gateway.conftest import Answers, Connect, Start, forward_to, upgrade_to
from gateway.upstreams import http_upstream
from gateway.waiting import PATIENCE
from lychgate.config import Settings, load_settings
from lychgate.errors import ConfigError
from lychgate.gateway.http.clientcap import (
    UNCOUNTED,
    ClientCap,
    client_key,
    is_loopback,
    refusal,
)
from lychgate.gateway.http.context import ResponseHook
from lychgate.gateway.http.limits import Limits
from lychgate.gateway.http.server import GatewayServer
from lychgate.gateway.metrics import GatewayMetrics
from lychgate.gateway.plan import GatewayPlan, engine_limits
from lychgate.gateway.runner import start_side_listeners, uncapped
from lychgate.gateway.snapshot import SnapshotHolder
from lychgate.secret import Secret


def assert_refused(data: bytes) -> str:
    """The 503 a client over the cap gets: the page, with a Date and a request id of its own
    (returned: the one its record must have)."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[1].startswith(b"Date: ")
    assert lines[1].endswith(b" GMT")
    assert lines[2].startswith(b"x-request-id: ")
    rid = lines[2].removeprefix(b"x-request-id: ").decode()
    assert len(rid) >= 16
    assert data == refusal(lines[1].removeprefix(b"Date: "), rid)
    assert (lines[0], body) == (b"HTTP/1.1 503 Service Unavailable", b"too many connections\n")
    return rid


@pytest.mark.parametrize(
    ("ip", "key"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::7", "2001:db8:1:2::/64"),  # the same host's /64: one client
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:203.0.113.9", "203.0.113.9"),  # dual-stack listener: the IPv4 client
        ("fe80::1%eth0", "fe80::/64"),
        ("not an address:", "not an address:"),
    ],
)
def test_what_counts_as_one_client(ip: str, key: str) -> None:
    assert client_key(ip) == key


def test_loopback() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("127.9.9.9")
    assert is_loopback("::1")
    assert is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("10.0.0.1")
    assert not is_loopback("::2")


def test_a_client_over_the_cap_is_refused_until_one_closes() -> None:
    cap = ClientCap(2, exempt=lambda ip: False)
    first, second = cap.take("203.0.113.9"), cap.take("203.0.113.9")
    assert first == second == "203.0.113.9"
    assert cap.take("203.0.113.9") is None
    assert cap.take("198.51.100.1") == "198.51.100.1"  # others are not affected
    assert cap.refused == 1
    cap.give_back("203.0.113.9")
    assert cap.held("203.0.113.9") == 1
    assert cap.take("203.0.113.9") == "203.0.113.9"
    # An IPv6 host cannot get round it with a fresh address per connection.
    v6 = ClientCap(1, exempt=lambda ip: False)
    assert v6.take("2001:db8::1") == "2001:db8::/64"
    assert v6.take("2001:db8::2") is None


def test_exempt_clients_are_never_counted() -> None:
    cap = ClientCap(1)  # loopback is exempt by default
    for _ in range(5):
        assert cap.take("127.0.0.1") == UNCOUNTED
    assert cap.held("127.0.0.1") == 0
    cap.give_back(UNCOUNTED)  # a no-op, not a negative count
    assert cap.take("") == UNCOUNTED  # no peer address (a unix socket)


def test_refusals_are_logged_once_per_client_per_window(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    cap = ClientCap(1, exempt=lambda ip: False, clock=lambda: now[0])
    cap.take("203.0.113.9")
    with caplog.at_level(logging.WARNING, logger="lychgate.gateway.http.clientcap"):
        for _ in range(100):
            cap.take("203.0.113.9")
        now[0] = 60.0
        cap.take("203.0.113.9")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "203.0.113.9 holds 1" in lines[0]
    assert "99 more" in lines[1]


def test_limits_take_zero_as_no_cap_and_refuse_a_negative_one() -> None:
    assert Limits(max_connections_per_client=0).max_connections_per_client == 0
    with pytest.raises(ConfigError):
        Limits(max_connections_per_client=-1)


# -- over real sockets --------------------------------------------------------------------------


def _counted(ip: str) -> bool:
    return False  # count loopback too, as a public client would be


@pytest.mark.loopback
async def test_the_connection_over_the_cap_gets_503_and_a_close(
    gateway: Start, connect: Connect
) -> None:
    answers = Answers()
    async with http_upstream() as up:
        gw = await gateway(
            forward_to(up.url),
            limits=Limits(max_connections_per_client=2),
            uncapped=_counted,
            on_response=answers,
        )
        first, second = await connect(gw.port), await connect(gw.port)
        for client in (first, second):
            await client.send(get())
            assert (await client.read_response()).status == 200
        third = await connect(gw.port)
        rid = assert_refused(await third.read_until_closed())
        # Logged and counted like any answer: it was in neither. The id the record has is
        # the one the client was given (it was one the client never saw).
        assert answers.seen[-1] == (503, "too many connections from this client")
        assert answers.rids[-1] == rid
        await first.close()
        # Once the gateway has seen the close, the client may connect again.
        assert await _served(connect, gw.port) == 200
        await second.send(get())
        assert (await second.read_response()).status == 200


async def _served(connect: Connect, port: int) -> int:
    """The status a new connection's GET gets, once one is let in."""
    async with asyncio.timeout(PATIENCE):
        while True:
            client = await connect(port)
            await client.send(get())
            try:
                status = (await client.read_response()).status
            except (asyncio.IncompleteReadError, ConnectionError):
                status = 503  # cut before its answer: refused too
            if status != 503:
                return status
            await asyncio.sleep(0.02)


@pytest.mark.loopback
async def test_a_websocket_stops_counting_once_it_is_a_tunnel(
    gateway: Start, connect: Connect, ws_upstream: str
) -> None:
    gw = await gateway(
        upgrade_to(ws_upstream), limits=Limits(max_connections_per_client=1), uncapped=_counted
    )
    async with ws_connect(f"ws://127.0.0.1:{gw.port}/ws") as ws:
        await ws.send("hi")
        assert await ws.recv() == "hi"
        # The one slot is free again: a plain request is let in (the socket server answers it).
        assert await _served(connect, gw.port) != 503


def test_the_gateway_does_not_cap_its_trusted_proxies_nor_loopback(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, {"LYCHGATE_TRUSTED_PROXIES": "10.0.0.0/8"})
    exempt = uncapped(settings)
    assert exempt("10.1.2.3")  # a load balancer carries many clients
    assert exempt("127.0.0.1")
    assert not exempt("203.0.113.9")
    assert not uncapped(load_settings(tmp_path, {}))("10.1.2.3")
    assert engine_limits(settings).max_connections_per_client == 1024


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(tmp_path, {})  # outside the event loop: it reads the file system


def _side_plan(settings: Settings, system_ssl: ssl.SSLContext) -> GatewayPlan:
    """A plan with both side listeners on free ports, one connection per client."""
    return GatewayPlan(
        settings=settings,
        internal_token=Secret("not used here"),
        host="127.0.0.1",
        port=0,
        limits=Limits(max_connections_per_client=1),
        tls=None,
        renew_tls=None,
        upstream_ssl=system_ssl,
        metrics=("127.0.0.1", 0),
        redirect=("127.0.0.1", 0),
    )


async def start_sides(
    settings: Settings,
    system_ssl: ssl.SSLContext,
    exempt: Callable[[str], bool] = _counted,
    on_redirect: ResponseHook | None = None,
) -> list[GatewayServer]:
    """Worker 0's metrics and redirect listeners on :func:`_side_plan`, no ``SO_REUSEPORT``."""
    return await start_side_listeners(
        _side_plan(settings, system_ssl),
        GatewayMetrics(worker=0),
        SnapshotHolder(),
        0,
        False,
        exempt,
        on_redirect=on_redirect,
    )


@pytest.mark.loopback
async def test_the_redirect_listeners_answers_are_recorded_and_scrapes_are_not(
    settings: Settings, connect: Connect, system_ssl: ssl.SSLContext
) -> None:
    # The access log's "one per response" held for the main listener only.
    answers = Answers()
    metrics, redirect = await start_sides(settings, system_ssl, on_redirect=answers)
    try:
        for listener in (metrics, redirect):
            client = await connect(listener.port)
            await client.send(get("/metrics"))
            await client.read_response()
        assert [status for status, _ in answers.seen] == [404]  # no snapshot: nowhere to send
    finally:
        for listener in (metrics, redirect):
            await listener.close(drain_timeout=0.1)


@pytest.mark.loopback
async def test_the_side_listeners_take_the_main_listeners_limits(
    settings: Settings,
    connect: Connect,
    system_ssl: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="lychgate.gateway.runner")
    side = await start_sides(settings, system_ssl)
    try:
        assert len(side) == 2
        metrics, redirect = side  # each named in the log, with the port it took
        assert f"gateway worker 0: metrics on 127.0.0.1:{metrics.port}" in caplog.text
        assert f"gateway worker 0: http redirect on 127.0.0.1:{redirect.port}" in caplog.text
        for listener in side:
            first = await connect(listener.port)
            await first.send(get("/metrics"))
            assert (await first.read_response()).status != 503
            second = await connect(listener.port)
            assert_refused(await second.read_until_closed())
    finally:
        for listener in side:
            await listener.close(drain_timeout=0.1)
