"""Building a snapshot over some apps, with what authz logs about them."""

from __future__ import annotations

import logging

import pytest

from authz.conftest import Clock
from lychgate.authz.context import AuthzContext
from lychgate.authz.snapshots import build_snapshot
from lychgate.domain import App
from lychgate.gateway.snapshot import ConfigSnapshot


async def snapshot_with(
    ctx: AuthzContext, clock: Clock, caplog: pytest.LogCaptureFixture, *apps: App
) -> ConfigSnapshot:
    """``apps`` added to the store, then a snapshot built; its warnings go to ``caplog``."""
    for app in apps:
        await ctx.store.apps.add(app)
    with caplog.at_level(logging.WARNING, logger="lychgate.authz.snapshots"):
        return await build_snapshot(ctx, serial=1, now=clock.now)
