"""The demo apps served for real: :func:`serve_demo_apps` on unix sockets in ``tmp_path``.

The JWKS comes from :class:`~demo.fakes.FakeJwks` (an in-process transport) and the clock is
fixed, so assertions signed by the test keyring at ``KEY_NOW`` verify.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from demo.fakes import JWKS_URL, PUBLIC_URL, FakeJwks, clock
from lychgate.demo.runner import DemoPlan, serve_demo_apps
from lychgate.tokens import Keyring


@dataclass
class RunningDemo:
    whoami: Path
    chat: Path
    jwks: FakeJwks
    stop: asyncio.Event
    task: asyncio.Task[None]


async def _wait_for_socket(path: Path, task: asyncio.Task[None]) -> None:
    async with asyncio.timeout(10):
        while True:
            if task.done():
                task.result()  # raises what stopped the servers
                raise AssertionError("the demo apps stopped before listening")
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_unix_connection(path)
                writer.close()
                await writer.wait_closed()
                return
            await asyncio.sleep(0.02)


@pytest.fixture
async def demo(tmp_path: Path, keyring: Keyring) -> AsyncIterator[RunningDemo]:
    """whoami and chat running in this test's loop until the test ends."""
    jwks = FakeJwks(keyring.jwks())
    sockets = {"whoami": tmp_path / "w.sock", "chat": tmp_path / "c.sock"}
    plan = DemoPlan(PUBLIC_URL, JWKS_URL, sockets, None)
    stop = asyncio.Event()
    task = asyncio.create_task(serve_demo_apps(plan, stop, transport=jwks.transport(), clock=clock))
    running = RunningDemo(sockets["whoami"], sockets["chat"], jwks, stop, task)
    try:
        for path in sockets.values():
            await _wait_for_socket(path, task)
        yield running
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task


@pytest.fixture
async def whoami_client(demo: RunningDemo) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.AsyncHTTPTransport(uds=str(demo.whoami))
    async with httpx.AsyncClient(transport=transport, base_url="http://whoami.test") as client:
        yield client
