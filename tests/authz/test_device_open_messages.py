"""Whether ``open`` reached a browser: the device hears if a portal page of the session got it.

An ``OpenApp`` that no portal page listens for is lost; ``lychgate device open`` said
"opening" all the same. The answer's ``delivered`` says whether a page was listening: absent
when authz cannot tell (pages may listen on another replica, over PostgreSQL).
"""

from __future__ import annotations

import asyncio
import json
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import timedelta

import httpx
from fastapi import FastAPI

from authz.conftest import Clock, internal_client
from authz.device_fixtures import DeviceKey, SignedClient, browser_session, enroll_key
from authz.login_fixtures import browser_for
from authz.test_device_apps import add_apps
from lychgate.authz.app import create_app
from lychgate.authz.context import AuthzContext
from lychgate.authz.portal.listeners import Listeners, listeners_of
from lychgate.domain import Session
from lychgate.events import Event, InProcessBus, SessionRevoked, Subscription
from lychgate.ids import SessionId

EVENTS = "/.lychgate/api/v1/session/events"
OPENED = {"type": "open", "url": "http://localhost:8080/.lychgate/start?app=wiki&rd=/"}
SIGNED_OUT = {"type": "signed_out"}


async def open_wiki(client: httpx.AsyncClient, clock: Clock, who: DeviceKey) -> dict[str, object]:
    r = await SignedClient(client, clock, who).post("/open", {"slug": "wiki"})
    assert r.status_code == 200, r.text
    answer: dict[str, object] = r.json()
    return answer


async def listening(listeners: Listeners, session: Session) -> None:
    """Until a portal page of ``session`` is subscribed (and counted)."""
    async with asyncio.timeout(5):
        while not listeners.listens(session.id):
            await asyncio.sleep(0.005)


async def frames_until_signed_out(
    ctx: AuthzContext, session: Session, page: asyncio.Task[httpx.Response]
) -> list[object]:
    await ctx.bus.publish(SessionRevoked(session_id=session.id, user_id=session.user_id))
    r = await page
    return [json.loads(f[len("data: ") :]) for f in r.text.split("\n\n") if f.startswith("data")]


async def test_no_portal_page_listening_is_not_delivered(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    await add_apps(ctx)
    who = await enroll_key(ctx)
    await browser_session(ctx, who)
    assert await open_wiki(client, clock, who) == {
        "status": "sent",
        "slug": "wiki",
        "delivered": False,
    }


async def test_a_listening_portal_page_gets_it_and_the_device_hears_so(
    ctx: AuthzContext, authz: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    await add_apps(ctx)
    who = await enroll_key(ctx)
    session = await browser_session(ctx, who)
    listeners = listeners_of(authz.state)
    async with browser_for(authz, ctx.settings.public_url) as browser, asyncio.TaskGroup() as tg:
        browser.cookies.set("lychgate_session", session.id)
        page = tg.create_task(browser.get(EVENTS))
        await listening(listeners, session)
        assert (await open_wiki(client, clock, who))["delivered"] is True
        assert await frames_until_signed_out(ctx, session, page) == [OPENED, SIGNED_OUT]
    assert not listeners.listens(session.id)  # the count ends with the stream


async def test_a_listening_older_browser_is_chosen_over_the_newest(
    ctx: AuthzContext, authz: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    await add_apps(ctx)
    who = await enroll_key(ctx)
    older = await browser_session(ctx, who, age=timedelta(hours=1))
    await browser_session(ctx, who)  # the newest: no portal page open
    async with browser_for(authz, ctx.settings.public_url) as browser, asyncio.TaskGroup() as tg:
        browser.cookies.set("lychgate_session", older.id)
        page = tg.create_task(browser.get(EVENTS))
        await listening(listeners_of(authz.state), older)
        assert (await open_wiki(client, clock, who))["delivered"] is True
        assert await frames_until_signed_out(ctx, older, page) == [OPENED, SIGNED_OUT]


class SharedBus:
    """A bus other replicas share, as PostgreSQL's is: a page may listen elsewhere."""

    def __init__(self, inner: InProcessBus) -> None:
        self._inner = inner

    async def publish(self, event: Event) -> None:
        await self._inner.publish(event)

    def subscribe(self) -> AbstractAsyncContextManager[Subscription]:
        return self._inner.subscribe()

    def end_subscriptions(self) -> None:
        self._inner.end_subscriptions()

    async def close(self) -> None:
        await self._inner.close()


async def test_on_a_shared_bus_no_page_here_is_unknown(ctx: AuthzContext, clock: Clock) -> None:
    assert isinstance(ctx.bus, InProcessBus)
    here = replace(ctx, bus=SharedBus(ctx.bus))
    await add_apps(here)
    who = await enroll_key(here)
    await browser_session(here, who)
    authz = create_app(here, poll_interval=0.05)
    async with authz.router.lifespan_context(authz), internal_client(authz, here) as client:
        answer = await open_wiki(client, clock, who)
    assert answer == {"status": "sent", "slug": "wiki"}  # no "delivered": the device says "opening"


async def test_a_page_counted_here_is_delivered_whatever_the_bus(ctx: AuthzContext) -> None:
    assert isinstance(ctx.bus, InProcessBus)
    listeners, shared, sid = Listeners(), SharedBus(ctx.bus), SessionId("ses_x")
    with listeners.listening(sid):
        assert listeners.delivery(sid, shared) is True
        assert listeners.delivery(sid, ctx.bus) is True
    assert listeners.delivery(sid, shared) is None
    assert listeners.delivery(sid, ctx.bus) is False
