"""A real ``lychgate serve`` in a temporary deployment, driven over loopback.

Setup goes through the CLI (in process, before the event loop); the server runs as a child
process exactly as a user would start it, and the tests talk to it with httpx and websockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
from typer.testing import CliRunner

from fixtures.processes import kill_all_with
from lychgate.cli.main import app as cli_app

_runner = CliRunner()


def lychgate(*args: str) -> str:
    """Run a CLI command in process; fail the test with its output if it fails."""
    result = _runner.invoke(cli_app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def add_app(data_dir: str, slug: str, name: str, upstream: str) -> None:
    """``lychgate app add`` with the usual four options."""
    lychgate(
        "app", "add", "--dir", data_dir, "--slug", slug, "--name", name, "--upstream", upstream
    )


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


_EPHEMERAL_LOW = _ephemeral_low()  # read at import, not inside a test's event loop


def free_port() -> int:
    """A loopback port that is free now, chosen *below* the kernel's ephemeral range.

    A port from ``bind(0)`` is an ephemeral one: between our check and the server's own bind,
    any outgoing connection on the machine (another test's client, say) may take it, and the
    server then fails with "address already in use". Ports below the range are never handed
    out that way, and a random pick keeps concurrent test runs from choosing the same one.
    """
    high = max(_EPHEMERAL_LOW, 2048)
    for _ in range(200):
        low = max(1024, high - 16384)
        port = low + secrets.randbelow(high - low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port below the ephemeral range")


@dataclass
class Served:
    data_dir: Path
    port: int
    process: asyncio.subprocess.Process
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def start_lychgate(
    data_dir: Path, command: str, port: int, *, stdout: IO[bytes] | int, stderr: IO[bytes] | int
) -> asyncio.subprocess.Process:
    """``lychgate COMMAND --dir DATA_DIR --listen 127.0.0.1:PORT`` in a process of its own,
    free of this shell's ``LYCHGATE_*`` settings."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lychgate",
        command,
        "--dir",
        str(data_dir),
        "--listen",
        f"127.0.0.1:{port}",
        stdout=stdout,
        stderr=stderr,
        env={k: v for k, v in os.environ.items() if not k.startswith("LYCHGATE_")},
    )


async def exit_code(process: asyncio.subprocess.Process, data_dir: Path, within: float) -> int:
    """The exit code of a ``lychgate`` run that must end by itself within ``within`` s; one
    that does not is killed, with every process of its tree (named by ``data_dir``)."""
    try:
        async with asyncio.timeout(within):
            return await process.wait()
    finally:
        if process.returncode is None:
            kill_all_with(str(data_dir))
            await process.wait()


@contextlib.asynccontextmanager
async def serve(
    data_dir: Path,
    port: int,
    *,
    timeout: float = 20.0,
    health_url: str | None = None,
    verify: ssl.SSLContext | bool = True,
    command: str = "serve",
) -> AsyncIterator[Served]:
    """Start ``lychgate serve`` (or ``command``: ``gateway``, with authz running apart) and
    wait until the gateway has a snapshot (healthz 200)."""
    log = data_dir / f"{command}.log"
    out = await asyncio.to_thread(log.open, "wb")
    process = await start_lychgate(data_dir, command, port, stdout=out, stderr=out)
    served = Served(data_dir, port, process, log)
    try:
        base = health_url or served.url
        async with httpx.AsyncClient(verify=verify) as client, asyncio.timeout(timeout):
            while True:
                if process.returncode is not None:
                    raise AssertionError(await asyncio.to_thread(log.read_text))
                with contextlib.suppress(httpx.TransportError):
                    r = await client.get(f"{base}/.lychgate/healthz")
                    if r.status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield served
    finally:
        await stop(process)
        out.close()


async def stop(process: asyncio.subprocess.Process, patience: float = 15.0) -> None:
    """End ``process`` if it is still running: SIGTERM, then SIGKILL after ``patience`` s."""
    if process.returncode is not None:
        return
    process.terminate()
    try:
        async with asyncio.timeout(patience):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()
