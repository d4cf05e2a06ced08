"""A snapshot that cannot be built still lets revocations through: the last one goes out
again with the sessions to end of now (authz.snapshots, "Revocations never wait")."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from authz.conftest import Clock
from authz.test_internal import signed_in
from fixtures.store import make_app
from lychgate.authz.context import AuthzContext
from lychgate.authz.snapshots import SnapshotPublisher
from lychgate.ids import AppId, AppSlug, token_sid
from lychgate.store import ChangedApp


class TwinApps:
    """The apps port, giving with each app read a twin under another id and the same slug: a
    snapshot nothing can build (single-host mode has no host to tell them apart by)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def changed_since(self, version: int, **page: Any) -> Sequence[ChangedApp]:
        got: list[ChangedApp] = list(await self._inner.changed_since(version, **page))
        twins = [c._replace(app=replace(c.app, id=AppId(f"{c.app.id}-twin"))) for c in got]
        return [*got, *twins]

    async def count(self) -> int:
        return 2 * int(await self._inner.count())

    async def ids(self) -> list[AppId]:
        ids: list[AppId] = list(await self._inner.ids())
        return [*ids, *(AppId(f"{i}-twin") for i in ids)]


async def test_a_snapshot_that_cannot_be_built_still_carries_revocations(
    ctx: AuthzContext, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    _, _, session = await signed_in(ctx)
    publisher = SnapshotPublisher(ctx)
    await publisher.refresh()
    before = publisher.latest
    assert before is not None
    ctx.store.apps = TwinApps(ctx.store.apps)  # a fake around the real port
    await ctx.store.apps.add(make_app(slug=AppSlug("other")))  # moves the change counter
    await ctx.store.sessions.revoke(session.id, clock.now)
    with caplog.at_level(logging.ERROR, logger="lychgate.authz.snapshots"):
        assert await publisher.refresh()
        assert not await publisher.refresh()  # nothing new: nothing published, nothing said
    latest = publisher.latest
    assert latest is not None
    assert latest.serial > before.serial
    assert token_sid(session.id) in latest.revoked_sessions
    assert latest.apps == before.apps  # the rest stays as it was
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("could not build a config snapshot (apps[")
    assert line.endswith("; gateways keep the last one, with revocations and keys kept current")
