"""Readiness of the Lychgate bench target: admitted answers in a row, not a first answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.procs import Proc
from bench.targets import lychgate
from bench.targets.lychgate import wait_admitted


@pytest.fixture
async def proc(tmp_path: Path) -> AsyncIterator[Proc]:
    """A live process standing in for ``lychgate serve`` (wait_ready watches it)."""
    process = await asyncio.create_subprocess_exec("sleep", "30")
    yield Proc("stand-in", process, tmp_path / "log")
    process.kill()
    await process.wait()


async def serve_statuses(
    statuses: list[int], served: list[int] | None = None
) -> tuple[asyncio.Server, int]:
    """Answer each connection with the next status (the last one repeats)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        if served is not None:
            served.append(status)
        writer.write(b"HTTP/1.1 %d X\r\ncontent-length: 0\r\n\r\n" % status)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_ready_after_a_streak_of_admitted_answers(
    proc: Proc, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lychgate, "SETTLE_S", 0.0)
    # A worker still without a snapshot (503) in the middle of the first streak.
    served: list[int] = []
    server, port = await serve_statuses([503, 503, 200, 200, 503, 200], served)
    async with server:
        status = await wait_admitted(proc, port, {}, workers=2, within=10.0)
    assert status == 200
    assert len(served) == 5 + 2 * 20  # after the last 503: two rounds of 10 per worker


async def test_never_admitted_returns_the_refusal(proc: Proc) -> None:
    server, port = await serve_statuses([503])
    async with server:
        status = await wait_admitted(proc, port, {}, workers=1, within=0.5)
    assert status == 503
