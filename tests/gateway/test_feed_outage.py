"""A long authz outage is summarized in the gateway's log, not logged attempt by attempt.

While the gateway serves on a stale snapshot it reconnects every 2 s at most (HURRIED_BACKOFF),
and each attempt logged a warning and a line of its own: 2,400 warnings an hour per worker.
The attempts keep their pace; the log has the first few, then one summary a minute, and a
line when the feed is back.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import pytest

from fixtures.clocks import Ticks
from gateway.fake_authz import FakeAuthz
from gateway.feed_harness import Running, serial_of
from gateway.waiting import eventually
from lychgate.gateway.feed import LOUD_FAILURES, STARTING, SUMMARY_EVERY, Ended, FeedClient
from lychgate.gateway.snapshot import SnapshotHolder
from lychgate.secret import Secret

LOGGER = "lychgate.gateway.feed"
BASE = "unix:/run/lychgate/authz.sock"
REFUSED = Ended(logging.WARNING, "connection failed: Connection refused")


def _said(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= level]


def test_the_first_attempts_are_logged_then_a_summary_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticks = Ticks(1000.0)
    client = FeedClient(BASE, Secret("s"), SnapshotHolder())
    client.clock = ticks
    caplog.set_level(logging.INFO, logger=LOGGER)
    for _ in range(LOUD_FAILURES):
        client._note_end(REFUSED, 1.5)
        ticks.now += 2
    assert (
        _said(caplog, logging.WARNING)
        == [f"config feed from {BASE}: connection failed: Connection refused"] * LOUD_FAILURES
    )
    assert _said(caplog)[-1] == (
        "config feed: reconnecting in 1.5 s (and on; the failures are summarized every 60 s "
        "from now on)"
    )
    caplog.clear()
    # Two attempts a second for an hour: sixty summaries, nothing else above DEBUG.
    for _ in range(7200):
        client._note_end(REFUSED, 0.5)
        ticks.now += 0.5
    said = _said(caplog)
    assert len(said) == 60
    assert said[0] == (
        f"config feed from {BASE} still down after 120 attempts over 64 s: "
        "connection failed: Connection refused"
    )
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.name == LOGGER)
    assert said[-1].startswith(f"config feed from {BASE} still down after 7200 attempts")


def test_a_refusal_summarized_keeps_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    # The last reason is the one said: a line too long, here, after refused connections.
    ticks = Ticks(1000.0)
    client = FeedClient(BASE, Secret("s"), SnapshotHolder())
    client.clock = ticks
    for _ in range(LOUD_FAILURES + 2):
        client._note_end(REFUSED, 2.0)
    ticks.now += SUMMARY_EVERY
    client._note_end(Ended(logging.WARNING, "a line passed 9 bytes, over ..."), 2.0)
    assert _said(caplog, logging.WARNING)[-1] == (
        f"config feed from {BASE} still down after {LOUD_FAILURES + 3} attempts over 60 s: "
        "a line passed 9 bytes, over ..."
    )


@pytest.mark.loopback
async def test_an_outage_over_loopback_is_summarized_and_its_end_said(
    feed_authz: tuple[FakeAuthz, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    server, base = feed_authz
    server.feed_status = 503
    ticks = Ticks(1000.0)
    holder = SnapshotHolder()
    client = FeedClient(
        base, Secret(server.secret), holder, initial_backoff=0.002, max_backoff=0.004
    )
    client.clock = ticks
    async with Running(client):
        await eventually(lambda: client.failures >= 30)
        warned = _said(caplog, logging.WARNING)
        assert len(warned) == LOUD_FAILURES  # the attempts go on, unlogged
        assert all("authz answered 503" in line for line in warned)
        ticks.now += SUMMARY_EVERY + 1
        seen = client.failures
        await eventually(lambda: client.failures >= seen + 10)
        summary = _said(caplog, logging.WARNING)[LOUD_FAILURES:]
        assert len(summary) == 1
        assert re.fullmatch(
            rf"config feed from {re.escape(base)} still down after \d+ attempts over 61 s: "
            r"authz answered 503: .*",
            summary[0],
        )
        ticks.now += 100
        server.feed_status = 200
        await eventually(lambda: serial_of(holder) == 1)
    back = [line for line in _said(caplog) if "connected again" in line]
    assert len(back) == 1
    assert re.fullmatch(
        rf"config feed from {re.escape(base)}: connected again after \d+ failed attempts "
        r"over 161 s",
        back[0],
    )
    assert client.failures == 0


@pytest.mark.loopback
async def test_a_short_outage_says_each_attempt_and_no_summary(
    feed_authz: tuple[FakeAuthz, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    server, base = feed_authz
    server.feed_status = 503
    holder = SnapshotHolder()
    client = FeedClient(base, Secret(server.secret), holder, initial_backoff=0.002)
    async with Running(client):
        await eventually(lambda: client.failures >= 1)
        server.feed_status = 200
        await eventually(lambda: serial_of(holder) == 1)
    said = _said(caplog)
    assert any("authz answered 503" in line for line in said)
    assert not any("still down" in line or "connected again" in line for line in said)


async def test_authz_not_listening_yet_at_the_start_is_no_warning(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    # Under `lychgate serve` the gateway may ask before authz's socket exists: a healthy start
    # printed a warning. Past the first seconds, the same failure is one again.
    ticks = Ticks(1000.0)
    socket = tmp_path / "authz.sock"  # nothing listens there
    client = FeedClient(
        f"unix:{socket}", Secret("s"), SnapshotHolder(), initial_backoff=0.01, max_backoff=0.01
    )
    client.clock = ticks
    caplog.set_level(logging.INFO, logger=LOGGER)
    running = asyncio.create_task(client.run())
    try:
        await eventually(lambda: client.failures >= 2)
        ticks.now += STARTING
        await eventually(lambda: client.failures >= 3)
    finally:
        client.stop()
        await running
    failed = [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.name == LOGGER and "connection failed" in r.getMessage()
    ]
    said = f"config feed from unix:{socket}: connection failed: No such file or directory"
    assert failed[:3] == [(logging.INFO, said), (logging.INFO, said), (logging.WARNING, said)]
