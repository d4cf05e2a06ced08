"""Heartbeats confirm a snapshot only while authz vouches for it (authz read its store lately).

A replica that lost its database kept sending heartbeats for its last snapshot, so the
gateways following it served sessions revoked through another replica for as long as the cut
lasted, past ``feed_max_stale``. While it does not vouch, an empty line keeps the connection
open and confirms nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from gateway.feed_harness import version
from lychgate.gateway.feed_serve import feed_lines
from lychgate.gateway.feed_wire import KEEPALIVE, heartbeat_line
from lychgate.gateway.snapshot import ConfigSnapshot


async def _one_then_quiet() -> AsyncIterator[ConfigSnapshot]:
    yield version(7)
    await asyncio.Event().wait()  # nothing changes again


async def test_heartbeats_pause_while_authz_does_not_vouch_for_its_snapshot() -> None:
    vouched = [True]
    lines = feed_lines(_one_then_quiet(), heartbeat_interval=0.01, vouched=lambda: vouched[0])
    try:
        assert b'"type":"snapshot"' in await anext(lines)
        assert await anext(lines) == heartbeat_line(7)
        vouched[0] = False  # the store cannot be read
        assert [await anext(lines) for _ in range(3)] == [KEEPALIVE] * 3
        vouched[0] = True  # read again
        assert await anext(lines) == heartbeat_line(7)
    finally:
        await lines.aclose()
