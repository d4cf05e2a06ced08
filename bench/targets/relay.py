"""The featureless relay (:mod:`bench.relay`) as a target: the floor of the gateway's design.

It runs from the repository root so that ``python -m bench.relay`` imports, like the Python
upstream. It checks no cookie; a placeholder one is sent so requests are the usual size.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bench.procs import free_port, start_process, wait_ready
from bench.targets import Target, placeholder_cookie, write_files

REPO_ROOT = Path(__file__).resolve().parents[2]


async def start_relay(workdir: Path, upstream_port: int) -> Target:
    """Start ``python -m bench.relay`` in front of ``upstream_port`` and wait until it answers."""
    await asyncio.to_thread(write_files, workdir, {})
    port = free_port()
    argv = [sys.executable, "-m", "bench.relay", "--listen", str(port)]
    argv += ["--upstream", str(upstream_port)]
    proc = await start_process("relay", argv, workdir / "relay.log", cwd=REPO_ROOT)
    target = Target(port=port, cookie=placeholder_cookie(), processes=(proc,))
    try:
        await wait_ready(proc, port, path="/small", headers=target.headers)
    except BaseException:
        await target.stop()
        raise
    return target
