"""A gateway reconnecting as authz wakes from a pause is served, not told the store is down.

A probe paused authz (SIGSTOP) for 35 to 60 s. The gateways' feeds went silent, they
reconnected, and the first request read once authz resumed was answered 503, which the
gateway logged as "it cannot read its database": false, authz had simply not looked at its
store since it woke, and its snapshot was not vouched for until its next poll. Now a feed
request that finds the snapshot not vouched for asks for a look and waits a moment for it;
only a store that still cannot be read (or too slowly) gets the 503, which says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI

from authz.feed_call import FeedCall
from authz.outage import FlakyStore, authz, flaky
from fixtures.clocks import Ticks
from gateway.waiting import PATIENCE, eventually
from lychgate.authz.context import AuthzContext
from lychgate.authz.internal import UNVOUCHED, VOUCH_WAIT
from lychgate.authz.snapshots import SnapshotPublisher
from lychgate.errors import StoreError
from lychgate.gateway.feed_wire import parse_line
from lychgate.gateway.snapshot import ConfigSnapshot

__all__ = ["authz", "flaky"]  # fixtures used by name


@contextlib.asynccontextmanager
async def publishing(authz: FastAPI, ticks: Ticks) -> AsyncIterator[SnapshotPublisher]:
    """authz with a publisher that polls every 30 s on ``ticks`` (its next poll is far off
    when the test jumps the clock), running until the end."""
    pub = SnapshotPublisher(authz.state.ctx, poll_interval=30.0, clock=ticks)
    authz.state.publisher = pub
    running = asyncio.create_task(pub.run())
    try:
        await eventually(pub.vouches)
        yield pub
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def _answer(authz: FastAPI, ctx: AuthzContext) -> FeedCall:
    """A feed request, until its answer: the first line of a 200, or a refusal in full."""
    call = FeedCall(authz, ctx.secrets.internal_token.reveal())
    task = asyncio.create_task(call.run())
    try:
        await eventually(lambda: call.ended or bool(call.lines()))
    finally:
        call.leave()
        await asyncio.wait_for(task, PATIENCE)
    return call


async def test_a_gateway_reconnecting_as_authz_wakes_from_a_pause_is_served(
    authz: FastAPI, ctx: AuthzContext
) -> None:
    ticks = Ticks()
    async with publishing(authz, ticks) as pub:
        # Paused past ten polls (300 s here): its last look is long past, its next poll a
        # whole interval away, and the gateway's request is the first thing it reads.
        ticks.now = 400.0
        assert not pub.vouches()
        call = await _answer(authz, ctx)
        assert call.status == 200
        first = parse_line(call.lines()[0].rstrip(b"\n"))
        assert isinstance(first, ConfigSnapshot)
        assert pub.latest is not None
        assert first.serial == pub.latest.serial
        assert pub.vouches()  # the look it asked for


async def test_a_store_that_still_cannot_be_read_is_refused_saying_so(
    authz: FastAPI, ctx: AuthzContext, flaky: FlakyStore
) -> None:
    ticks = Ticks()
    async with publishing(authz, ticks) as pub:
        flaky.fail("config_changes", "version", lambda: StoreError("database connection failed"))
        ticks.now = 400.0
        started = time.monotonic()
        call = await _answer(authz, ctx)
        waited = time.monotonic() - started
        assert call.status == 503
        assert call.body == b'{"detail":"' + UNVOUCHED.encode() + b'"}'
        assert "its store reads are failing or slow" in UNVOUCHED
        assert waited >= VOUCH_WAIT * 0.9  # it gave the look asked for its chance
        assert not pub.vouches()
