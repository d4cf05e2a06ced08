"""Looks of the snapshot publisher never overlap: an older view is never published last."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from authz.conftest import Clock
from authz.test_internal import signed_in
from fixtures.store import T0, make_session
from lychgate.authz.context import AuthzContext
from lychgate.authz.sessions_to_end import ended_listed_for
from lychgate.authz.snapshots import SnapshotPublisher
from lychgate.ids import token_sid
from lychgate.store import SessionEnd


class HeldSessions:
    """The sessions port, whose next ``endings`` waits until released: a look that has read
    its clock and is slow to finish."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.hold = False
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def endings(self, since: datetime, now: datetime, **page: Any) -> list[SessionEnd]:
        if self.hold:
            self.hold = False
            self.held.set()
            await self.release.wait()
        result: list[SessionEnd] = await self._inner.endings(since, now, **page)
        return result


async def test_a_slow_look_does_not_publish_over_a_newer_one(
    ctx: AuthzContext, clock: Clock
) -> None:
    user, _, _ = await signed_in(ctx)
    ending = make_session(user.id, expires_at=T0 + timedelta(hours=1))
    await ctx.store.sessions.create(ending)
    publisher = SnapshotPublisher(ctx)
    await publisher.refresh()  # the first look builds everything
    sessions = HeldSessions(ctx.store.sessions)
    ctx.store.sessions = sessions  # a fake around the real port

    clock.now = T0 + timedelta(hours=1)  # it has just ended: listed for a while
    sessions.hold = True
    slow = asyncio.create_task(publisher.refresh())
    await sessions.held.wait()  # it read 1:00 and waits in the store
    later = T0 + timedelta(hours=1) + ended_listed_for(ctx)  # the listing is over
    clock.now = later
    newer = asyncio.create_task(publisher.refresh())
    await asyncio.sleep(0.05)
    sessions.release.set()
    await asyncio.gather(slow, newer)
    # What is published last is the view at the latest moment, not the slow look's.
    assert publisher.latest is not None
    assert publisher.latest.issued_at == later
    assert token_sid(ending.id) not in publisher.latest.revoked_sessions
