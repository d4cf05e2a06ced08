"""10k idle keep-alive connections: what holding them costs the proxy in memory.

Each connection makes one request (so the proxy has parsed a request and admitted it, as a
browser's connection would have), then sits idle. The figure is the proxy's RSS growth from
before the first connection to the peak while all are held, and that growth per connection.
"""

from __future__ import annotations

import asyncio
import resource
import time

from bench.fmt import format_kib, format_number
from bench.procs import LOOPBACK, RssSampler
from bench.scenarios.base import Column, Measurement, RunSettings, Scenario, Upstream
from bench.targets import Target

OPEN_CONCURRENCY = 256
STEP_TIMEOUT_S = 15.0
OPEN_PHASE_TIMEOUT_S = 120.0
FD_HEADROOM = 500  # descriptors the harness keeps for itself


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one small HTTP/1.1 response (Content-Length or chunked); return the status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip().lower()
    if "content-length" in fields:
        await reader.readexactly(int(fields["content-length"]))
    elif "chunked" in fields.get("transfer-encoding", ""):
        await reader.readuntil(b"0\r\n\r\n")  # small bodies only: one chunk, then the last
    return status


async def _open_one(target: Target, request: bytes, gate: asyncio.Semaphore) -> Stream:
    async with gate:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(LOOPBACK, target.port), STEP_TIMEOUT_S
        )
        try:
            writer.write(request)
            status = await asyncio.wait_for(read_response(reader), STEP_TIMEOUT_S)
        except BaseException:
            writer.transport.abort()
            raise
        if status != 200:
            writer.transport.abort()
            raise RuntimeError(f"status {status}")
        return reader, writer


def _first_error(results: list[Stream | BaseException]) -> str:
    for r in results:
        if isinstance(r, BaseException):
            return f"{type(r).__name__}: {r}"
    return ""


async def run_idle(target: Target, settings: RunSettings) -> Measurement:
    """Open ``idle_connections`` keep-alive connections, one request each, then hold them."""
    soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    wanted = min(settings.idle_connections, soft_limit - FD_HEADROOM)
    request = (
        f"GET /small HTTP/1.1\r\nHost: {LOOPBACK}:{target.port}\r\nCookie: {target.cookie}\r\n\r\n"
    ).encode("latin-1")
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)
    streams: list[Stream] = []
    results: list[Stream | BaseException] = []
    notes: list[str] = []
    with RssSampler(target.rss_roots, interval=0.05) as rss:
        try:
            started = time.perf_counter()
            async with asyncio.timeout(OPEN_PHASE_TIMEOUT_S):
                results = await asyncio.gather(
                    *(_open_one(target, request, gate) for _ in range(wanted)),
                    return_exceptions=True,
                )
            open_s = time.perf_counter() - started
            streams = [r for r in results if not isinstance(r, BaseException)]
            if failed := wanted - len(streams):
                notes.append(f"{failed} failed ({_first_error(results)})")
            await asyncio.sleep(settings.idle_hold_s)
            alive = sum(1 for reader, _ in streams if not reader.at_eof())
        finally:
            for _, writer in streams:
                writer.transport.abort()
    if not streams:
        raise RuntimeError(f"no connection opened: {_first_error(results)}")
    if wanted < settings.idle_connections:
        notes.append(f"capped by RLIMIT_NOFILE {soft_limit}")
    if alive < len(streams):
        notes.append(f"{len(streams) - alive} closed by the proxy while idle")
    notes.append(f"opened in {open_s:.1f}s")
    return Measurement(
        rate=float(alive),
        seconds=open_s,
        rss_growth_kib=rss.growth_kib,
        per_conn_kib=rss.growth_kib / len(streams),
        notes=tuple(notes),
    )


def _growth(m: Measurement) -> float | None:
    return None if m.rss_growth_kib is None else float(m.rss_growth_kib)


IDLE = Scenario(
    key="idle",
    title="{idle_connections:,} idle keep-alive connections (one request each, then idle)",
    upstream=Upstream.HTTP,
    run=run_idle,
    columns=(
        Column("held", lambda m: format_number(m.rate)),
        Column("RSS growth", lambda m: format_kib(m.rss_growth_kib)),
        Column("per conn", lambda m: format_kib(m.per_conn_kib)),
    ),
    ratio_of=_growth,
    ratio_label="RSS growth",
)
