"""``workers = 2`` with ``metrics_listen`` end to end: each worker serves its own metrics.

Every worker used to think it was worker 0, so the second could not bind the metrics port
and the whole gateway stopped at start.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest

from e2e.deployment import free_port, lychgate, serve

pytestmark = [pytest.mark.loopback, pytest.mark.slow]


def _deploy(data_dir: Path, port: int, metrics_port: int) -> None:
    d = str(data_dir)
    lychgate("init", "--dir", d, "--public-url", f"http://127.0.0.1:{port}")
    config = data_dir / "lychgate.toml"
    top = f'workers = 2\nmetrics_listen = "127.0.0.1:{metrics_port}"\n'
    config.write_text(top + config.read_text())  # top-level keys go first


def _two_free_ports(avoid: int) -> int:
    """A port that is free, and whose next port is free too (worker 1 adds one)."""
    for _ in range(50):
        first = free_port()
        if avoid in (first, first + 1):
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", first + 1))
            except OSError:
                continue
        return first
    raise AssertionError("no two free ports in a row")


async def test_each_worker_serves_its_metrics_on_its_own_port(data_dir: Path) -> None:
    port = free_port()
    metrics_port = _two_free_ports(avoid=port)
    await asyncio.to_thread(_deploy, data_dir, port, metrics_port)
    async with serve(data_dir, port), httpx.AsyncClient() as client:
        workers = set()
        for worker in (0, 1):
            url = f"http://127.0.0.1:{metrics_port + worker}/metrics"
            async with asyncio.timeout(10):
                while True:
                    try:
                        scraped = (await client.get(url)).text
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(0.1)
            assert f'worker="{worker}"' in scraped
            # Its process's own: a reset counter shows as a new start time; descriptors near
            # their limit before EMFILE bites.
            for series in ("process_start_time_seconds", "process_open_fds", "process_max_fds"):
                assert f"\n{series} " in scraped
            workers.add(worker)
        assert workers == {0, 1}
