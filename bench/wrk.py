"""Run wrk and parse its report, including the ``--latency`` percentiles.

wrk prints times with the units of its ``format_time`` (us, ms, s, m, h) and byte counts with
binary prefixes (B, KB, MB, GB, TB meaning powers of 1024).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass

_TIME_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_BYTE_UNIT = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}

_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)\s*$", re.M)
_TRANSFER = re.compile(r"^Transfer/sec:\s+([\d.]+)([KMGT]?B)\s*$", re.M)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h), ([\d.]+)([KMGT]?B) read", re.M)
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.M)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)", re.M)


class WrkError(Exception):
    """wrk did not run, or printed something we cannot read."""


@dataclass(frozen=True, slots=True)
class WrkResult:
    """The numbers of one wrk run. Latencies in milliseconds, sizes in bytes."""

    requests: int
    requests_per_s: float
    transfer_per_s: float
    p50_ms: float | None
    p75_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    socket_errors: int
    timeouts: int
    non_2xx: int


def parse_wrk(text: str) -> WrkResult:
    """Parse wrk's stdout. Raises WrkError when the summary lines are missing."""
    rps = _RPS.search(text)
    total = _TOTAL.search(text)
    if rps is None or total is None:
        raise WrkError(f"unreadable wrk output: {text.strip()[-300:]!r}")
    percentiles = {
        int(m.group(1)): float(m.group(2)) * _TIME_UNIT_MS[m.group(3)]
        for m in _PERCENTILE.finditer(text)
    }
    transfer = _TRANSFER.search(text)
    socket = _SOCKET.search(text)
    connect, read, write, timeouts = (int(g) for g in socket.groups()) if socket else (0, 0, 0, 0)
    non_2xx = _NON_2XX.search(text)
    return WrkResult(
        requests=int(total.group(1)),
        requests_per_s=float(rps.group(1)),
        transfer_per_s=(
            float(transfer.group(1)) * _BYTE_UNIT[transfer.group(2)] if transfer else 0.0
        ),
        p50_ms=percentiles.get(50),
        p75_ms=percentiles.get(75),
        p90_ms=percentiles.get(90),
        p99_ms=percentiles.get(99),
        socket_errors=connect + read + write,
        timeouts=timeouts,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def wrk_argv(
    url: str,
    *,
    duration_s: float,
    connections: int,
    threads: int = 1,
    headers: Mapping[str, str] | None = None,
    request_timeout_s: float = 5.0,
) -> list[str]:
    """The wrk command line for one run (always with ``--latency``)."""
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={max(1, round(request_timeout_s))}s",
        "--latency",
    ]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(url)
    return argv


async def run_wrk(argv: list[str], duration_s: float) -> WrkResult:
    """Run wrk and parse its report; killed if it overruns its duration by 30 s."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), duration_s + 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise WrkError(f"wrk exited {proc.returncode}: {err.decode(errors='replace')[-300:]}")
    return parse_wrk(out.decode(errors="replace"))
