"""Housekeeping (lychgate.authz.housekeeping): ended rows are deleted a day after their end,
over both backends, and authz runs the sweep by itself."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from authz.conftest import Clock
from authz.outage import FlakyStore
from fixtures.store import T0, make_code, make_login_request, make_session, make_user
from lychgate.authz import housekeeping
from lychgate.authz.app import create_app
from lychgate.authz.context import AuthzContext
from lychgate.authz.housekeeping import KEEP_ENDED, Swept, kept_for, sweep
from lychgate.errors import NotFound, StoreError
from lychgate.ids import SessionId
from lychgate.store import Store

DAY_AGO = T0 - KEEP_ENDED
SECOND = timedelta(seconds=1)


async def _rows(store: Store, *, ended_at: list[datetime]) -> list[tuple[str, object]]:
    """One login request, session and one-time code per end in ``ended_at``."""
    user = make_user()
    await store.users.add(user)
    made: list[tuple[str, object]] = []
    for end in ended_at:
        request = make_login_request(expires_at=end, created_at=end - timedelta(minutes=2))
        await store.login_requests.create(request)
        session = make_session(user.id, expires_at=end, created_at=end - timedelta(hours=1))
        await store.sessions.create(session)
        code = make_code(expires_at=end, created_at=end - timedelta(minutes=1))
        await store.one_time_codes.add(code)
        made += [("request", request.id), ("session", session.id), ("code", code.code_hash)]
    return made


async def _exists(store: Store, kind: str, key: object) -> bool:
    if kind == "code":
        assert isinstance(key, bytes)
        return await store.one_time_codes.redeem(key, "handoff", T0 - 10 * KEEP_ENDED) is not None
    try:
        if kind == "request":
            await store.login_requests.get(key)  # type: ignore[arg-type]
        else:
            await store.sessions.get(SessionId(str(key)))
    except NotFound:
        return False
    return True


async def test_a_sweep_deletes_what_ended_over_a_day_ago_and_keeps_the_rest(
    ctx: AuthzContext,
) -> None:
    old = await _rows(ctx.store, ended_at=[DAY_AGO - SECOND, DAY_AGO])
    recent = await _rows(ctx.store, ended_at=[DAY_AGO + SECOND, T0 - SECOND, T0 + SECOND])
    await ctx.store.rate_counts.add("login", "k", T0 - timedelta(hours=1, seconds=1), 1)
    await ctx.store.rate_counts.add("login", "k", T0 - timedelta(minutes=1), 1)
    assert await sweep(ctx) == Swept(login_requests=2, sessions=2, codes=2, rate_windows=1)
    for kind, key in old:
        assert not await _exists(ctx.store, kind, key), kind
    for kind, key in recent:
        assert await _exists(ctx.store, kind, key), kind
    assert await ctx.store.rate_counts.get("login", "k", T0 - timedelta(minutes=1)) == 1
    assert await sweep(ctx) == Swept(0, 0, 0)  # nothing left to do


async def test_an_ended_session_outlives_its_listing_to_the_gateways(
    ctx: AuthzContext, clock: Clock
) -> None:
    # With feed_max_stale longer than a day, ended sessions are listed to the gateways for
    # longer too (authz.snapshots): the sweep must not delete them from under that listing.
    settings = ctx.settings.model_copy(update={"feed_max_stale": 3 * 86400})
    long_ctx = replace(ctx, settings=settings)
    assert kept_for(long_ctx) == timedelta(days=3, minutes=1, hours=1)
    assert kept_for(ctx) == KEEP_ENDED
    listed = await _rows(ctx.store, ended_at=[T0 - timedelta(days=2)])
    assert await sweep(long_ctx) == Swept(0, 0, 0)
    for kind, key in listed:
        assert await _exists(ctx.store, kind, key), kind
    clock.now = T0 + timedelta(days=2)
    assert (await sweep(long_ctx)).total == 3


async def test_authz_sweeps_by_itself_and_logs_what_it_deleted(
    ctx: AuthzContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lychgate.authz.housekeeping")
    old = await _rows(ctx.store, ended_at=[DAY_AGO - SECOND])
    app = create_app(ctx, poll_interval=0.05, first_sweep_after=0)
    async with app.router.lifespan_context(app), asyncio.timeout(10):
        while "deleted 1 login requests, 1 sessions and 1 one-time codes" not in caplog.text:
            await asyncio.sleep(0.01)
    for kind, key in old:
        assert not await _exists(ctx.store, kind, key), kind


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (StoreError("connection refused"), "housekeeping: the store failed (connection refused)"),
        (RuntimeError("a bug"), "housekeeping: the sweep failed"),  # not the end of sweeping
    ],
)
async def test_a_failed_sweep_is_logged_and_tried_again(
    ctx: AuthzContext, caplog: pytest.LogCaptureFixture, error: Exception, said: str
) -> None:
    flaky = FlakyStore(ctx.store)
    flaky.fail("sessions", "delete_expired", lambda: error)
    old = await _rows(ctx.store, ended_at=[DAY_AGO - SECOND])
    task = asyncio.create_task(
        housekeeping.run(replace(ctx, store=flaky.store), every=0.01, first_after=0)
    )
    try:
        async with asyncio.timeout(10):
            while caplog.text.count(said) < 2:
                await asyncio.sleep(0.01)
            flaky.store.sessions = ctx.store.sessions  # the database is back
            while await _exists(ctx.store, "session", old[1][1]):
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
