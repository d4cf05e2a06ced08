"""A 100 MiB download: nginx serves a file (with sendfile) through the proxy to a counting client.

The mirror of the upload. Besides throughput, the figure that matters is the proxy's peak RSS
growth: a proxy that streams the response holds a few buffers; one that buffers it holds the
whole 100 MiB. The client reads the body in chunks and only counts them, so it never holds the
body either, and it checks the framing: status 200, a Content-Length of exactly the file's size,
that many bytes, then the end of the connection.

The size is fixed (``nginx.DOWNLOAD_SIZE``): the upstream writes its file once per run, before
any scenario's settings apply, so ``--upload-mb`` does not change it. The number of repeats is
the upload's (``upload_repeats``; one under ``--quick``).
"""

from __future__ import annotations

import asyncio
import time

from bench.procs import LOOPBACK
from bench.scenarios.base import MIB, Measurement, RunSettings, Scenario, Upstream
from bench.scenarios.upload import CHUNK, mib_s, repeat_transfer, transfer_columns
from bench.targets import Target
from bench.targets.nginx import DOWNLOAD_PATH, DOWNLOAD_SIZE


def _content_length(head: bytes) -> int:
    """The Content-Length of a 200 response head; raises on any other status or framing."""
    status_line, *lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    status = parts[1] if len(parts) > 1 else status_line
    if status != "200":
        raise RuntimeError(f"download answered {status}")
    fields = {}
    for line in lines:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    if "transfer-encoding" in fields or "content-length" not in fields:
        te = fields.get("transfer-encoding", "none")
        raise RuntimeError(f"download not framed by Content-Length (Transfer-Encoding: {te})")
    return int(fields["content-length"])


async def download_once(target: Target, size: int) -> float:
    """GET the download file over a fresh connection, counting the body in chunks; return the
    seconds from the request to the last body byte. Raises unless exactly ``size`` bytes came."""
    reader, writer = await asyncio.open_connection(LOOPBACK, target.port, limit=CHUNK)
    try:
        head = (
            f"GET {DOWNLOAD_PATH} HTTP/1.1\r\nHost: {LOOPBACK}:{target.port}\r\n"
            f"Cookie: {target.cookie}\r\nConnection: close\r\n\r\n"
        )
        started = time.perf_counter()
        writer.write(head.encode("latin-1"))
        try:
            response_head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raise RuntimeError("connection closed before the response head") from exc
        if (length := _content_length(response_head[:-4])) != size:
            raise RuntimeError(f"Content-Length {length}, expected {size}")
        received = 0
        while received < size:
            chunk = await reader.read(min(CHUNK, size - received))
            if not chunk:
                break
            received += len(chunk)
        elapsed = time.perf_counter() - started
        if received < size:
            raise RuntimeError(f"got {received} of {size} bytes before the connection closed")
        if await reader.read(1):  # Connection: close, so nothing may follow the body
            raise RuntimeError(f"more than {size} bytes: data after the body")
    finally:
        writer.close()
    return elapsed


async def run_download(target: Target, settings: RunSettings) -> Measurement:
    """Download ``upload_repeats`` times in a row; median throughput, peak RSS growth."""
    return await repeat_transfer(target, settings, DOWNLOAD_SIZE, download_once)


DOWNLOAD = Scenario(
    key="download",
    title=f"{DOWNLOAD_SIZE // MIB} MiB download, a file nginx serves with sendfile",
    upstream=Upstream.HTTP,
    run=run_download,
    columns=transfer_columns("download"),
    ratio_of=mib_s,
    ratio_label="MiB/s",
)
