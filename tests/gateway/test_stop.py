"""Once to drain, twice to stop at once (lychgate.gateway.http.stop), on a hand-moved clock."""

from __future__ import annotations

import asyncio
import logging
import signal

import pytest

from fixtures.clocks import Ticks
from gateway.client import get
from gateway.conftest import Connect, Start
from gateway.waiting import eventually
from lychgate.gateway.http.stop import SECOND_PRESS_AFTER, Stop, second_press
from lychgate.gateway.types import Decision, Local, RequestHead, Respond


@pytest.mark.parametrize(
    ("signum", "first", "now", "second"),
    [
        (signal.SIGINT, None, 100.0, False),  # the first of all
        (signal.SIGINT, 100.0, 100.0 + SECOND_PRESS_AFTER, True),
        (signal.SIGINT, 100.0, 100.01, False),  # the same press, through a supervisor
        (signal.SIGTERM, 100.0, 200.0, False),  # a service manager's repeat: drain on
        (signal.SIGHUP, 100.0, 200.0, False),
    ],
)
def test_what_counts_as_a_second_press(
    signum: int, first: float | None, now: float, second: bool
) -> None:
    assert second_press(signum, first, now) is second


def test_the_first_signal_drains_and_a_second_ctrl_c_hurries() -> None:
    clock = Ticks(100.0)
    stop = Stop(clock)
    assert not stop.is_set()
    stop.signal(signal.SIGTERM)  # the supervisor's
    stop.signal(signal.SIGINT)  # the terminal's, for the same press
    assert stop.is_set()
    assert not stop.hurry.is_set()
    clock.now += 3.0
    stop.signal(signal.SIGTERM)
    assert not stop.hurry.is_set()
    stop.signal(signal.SIGINT)
    assert stop.hurry.is_set()


def _hello(head: RequestHead) -> Decision:
    return Respond(200, (), b"hello")


@pytest.mark.loopback
async def test_idle_connections_are_not_counted_as_busy_at_a_stop(
    gateway: Start, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    # They close at once; the log used to count them among the requests under way.
    gw = await gateway(_hello)
    for _ in range(3):
        c = await connect(gw.port)
        await c.send(get())
        assert (await c.read_response()).status == 200
    with caplog.at_level(logging.INFO, logger="lychgate.gateway.http.server"):
        await gw.close(drain_timeout=5)
    assert "under way" not in caplog.text


@pytest.mark.loopback
async def test_a_cut_ends_the_drain_at_once(
    gateway: Start, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    never = asyncio.Event()

    async def stuck(head: RequestHead) -> Respond:
        await never.wait()
        raise AssertionError("never answered")

    gw = await gateway(lambda head: Local(stuck))
    c = await connect(gw.port)
    await c.send(get())
    await eventually(lambda: gw.stats.requests_active == 1, what="the request under way")
    cut = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, cut.set)
    started = loop.time()
    with caplog.at_level(logging.INFO, logger="lychgate.gateway.http.server"):
        await gw.close(drain_timeout=30, cut=cut)
    assert loop.time() - started < 5
    assert "1 connection(s) with a request under way" in caplog.text
    assert "at a second Ctrl-C" in caplog.text
    assert (await c.read_response()).status == 503
