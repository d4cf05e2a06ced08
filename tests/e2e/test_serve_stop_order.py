"""``lychgate serve`` stops the gateway first: authz serves on until the gateway has drained.

authz used to stop at the signal, while the gateway still drained for up to ten seconds: a
request in flight that reached authz after the first five (uvicorn's own grace) got a 502, and
a sign-out during the drain could not revoke the session. A login page's event stream, which
never ends by itself, must not hold the drain either: authz ends it when the stop begins.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from e2e.deployment import Served, free_port, lychgate, serve

pytestmark = [pytest.mark.loopback, pytest.mark.slow]

AUTHZ_GRACE = 5.0  # uvicorn's timeout_graceful_shutdown for authz
STOPPED_WITHIN = 8.0  # the gateway's drain has nothing left to wait for: a few seconds at most


@pytest.fixture
async def served(data_dir: Path) -> AsyncIterator[Served]:
    port = free_port()
    await asyncio.to_thread(
        lychgate, "init", "--dir", str(data_dir), "--public-url", f"http://127.0.0.1:{port}"
    )
    async with serve(data_dir, port) as served:
        yield served


async def _authz_health(data_dir: Path) -> int:
    """authz's own health, asked on its unix socket (not through the gateway)."""
    transport = httpx.AsyncHTTPTransport(uds=str(data_dir / "run" / "authz.sock"))
    async with httpx.AsyncClient(transport=transport, timeout=2) as client:
        return (await client.get("http://authz/.lychgate/authz/healthz")).status_code


async def _wait_exit(served: Served, within: float) -> int:
    async with asyncio.timeout(within):
        return await served.process.wait()


async def test_authz_answers_a_request_that_reaches_it_late_in_the_drain(
    served: Served,
) -> None:
    body = json.dumps({"rd": "/"}).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    try:
        head = (
            "POST /.lychgate/api/v1/login HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{served.port}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body[:3])  # in flight: the rest comes after the signal
        await writer.drain()
        await asyncio.sleep(0.5)
        served.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(AUTHZ_GRACE + 1.0)
        assert served.process.returncode is None  # the gateway drains the request
        assert await _authz_health(served.data_dir) == 200  # and authz still serves
        writer.write(body[3:])
        await writer.drain()
        async with asyncio.timeout(5):
            answer = await reader.read()  # to the end: the drained connection closes
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 201 Created", answer[:300]
    assert b"connection: close" in rest.lower()
    assert await _wait_exit(served, STOPPED_WITHIN) == 0
    with pytest.raises(httpx.TransportError):
        await _authz_health(served.data_dir)  # stopped after the gateway


async def test_a_login_pages_event_stream_does_not_hold_the_stop(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as browser:
        created = await browser.post("/.lychgate/api/v1/login", json={"rd": "/"})
        assert created.status_code == 201, created.text
        events = f"/.lychgate/api/v1/login/{created.json()['id']}/events"
        async with browser.stream("GET", events) as stream:
            assert stream.status_code == 200
            lines = stream.aiter_lines()
            assert (await anext(lines)).startswith("retry:")
            signalled = time.monotonic()
            served.process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(3):
                async for _ in lines:  # ends when authz ends it, long before the drain would
                    pass
        assert time.monotonic() - signalled < 3
    assert await _wait_exit(served, STOPPED_WITHIN) == 0
    # authz removed its socket as it stopped (it was left, looking like a live authz).
    assert not (served.data_dir / "run" / "authz.sock").exists()


async def _stuck_login(served: Served) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A request in flight that never ends: its body stops half-way."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(
        f"POST /.lychgate/api/v1/login HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode()
    )
    await writer.drain()
    await asyncio.sleep(0.5)
    return reader, writer


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_second_ctrl_c_cuts_the_drain_short(data_dir: Path, workers: int) -> None:
    port = free_port()
    await asyncio.to_thread(
        lychgate, "init", "--dir", str(data_dir), "--public-url", f"http://127.0.0.1:{port}"
    )
    config = data_dir / "lychgate.toml"
    config.write_text(config.read_text() + f"\nworkers = {workers}\n")
    async with serve(data_dir, port) as served:
        reader, writer = await _stuck_login(served)
        try:
            served.process.send_signal(signal.SIGINT)
            await asyncio.sleep(1.5)
            assert served.process.returncode is None  # draining the stuck request
            pressed = time.monotonic()
            served.process.send_signal(signal.SIGINT)
            assert await _wait_exit(served, 5.0) == 0  # not the drain's 10 s
            assert time.monotonic() - pressed < 4.0
            async with asyncio.timeout(2):
                answer = await reader.read()  # as at the drain's end: a 503 if nothing was sent
            assert answer.startswith(b"HTTP/1.1 503 "), answer
        finally:
            writer.close()
    log = served.log.read_text()
    assert "second Ctrl-C" in log
    assert "Traceback" not in log
