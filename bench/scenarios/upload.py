"""A 100 MiB upload streamed through the proxy to the sink, which answers with the byte count.

The figure that matters besides throughput is the proxy's peak RSS growth: a proxy that streams
holds a few buffers; one that buffers the body holds the whole 100 MiB.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from bench.fmt import format_kib, format_number
from bench.procs import LOOPBACK, RssSampler
from bench.scenarios.base import MIB, Column, Measurement, RunSettings, Scenario, Upstream
from bench.targets import Target

CHUNK = 256 * 1024
TRANSFER_TIMEOUT_S = 120.0  # one upload or download


async def upload_once(target: Target, size: int) -> float:
    """POST ``size`` bytes with Content-Length over a fresh connection; return the seconds from
    the first byte sent to the end of the response. Raises if the sink did not get every byte."""
    reader, writer = await asyncio.open_connection(LOOPBACK, target.port)
    try:
        head = (
            f"POST /upload HTTP/1.1\r\nHost: {LOOPBACK}:{target.port}\r\n"
            f"Cookie: {target.cookie}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {size}\r\nConnection: close\r\n\r\n"
        )
        chunk = memoryview(bytes(CHUNK))
        started = time.perf_counter()
        writer.write(head.encode("latin-1"))
        sent = 0
        while sent < size:
            n = min(CHUNK, size - sent)
            writer.write(chunk[:n])
            await writer.drain()
            sent += n
        response = await reader.read()  # Connection: close, so EOF ends the response
        elapsed = time.perf_counter() - started
    finally:
        writer.close()
    head_end = response.find(b"\r\n\r\n")
    status = response.split(b" ", 2)[1] if response else b"(none)"
    if status != b"200" or head_end < 0:
        raise RuntimeError(f"upload answered {status.decode(errors='replace')}")
    body = response[head_end + 4 :].strip()
    if body != str(size).encode():
        raise RuntimeError(f"sink got {body[:20].decode(errors='replace')} of {size} bytes")
    return elapsed


async def repeat_transfer(
    target: Target,
    settings: RunSettings,
    size: int,
    once: Callable[[Target, int], Awaitable[float]],
) -> Measurement:
    """Run ``once(target, size)`` ``upload_repeats`` times in a row while sampling the proxy's
    RSS; median throughput, peak RSS growth. Shared by the upload and the download."""
    times = []
    with RssSampler(target.rss_roots, interval=0.01) as rss:
        for _ in range(settings.upload_repeats):
            times.append(await asyncio.wait_for(once(target, size), TRANSFER_TIMEOUT_S))
    median = statistics.median(times)
    return Measurement(
        mib_per_s=size / MIB / median,
        seconds=median,
        rss_growth_kib=rss.growth_kib,
        notes=(f"median of {settings.upload_repeats}",),
    )


def transfer_columns(per: str) -> tuple[Column, ...]:
    """Throughput, seconds per transfer (headed ``s/<per>``) and peak RSS growth."""
    return (
        Column("MiB/s", lambda m: format_number(m.mib_per_s)),
        Column(f"s/{per}", lambda m: format_number(m.seconds)),
        Column("peak RSS growth", lambda m: format_kib(m.rss_growth_kib)),
    )


def mib_s(m: Measurement) -> float | None:
    """The figure a transfer is compared on."""
    return m.mib_per_s


async def run_upload(target: Target, settings: RunSettings) -> Measurement:
    """Upload ``upload_repeats`` times in a row; median throughput, peak RSS growth."""
    return await repeat_transfer(target, settings, settings.upload_bytes, upload_once)


UPLOAD = Scenario(
    key="upload",
    title="{upload_mib} MiB upload, streamed to a sink that counts the bytes",
    upstream=Upstream.SINK,
    run=run_upload,
    columns=transfer_columns("upload"),
    ratio_of=mib_s,
    ratio_label="MiB/s",
)
