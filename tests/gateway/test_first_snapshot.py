"""A gateway worker listens once the feed has given it a snapshot (lychgate.gateway.runner).

A worker that listened before it had one answered 503 to the clients the kernel handed it,
while the other workers on the same port could have served them: a replacement for a killed
worker turned away about one request in four hundred while it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from e2e.deployment import free_port
from gateway.fake_authz import FakeAuthz
from gateway.feed_harness import version
from lychgate.config import Settings, load_settings
from lychgate.gateway import runner
from lychgate.gateway.feed_wire import snapshot_line
from lychgate.gateway.http.limits import Limits
from lychgate.gateway.http.server import GatewayServer
from lychgate.gateway.plan import GatewayPlan
from lychgate.gateway.runner import serve_worker
from lychgate.secret import Secret

pytestmark = pytest.mark.loopback


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Outside the event loop: it reads the file system.
    return load_settings(tmp_path, {}, authz_listen=f"unix:{tmp_path / 'authz.sock'}")


def _plan(
    settings: Settings,
    server: FakeAuthz,
    port: int,
    system_ssl: ssl.SSLContext,
    metrics: tuple[str, int] | None = None,
) -> GatewayPlan:
    return GatewayPlan(
        settings=settings,
        internal_token=Secret(server.secret),
        host="127.0.0.1",
        port=port,
        limits=Limits(),
        tls=None,
        renew_tls=None,
        upstream_ssl=system_ssl,
        metrics=metrics,
        redirect=None,
    )


@contextlib.asynccontextmanager
async def _worker(
    settings: Settings, system_ssl: ssl.SSLContext, server: FakeAuthz
) -> AsyncIterator[tuple[int, list[GatewayServer]]]:
    """A worker following ``server``'s feed; (its port, [the server once it listens])."""
    await server.start_unix(Path(settings.effective_authz_listen.removeprefix("unix:")))
    port = free_port()
    plan = _plan(settings, server, port, system_ssl)
    listening: list[GatewayServer] = []
    stop = asyncio.Event()
    task = asyncio.create_task(serve_worker(plan, stop, ready=listening.append))
    try:
        yield port, listening
    finally:
        stop.set()
        try:
            async with asyncio.timeout(15):
                await task
        finally:
            await server.stop()


async def _health_once_listening(port: int, listening: list[GatewayServer]) -> int:
    async with asyncio.timeout(5):
        while not listening:
            await asyncio.sleep(0.02)
    async with httpx.AsyncClient() as client:
        return (await client.get(f"http://127.0.0.1:{port}/.lychgate/healthz")).status_code


async def test_a_worker_listens_once_it_has_a_snapshot(
    settings: Settings, system_ssl: ssl.SSLContext
) -> None:
    server = FakeAuthz()  # no snapshot until pushed
    async with _worker(settings, system_ssl, server) as (port, listening):
        await asyncio.wait_for(server.connected.wait(), 5)
        await asyncio.sleep(0.3)
        assert listening == []  # connected to authz, but nothing to serve with yet
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient() as client:
                await client.get(f"http://127.0.0.1:{port}/.lychgate/healthz")
        server.push(snapshot_line(version(1)))
        assert await _health_once_listening(port, listening) == 200


async def test_a_worker_says_it_stopped(
    settings: Settings, system_ssl: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    # Idle, it stopped without a word: an operator's log ended at "listening".
    server = FakeAuthz()
    with caplog.at_level(logging.INFO, logger="lychgate.gateway.runner"):
        async with _worker(settings, system_ssl, server) as (port, listening):
            await asyncio.wait_for(server.connected.wait(), 5)
            server.push(snapshot_line(version(1)))
            assert await _health_once_listening(port, listening) == 200
            assert "stopped" not in caplog.text
    assert caplog.messages[-1] == "gateway worker 0 stopped"


async def test_without_a_snapshot_it_listens_after_a_while_and_says_so(
    settings: Settings,
    system_ssl: ssl.SSLContext,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # authz up but silent: the worker must not stay deaf (its health check says 503).
    monkeypatch.setattr(runner, "FIRST_SNAPSHOT_WAIT", 0.3)
    async with _worker(settings, system_ssl, FakeAuthz()) as (port, listening):
        assert await _health_once_listening(port, listening) == 503
    assert "no snapshot from authz after 0.3 s; listening all the same" in caplog.text


async def test_a_stop_before_the_first_snapshot_ends_the_worker(
    settings: Settings, system_ssl: ssl.SSLContext
) -> None:
    async with _worker(settings, system_ssl, FakeAuthz()) as (_port, listening):
        await asyncio.sleep(0.1)
    assert listening == []  # it never listened, and it ended at once


async def test_a_worker_whose_metrics_port_is_taken_never_joins_the_shared_port(
    settings: Settings, system_ssl: ssl.SSLContext
) -> None:
    # A replacement worker failing at start (its metrics port taken meanwhile) joined the
    # shared port first, and each retry reset the connections the kernel had queued to it.
    server = FakeAuthz()
    await server.start_unix(Path(settings.effective_authz_listen.removeprefix("unix:")))
    server.push(snapshot_line(version(1)))
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        plan = _plan(settings, server, port, system_ssl, ("127.0.0.1", taken.getsockname()[1]))
        listening: list[GatewayServer] = []
        try:
            with pytest.raises(OSError, match="address already in use"):
                async with asyncio.timeout(15):
                    await serve_worker(plan, asyncio.Event(), ready=listening.append)
        finally:
            await server.stop()
    assert listening == []
    with pytest.raises(ConnectionRefusedError):  # nothing was left listening there either
        await asyncio.open_connection("127.0.0.1", port)
