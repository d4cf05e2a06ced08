"""Python targets run from this repository: the floor of the gateway's design, in steps.

* ``relay``: :mod:`bench.relay`, llhttp over both directions and nothing else.
* ``relay-headers``: the same, decoding every URL and header field into Python objects.
* ``engine``: :mod:`bench.engine`, the gateway's HTTP engine forwarding every request.

Each runs from the repository root so that ``python -m bench...`` imports, like the Python
upstream. None checks a cookie; a placeholder one is sent so requests are the usual size.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.procs import free_port, start_process, wait_ready
from bench.targets import Target, placeholder_cookie, write_files

REPO_ROOT = Path(__file__).resolve().parents[2]


async def _start(
    name: str, module: str, upstream_port: int, workdir: Path, extra: Sequence[str]
) -> Target:
    """Start ``python -m module --listen P --upstream U ...`` and wait until it answers."""
    await asyncio.to_thread(write_files, workdir, {})
    port = free_port()
    argv = [sys.executable, "-m", module, "--listen", str(port)]
    argv += ["--upstream", str(upstream_port), *extra]
    proc = await start_process(name, argv, workdir / f"{name}.log", cwd=REPO_ROOT)
    target = Target(port=port, cookie=placeholder_cookie(), processes=(proc,))
    try:
        await wait_ready(proc, port, path="/small", headers=target.headers)
    except BaseException:
        await target.stop()
        raise
    return target


async def start_relay(workdir: Path, upstream_port: int) -> Target:
    """The featureless relay in front of ``upstream_port``."""
    return await _start("relay", "bench.relay", upstream_port, workdir, ())


async def start_reading_relay(workdir: Path, upstream_port: int) -> Target:
    """The relay that also reads every head into Python objects."""
    return await _start("relay-headers", "bench.relay", upstream_port, workdir, ["--read-headers"])


async def start_engine(workdir: Path, upstream_port: int) -> Target:
    """The gateway's engine with a forward-everything handler."""
    return await _start("engine", "bench.engine", upstream_port, workdir, ())
