"""Rate limits shared by authz replicas (lychgate.authz.ratelimit.SharedLimit).

Two limits over one store stand for two replicas behind a load balancer: on PostgreSQL they
allow the limit once between them, not once each; on SQLite (one authz process) each counts
alone. The estimate slides over fixed windows, and a refusal says when to come back.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from authz.conftest import Clock
from authz.outage import FlakyStore
from lychgate.authz.app import create_app
from lychgate.authz.context import AuthzContext
from lychgate.authz.ratelimit import RateLimiter, SharedLimit, shared_retry_after
from lychgate.errors import RateLimited, StoreError
from lychgate.store import Store

MINUTE_START = datetime.fromisoformat("2030-01-02T03:04:00+00:00")
API = "/.lychgate/api/v1/login"


def _replica(store: Store, clock: Clock, limit: int = 5) -> SharedLimit:
    # The local count on the same clock as the shared one (the test moves it).
    local = RateLimiter(limit=limit, window=60, clock=lambda: clock.now.timestamp(), what="tries")
    return SharedLimit(local, store.rate_counts, scope="test", clock=clock)


async def _allowed(limit: SharedLimit, key: str, tries: int) -> int:
    allowed = 0
    for _ in range(tries):
        try:
            await limit.hit(key)
        except RateLimited:
            continue
        allowed += 1
    return allowed


async def test_two_replicas_allow_the_limit_once_between_them(store: Store) -> None:
    clock = Clock(MINUTE_START)
    a, b = _replica(store, clock), _replica(store, clock)
    assert await _allowed(a, "ip", 3) == 3
    assert await _allowed(b, "ip", 3) == 2  # 5 in all; b's own count would allow 5
    with pytest.raises(RateLimited) as refused:
        await a.hit("ip")
    # 6 counted in this window: into the next one, until 5 x (1 - e) + 1 <= 5 (e = 1/5).
    assert refused.value.retry_after == 72
    assert await _allowed(b, "another-ip", 5) == 5  # per key
    assert await store.rate_counts.get("test", _key("ip"), MINUTE_START) == 5  # refusals uncounted


async def test_the_estimate_slides_out_of_the_previous_window(store: Store) -> None:
    clock = Clock(MINUTE_START)
    assert await _allowed(_replica(store, clock), "ip", 5) == 5
    clock.now = MINUTE_START + timedelta(seconds=90)  # half-way through the next window
    later = _replica(store, clock)  # a fresh local count: the shared one decides
    assert await _allowed(later, "ip", 2) == 2  # 5 x 1/2 + 2 = 4.5 <= 5
    with pytest.raises(RateLimited) as refused:
        await later.hit("ip")  # 2.5 + 3 = 5.5
    # One more fits once 5 x (1 - e) + 3 <= 5, at e = 0.6: 6 s from now.
    assert refused.value.retry_after == 6
    clock.now += timedelta(seconds=6)
    await later.hit("ip")


async def test_a_refund_takes_the_event_back_everywhere(store: Store) -> None:
    clock = Clock(MINUTE_START)
    a, b = _replica(store, clock, limit=2), _replica(store, clock, limit=2)
    await a.hit("ip")
    await a.refund("ip")  # it succeeded: only failures count
    await a.hit("ip")
    await b.hit("ip")
    with pytest.raises(RateLimited):
        await b.hit("ip")


async def test_a_store_failure_fails_closed_and_counts_nothing(store: Store) -> None:
    flaky = FlakyStore(store)
    flaky.fail("rate_counts", "add", lambda: StoreError("connection refused"))
    clock = Clock(MINUTE_START)
    local = RateLimiter(limit=1, window=60, clock=lambda: 0.0, what="tries")
    broken = SharedLimit(local, flaky.store.rate_counts, scope="test", clock=clock)
    with pytest.raises(StoreError):
        await broken.hit("ip")
    back = SharedLimit(local, store.rate_counts, scope="test", clock=clock)  # the database is back
    await back.hit("ip")  # the failed try left nothing counted, here or there
    with pytest.raises(RateLimited):
        await back.hit("ip")


async def test_a_refund_the_store_fails_is_logged_and_the_success_stands(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = FlakyStore(store)
    flaky.fail("rate_counts", "add", lambda: StoreError("connection refused"))
    clock = Clock(MINUTE_START)
    local = RateLimiter(limit=1, window=60, clock=lambda: 0.0, what="tries")
    await SharedLimit(local, store.rate_counts, scope="enroll", clock=clock).hit("ip")
    # The database fails after the enrollment it counted succeeded: no 503 for that.
    await SharedLimit(local, flaky.store.rate_counts, scope="enroll", clock=clock).refund("ip")
    assert "rate limit 'enroll': could not take back an event: connection refused" in caplog.text


@pytest.mark.parametrize(
    ("previous", "current", "elapsed", "seconds"),
    [
        (5, 3, 0.5, 6),  # later in this window
        (0, 6, 0.0, 72),  # the next window, and 1/5 of it: 5 x 4/5 + 1 <= 5
        (0, 6, 0.9, 18),
        (10, 6, 0.99, 13),  # this window is full already: into the next, as if none before
        (5, 1, 0.999, 1),  # never under a second
    ],
)
def test_retry_after(previous: int, current: int, elapsed: float, seconds: int) -> None:
    assert shared_retry_after(previous, current, 5, elapsed, 60) == seconds


async def test_login_requests_are_limited_across_replicas_on_postgresql(
    ctx: AuthzContext, clock: Clock
) -> None:
    # Two authz apps over one database, as two replicas: a client that alternates between
    # them gets the limit (20 a minute) once on PostgreSQL, and once at each on SQLite.
    clock.now = MINUTE_START
    a, b = create_app(ctx, poll_interval=60), create_app(ctx, poll_interval=60)
    async with a.router.lifespan_context(a), b.router.lifespan_context(b):
        statuses = [await _login((a, b)[i % 2], ctx) for i in range(41)]
    if ctx.store.backend == "postgresql":
        assert statuses == [201] * 20 + [429] * 21
    else:
        assert statuses == [201] * 40 + [429]


async def _login(app: FastAPI, ctx: AuthzContext) -> int:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url=ctx.settings.public_url) as c:
        r = await c.post(API, json={}, headers={"x-forwarded-for": "198.51.100.7"})
        return r.status_code


def _key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class CountingCounts:
    """An in-memory RateCounts that counts the round trips made to it."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, datetime], int] = {}
        self.calls = 0

    async def add(self, scope: str, key: str, window_start: datetime, step: int) -> int:
        self.calls += 1
        row = (scope, key, window_start)
        self.rows[row] = max(self.rows.get(row, 0) + step, 0)
        return self.rows[row]

    async def get(self, scope: str, key: str, window_start: datetime) -> int:
        self.calls += 1
        return self.rows.get((scope, key, window_start), 0)

    async def delete_before(self, before: datetime) -> int:
        return 0


async def test_a_sustained_flood_is_refused_in_memory_not_in_the_database() -> None:
    # Refusals by the shared count used to be taken back in memory too, so after the first
    # minute every request of a flood cost three database round trips.
    seconds = [0.0]
    clock = Clock(MINUTE_START)
    counts = CountingCounts()
    local = RateLimiter(limit=20, window=60, clock=lambda: seconds[0], what="logins")
    limit = SharedLimit(local, counts, scope="login", clock=clock)
    per_minute: list[tuple[int, int]] = []  # (allowed, round trips), minute by minute
    for _minute in range(6):
        calls, allowed = counts.calls, 0
        for _ in range(3000):  # 50 a second
            seconds[0] += 0.02
            clock.now += timedelta(seconds=0.02)
            allowed += await _allowed(limit, "ip", 1)
        per_minute.append((allowed, counts.calls - calls))
    for allowed, trips in per_minute:  # seen: 20 then 19 a minute, 40 then 95 round trips
        assert 15 <= allowed <= 20  # the limit holds, and is not halved by the flood
        # Two round trips per event counted, three per refusal, and a refusal holds until its
        # Retry-After: about a hundred a minute, where every request made three (9,000).
        assert trips <= 5 * 20
