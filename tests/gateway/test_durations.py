"""A response's recorded duration: from its head, whole, to the end of its answer.

A request pipelined behind a slow one was timed from when its turn came, so the access log
and the latency histogram showed 0.4 ms for an answer its client waited 1.5 s for.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.client import get
from gateway.conftest import Answers, Connect, Start, forward_to
from gateway.upstreams import Reply, Seen, http_upstream

pytestmark = pytest.mark.loopback

WAIT = 0.3


async def test_a_request_queued_behind_a_slow_one_counts_its_wait(
    gateway: Start, connect: Connect
) -> None:
    async def app(seen: Seen, reply: Reply) -> None:
        if seen.target == "/slow":
            await asyncio.sleep(WAIT)
        await reply.send(200, b"ok")

    durations = Answers()
    async with http_upstream(app) as up:
        gw = await gateway(forward_to(up.url), on_response=durations)
        c = await connect(gw.port)
        await c.send(get("/slow") + get("/fast"))
        for _ in range(2):
            assert (await c.read_response()).status == 200
    # Lower bounds only (the loop's timers may round a millisecond down), never a speed.
    assert durations.seconds["/slow"] >= 0.9 * WAIT
    assert durations.seconds["/fast"] >= 0.9 * WAIT  # its client waited as long: it was 0.4 ms
