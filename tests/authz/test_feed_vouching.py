"""A replica that cannot read its store stops vouching for its snapshot (THREAT_MODEL T11).

Its heartbeats used to confirm the last snapshot for as long as its database was out of
reach, so a session revoked through another replica stayed admitted by the gateways following
this one past ``feed_max_stale``. Now the snapshot is vouched for during ten polls after the
last look that read the store; after that the feed sends no heartbeat and refuses new
connections with a 503, and the gateways count the snapshot's age from that last look.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest
from fastapi import FastAPI

from authz.conftest import internal_client
from authz.outage import FlakyStore, authz, flaky
from fixtures.clocks import Ticks
from lychgate.authz.context import AuthzContext
from lychgate.authz.internal import UNVOUCHED
from lychgate.authz.snapshots import SnapshotPublisher
from lychgate.errors import StoreError
from lychgate.gateway.feed_http import FEED_PATH

__all__ = ["authz", "flaky"]  # fixtures used by name


def _cut(flaky: FlakyStore) -> None:
    flaky.fail("config_changes", "version", lambda: StoreError("database connection failed"))


def _mend(flaky: FlakyStore) -> None:
    flaky.store.config_changes = flaky.real.config_changes


async def test_the_snapshot_is_vouched_for_ten_polls_after_the_last_look_that_read_the_store(
    ctx: AuthzContext, flaky: FlakyStore
) -> None:
    ticks = Ticks()
    pub = SnapshotPublisher(replace(ctx, store=flaky.store), poll_interval=0.5, clock=ticks)
    assert not pub.vouches()  # nothing to vouch for yet
    await pub.refresh()
    assert pub.vouches()
    _cut(flaky)
    ticks.now = 5.0
    with pytest.raises(StoreError):
        await pub.refresh()
    assert pub.vouches()  # a look that failed moments after one that worked: still fine
    ticks.now = 5.1
    assert not pub.vouches()
    assert pub.latest is not None  # kept, to be served again once it is vouched for
    _mend(flaky)
    await pub.refresh()
    assert pub.vouches()


async def test_the_feed_refuses_new_gateways_while_the_store_cannot_be_read(
    ctx: AuthzContext, flaky: FlakyStore, authz: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    pub: SnapshotPublisher = authz.state.publisher
    async with internal_client(authz, ctx) as client:
        with caplog.at_level(logging.ERROR, logger="lychgate.authz.snapshots"):
            _cut(flaky)  # polls every 0.05 s here: no longer vouched for after 0.5 s
            async with asyncio.timeout(10):
                while pub.vouches():
                    await asyncio.sleep(0.02)
            r = await client.get(FEED_PATH)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "5"
        assert r.json() == {"detail": UNVOUCHED}
        # One line, with the driver's reason and no traceback (it was some eighty lines).
        said = [x for x in caplog.records if "could not read the config store" in x.getMessage()]
        assert len(said) == 1
        assert said[0].exc_info is None
        assert "database connection failed" in said[0].getMessage()
        _mend(flaky)
        async with asyncio.timeout(10):
            while not pub.vouches():
                await asyncio.sleep(0.02)
