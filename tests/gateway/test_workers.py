"""Worker processes on one port (lychgate.gateway.http.workers), run in a child interpreter."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

import pytest

from e2e.deployment import free_port
from gateway.client import RawClient, get

pytestmark = [pytest.mark.loopback, pytest.mark.slow]

SCRIPT = """
import asyncio, os, sys
from lychgate.gateway.http import start_server
from lychgate.gateway.http.workers import run_workers
from lychgate.gateway.types import Respond

PORT = int(sys.argv[1])

async def main(stop: asyncio.Event) -> None:
    pid = str(os.getpid()).encode()
    gw = await start_server(lambda head: Respond(200, (), pid), port=PORT, reuse_port=True)
    await stop.wait()
    await gw.close(drain_timeout=1)

sys.exit(run_workers(int(sys.argv[2]), main))
"""


async def _ask(port: int) -> bytes:
    c = await RawClient.connect(port)
    try:
        await c.send(get())
        return (await c.read_response()).body
    finally:
        await c.close()


async def test_workers_share_the_port_and_stop_on_sigterm(tmp_path: Path) -> None:
    script = tmp_path / "workers.py"
    script.write_text(SCRIPT)
    port = free_port()
    proc = await asyncio.create_subprocess_exec(sys.executable, str(script), str(port), "2")
    try:
        pids: set[bytes] = set()
        async with asyncio.timeout(10):
            while len(pids) < 2:
                try:
                    pids.add(await _ask(port))
                except OSError:
                    await asyncio.sleep(0.05)
        assert len(pids) == 2  # two processes answered on one port
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_worker_that_cannot_start_stops_the_rest(tmp_path: Path) -> None:
    script = tmp_path / "workers.py"
    script.write_text(SCRIPT)
    with socket.socket() as taken:  # without SO_REUSEPORT: the workers cannot bind
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            str(port),
            "2",
            stderr=asyncio.subprocess.DEVNULL,
        )
        async with asyncio.timeout(10):
            assert await proc.wait() != 0
