"""A feed line longer than a gateway reads is logged by authz, which alone can say why.

A gateway drops the connection at a line over ``MAX_LINE_BYTES`` and stays on its last
snapshot until it is stale; authz said nothing, so the operator could not learn what made the
snapshot so large. Now authz logs an error naming the line's size, the limit and the counts
of what the snapshot holds: once per snapshot, however many gateways (and reconnections) it
is sent to, and at most once a minute.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from fixtures.clocks import Ticks
from gateway.feed_harness import WORLD, version
from lychgate.gateway.feed_json import MAX_LINE_BYTES
from lychgate.gateway.feed_serve import OversizeLines, feed_lines
from lychgate.gateway.feed_wire import APP_LIMITS, UPDATES
from lychgate.gateway.snapshot import ConfigSnapshot
from lychgate.ids import SessionId

LOGGER = "lychgate.gateway.feed_serve"


async def _first_line(
    snapshot: ConfigSnapshot, updates: frozenset[str], too_long: OversizeLines
) -> bytes:
    async def source() -> AsyncIterator[ConfigSnapshot]:
        yield snapshot
        await asyncio.Event().wait()

    stream = feed_lines(source(), heartbeat_interval=60, updates=updates, too_long=too_long)
    try:
        return await anext(stream)
    finally:
        await stream.aclose()


def _oversize(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if "a gateway reads" in r.getMessage()]


def test_the_limit_is_the_gateways() -> None:
    assert OversizeLines().limit == MAX_LINE_BYTES


async def test_a_snapshot_too_long_for_the_gateways_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A limit of 64 KiB (the gateway's is far more: a line that long takes as much memory to
    # build here), and 1,000 sessions of 100 bytes to end.
    too_long = OversizeLines(limit=64 * 1024)
    many = frozenset(SessionId(f"{n:04d}" + "x" * 96) for n in range(1000))
    big = WORLD.changed(serial=7001, revoked_sessions=many)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        # Three gateways, one of them without the apps' own limits (a line of its own).
        lines = [
            await _first_line(big, updates, too_long)
            for updates in (UPDATES, UPDATES, UPDATES - {APP_LIMITS})
        ]
        assert all(len(line) - 1 > too_long.limit for line in lines)
        (said,) = _oversize(caplog.records)
        size = len(lines[0]) - 1
        assert f"snapshot line for snapshot 7001 is {size / 2**20:.1f} MiB ({size} bytes)" in said
        assert "over the 0.1 MiB a gateway reads" in said
        apps, users = len(WORLD.snapshot.apps), len(WORLD.snapshot.users)
        assert f"{apps} apps, {users} users and 1000 sessions to end" in said
        assert caplog.records[-1].levelno == logging.ERROR
        assert caplog.records[-1].exc_info is None
        # A snapshot a gateway reads says nothing.
        caplog.clear()
        for updates in (UPDATES, UPDATES - {APP_LIMITS}):
            await _first_line(version(7002), updates, too_long)
        assert _oversize(caplog.records) == []


def test_each_snapshot_too_long_is_logged_once_and_at_most_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticks = Ticks()
    check = OversizeLines(limit=100, clock=ticks, window=60.0)
    long, short = b"x" * 101 + b"\n", b"x" * 100 + b"\n"  # the limit counts without the \n
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        check.check(short, version(1), "snapshot")
        assert _oversize(caplog.records) == []
        for kind in ("snapshot", "users", "snapshot"):  # one snapshot, to every gateway
            check.check(long, version(2), kind)
        assert len(_oversize(caplog.records)) == 1
        ticks.now = 30.0
        check.check(long, version(3), "sessions")  # within the minute: counted, not logged
        assert len(_oversize(caplog.records)) == 1
        ticks.now = 61.0
        check.check(long, version(4), "sessions")
        said = _oversize(caplog.records)
        assert len(said) == 2
        assert "the sessions line for snapshot 4 is 0.0 MiB (101 bytes)" in said[1]
        assert said[1].endswith("(1 more since the last report)")
