"""Session lookup (cookie -> live session -> user) and the portal's event stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from authz.conftest import Clock
from authz.login_fixtures import Person, browser, enrolled, sign_in
from fixtures.store import T0, make_session
from lychgate.authz.context import AuthzContext
from lychgate.authz.portal.events import session_events
from lychgate.authz.portal.listeners import Listeners
from lychgate.authz.portal.session import is_live, load_live
from lychgate.events import InProcessBus, OpenApp, SessionRevoked
from lychgate.ids import SessionId, session_handle

__all__ = ["browser"]

PORTAL = "/.lychgate/"
ORIGINS = frozenset({"http://localhost:8080"})
IDLE = timedelta(hours=2)


@pytest.fixture
async def ada(ctx: AuthzContext, browser: httpx.AsyncClient) -> Person:
    person = await enrolled(ctx, name="Ada")
    await sign_in(ctx, browser, person)
    return person


def sid_of(client: httpx.AsyncClient) -> SessionId:
    return SessionId(client.cookies["lychgate_session"])


def test_liveness_is_a_pure_function() -> None:
    session = make_session("u", last_seen_at=T0)  # type: ignore[arg-type]
    assert is_live(session, T0, IDLE)
    assert is_live(session, T0 + IDLE - timedelta(seconds=1), IDLE)
    assert not is_live(session, T0 + IDLE, IDLE)  # idle too long
    assert not is_live(session, session.expires_at, timedelta(days=9))  # expired
    assert not is_live(make_session("u", revoked=True), T0, IDLE)  # type: ignore[arg-type]


def test_handles_are_stable_and_reveal_nothing() -> None:
    handle = session_handle(SessionId("ses_abc"))
    assert handle == session_handle(SessionId("ses_abc"))
    assert handle != session_handle(SessionId("ses_abd"))
    assert "abc" not in handle
    assert len(handle) == 22


async def test_an_idle_session_is_dead(
    ctx: AuthzContext, browser: httpx.AsyncClient, clock: Clock, ada: Person
) -> None:
    clock.now = T0 + timedelta(seconds=ctx.settings.session_idle_ttl - 1)
    assert (await browser.get(PORTAL)).status_code == 200
    clock.now += timedelta(seconds=ctx.settings.session_idle_ttl)
    assert (await browser.get(PORTAL)).status_code == 303


async def test_an_expired_session_is_dead(
    ctx: AuthzContext, browser: httpx.AsyncClient, clock: Clock, ada: Person
) -> None:
    step = timedelta(seconds=ctx.settings.session_idle_ttl // 2)
    while clock.now + step < T0 + timedelta(seconds=ctx.settings.session_ttl):
        clock.now += step
        assert (await browser.get(PORTAL)).status_code == 200  # each visit keeps it alive
    clock.now = T0 + timedelta(seconds=ctx.settings.session_ttl)
    assert (await browser.get(PORTAL)).status_code == 303


async def test_visits_touch_the_session_at_most_once_a_minute(
    ctx: AuthzContext, browser: httpx.AsyncClient, clock: Clock, ada: Person
) -> None:
    sid = sid_of(browser)
    clock.now = T0 + timedelta(seconds=59)
    await browser.get(PORTAL)
    assert (await ctx.store.sessions.get(sid)).last_seen_at == T0
    clock.now = T0 + timedelta(seconds=60)
    await browser.get(PORTAL)
    assert (await ctx.store.sessions.get(sid)).last_seen_at == clock.now
    assert await load_live(ctx, sid, touch=False) is not None


async def test_a_disabled_user_is_signed_out(
    ctx: AuthzContext, browser: httpx.AsyncClient, ada: Person
) -> None:
    await ctx.store.users.update(ada.user.id, disabled=True)
    assert (await browser.get(PORTAL)).status_code == 303


@pytest.mark.parametrize("value", ["", "garbage", "x" * 5000, "ses_unknown", "a b", "%00"])
async def test_bad_cookies_are_no_session(
    ctx: AuthzContext, browser: httpx.AsyncClient, value: str
) -> None:
    r = await browser.get(PORTAL, headers={"cookie": f"lychgate_session={value}"})
    assert r.status_code == 303


async def test_two_live_sessions_in_one_cookie_header_are_ambiguous(
    ctx: AuthzContext, browser: httpx.AsyncClient, ada: Person
) -> None:
    """Cookie tossing (SECURITY.md item 5): a planted second valid session is not chosen."""
    mine = sid_of(browser)
    planted = make_session(ada.user.id)
    await ctx.store.sessions.create(planted)
    both = f"lychgate_session={planted.id}; lychgate_session={mine}"
    assert (await browser.get(PORTAL, headers={"cookie": both})).status_code == 303
    garbage = f"lychgate_session=junk; lychgate_session={mine}"
    assert (await browser.get(PORTAL, headers={"cookie": garbage})).status_code == 200


# -- the portal's event stream -----------------------------------------------------------------


async def next_frame(stream: AsyncIterator[str], timeout: float = 2.0) -> str:
    return await asyncio.wait_for(anext(stream), timeout)


def data_of(frame: str) -> dict[str, str]:
    value: dict[str, str] = json.loads(frame.split("data: ", 1)[1])
    return value


async def test_open_events_for_this_session_reach_the_page(
    ctx: AuthzContext, browser: httpx.AsyncClient, ada: Person
) -> None:
    sid = sid_of(browser)
    stream = session_events(ctx, sid, origins=lambda: ORIGINS, listeners=Listeners(), heartbeat=60)
    assert await next_frame(stream) == "retry: 3000\n\n"
    url = "http://localhost:8080/.lychgate/start?app=wiki&rd=/"
    await ctx.bus.publish(OpenApp(session_id=SessionId("ses_someone_else"), url=url))
    await ctx.bus.publish(OpenApp(session_id=sid, url="https://evil.example/steal"))
    await ctx.bus.publish(OpenApp(session_id=sid, url="javascript:alert(1)"))
    await ctx.bus.publish(OpenApp(session_id=sid, url=url))
    frame = await next_frame(stream)
    assert data_of(frame) == {"type": "open", "url": url}
    await stream.aclose()


async def test_a_revocation_ends_the_stream(
    ctx: AuthzContext, browser: httpx.AsyncClient, ada: Person
) -> None:
    sid = sid_of(browser)
    stream = session_events(ctx, sid, origins=lambda: ORIGINS, listeners=Listeners(), heartbeat=60)
    await next_frame(stream)
    await ctx.bus.publish(SessionRevoked(session_id=SessionId("ses_other"), user_id=ada.user.id))
    await ctx.bus.publish(SessionRevoked(session_id=sid, user_id=ada.user.id))
    assert data_of(await next_frame(stream)) == {"type": "signed_out"}
    with pytest.raises(StopAsyncIteration):
        await next_frame(stream)


async def test_heartbeats_recheck_the_session(
    ctx: AuthzContext, browser: httpx.AsyncClient, ada: Person
) -> None:
    sid = sid_of(browser)
    stream = session_events(
        ctx, sid, origins=lambda: ORIGINS, listeners=Listeners(), heartbeat=0.02
    )
    await next_frame(stream)
    assert await next_frame(stream) == ": alive\n\n"
    await ctx.store.sessions.revoke(sid, ctx.clock())  # elsewhere, with no event here
    frame = await next_frame(stream)
    while frame.startswith(":"):
        frame = await next_frame(stream)
    assert data_of(frame) == {"type": "signed_out"}


async def test_the_route_streams_open_events(
    ctx: AuthzContext, browser: httpx.AsyncClient, ada: Person
) -> None:
    sid = sid_of(browser)
    url = "http://localhost:8080/.lychgate/start?app=notes&rd=/x"
    bus = ctx.bus
    assert isinstance(bus, InProcessBus)
    listeners = bus.subscriber_count
    async with asyncio.TaskGroup() as group:
        response = group.create_task(browser.get("/.lychgate/api/v1/session/events"))
        async with asyncio.timeout(5):
            while bus.subscriber_count == listeners:  # the stream is listening from here on
                await asyncio.sleep(0.005)
        await ctx.bus.publish(OpenApp(session_id=sid, url=url))
        await ctx.bus.publish(SessionRevoked(session_id=sid, user_id=ada.user.id))
    r = response.result()
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [data_of(f) for f in r.text.split("\n\n") if f.startswith("data: ")]
    assert events == [{"type": "open", "url": url}, {"type": "signed_out"}]
