"""The login status stream (SSE): the generator itself, the route, and real streaming."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from authz.conftest import Clock
from authz.login_fixtures import API, Person, approve, browser, browser_for, deny, enrolled, start
from fixtures.store import T0
from lychgate.authz.context import AuthzContext
from lychgate.authz.login.events import login_status_events
from lychgate.ids import LoginRequestId

__all__ = ["browser"]


def statuses(frames: list[str]) -> list[str]:
    return [
        json.loads(f.split("data: ", 1)[1])["status"] for f in frames if f.startswith("event: ")
    ]


async def next_frame(stream: AsyncIterator[str], timeout: float = 2.0) -> str:
    return await asyncio.wait_for(anext(stream), timeout)


async def until_status(stream: AsyncIterator[str]) -> str:
    """Skip retry and heartbeat frames; return the next status."""
    while True:
        frame = await next_frame(stream)
        if frame.startswith("event: status\n"):
            status: str = json.loads(frame.split("data: ", 1)[1])["status"]
            return status


@pytest.fixture
async def waiting(ctx: AuthzContext, browser: httpx.AsyncClient) -> tuple[str, Person]:
    person = await enrolled(ctx)
    return (await start(browser))["id"], person


async def test_an_approval_on_the_bus_wakes_the_stream(
    ctx: AuthzContext, waiting: tuple[str, Person]
) -> None:
    login_id, person = waiting
    # A long poll interval: only the bus can wake the stream within the test's timeout.
    stream = login_status_events(ctx, LoginRequestId(login_id), poll=60)
    assert await next_frame(stream) == "retry: 3000\n\n"
    assert await next_frame(stream) == 'event: status\ndata: {"status":"pending"}\n\n'
    await approve(ctx, login_id, person)
    assert await next_frame(stream) == 'event: status\ndata: {"status":"approved"}\n\n'
    with pytest.raises(StopAsyncIteration):
        await next_frame(stream)  # approved ends the stream: the browser finishes now


async def test_without_the_bus_the_store_is_polled(
    ctx: AuthzContext, waiting: tuple[str, Person]
) -> None:
    login_id, person = waiting
    stream = login_status_events(ctx, LoginRequestId(login_id), poll=0.02)
    assert await until_status(stream) == "pending"
    # Approved by another process: the store changes, nothing is published here.
    lid = LoginRequestId(login_id)
    ok = await ctx.store.login_requests.approve(
        lid, user_id=person.user.id, device_id=person.device.id, now=T0
    )
    assert ok
    assert await until_status(stream) == "approved"


async def test_events_for_other_requests_change_nothing(
    ctx: AuthzContext, browser: httpx.AsyncClient, waiting: tuple[str, Person]
) -> None:
    login_id, person = waiting
    other = (await start(browser))["id"]
    stream = login_status_events(ctx, LoginRequestId(login_id), poll=60)
    assert await until_status(stream) == "pending"
    await approve(ctx, other, person)
    with pytest.raises(TimeoutError):
        await next_frame(stream, timeout=0.2)
    await stream.aclose()


@pytest.mark.parametrize("ending", ["denied", "expired"])
async def test_a_final_state_ends_the_stream(
    ctx: AuthzContext, clock: Clock, waiting: tuple[str, Person], ending: str
) -> None:
    login_id, _ = waiting
    stream = login_status_events(ctx, LoginRequestId(login_id), poll=0.02)
    assert await until_status(stream) == "pending"
    if ending == "denied":
        await deny(ctx, login_id)
    else:
        clock.now = T0 + timedelta(seconds=ctx.settings.login_request_ttl)
    assert await until_status(stream) == ending
    with pytest.raises(StopAsyncIteration):
        await next_frame(stream)


async def test_a_quiet_stream_sends_heartbeats(
    ctx: AuthzContext, waiting: tuple[str, Person]
) -> None:
    login_id, _ = waiting
    stream = login_status_events(ctx, LoginRequestId(login_id), poll=0.01, heartbeat=0.03)
    assert await until_status(stream) == "pending"
    assert await next_frame(stream) == ": waiting\n\n"
    await stream.aclose()


async def test_the_stream_ends_when_the_bus_closes(
    ctx: AuthzContext, waiting: tuple[str, Person]
) -> None:
    login_id, _ = waiting
    stream = login_status_events(ctx, LoginRequestId(login_id), poll=60)
    assert await until_status(stream) == "pending"
    await ctx.bus.close()
    with pytest.raises(StopAsyncIteration):
        await next_frame(stream)


async def test_the_route_streams_until_approval(
    ctx: AuthzContext, browser: httpx.AsyncClient, waiting: tuple[str, Person]
) -> None:
    login_id, person = waiting
    async with asyncio.TaskGroup() as group:
        # In process, httpx hands over the body only once the stream has ended.
        response = group.create_task(browser.get(f"{API}/{login_id}/events"))
        await asyncio.sleep(0.05)
        await approve(ctx, login_id, person)
    r = response.result()
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-accel-buffering"] == "no"
    frames = [f + "\n\n" for f in r.text.split("\n\n") if f]
    assert statuses(frames) == ["pending", "approved"]


@pytest.mark.loopback
async def test_events_reach_the_browser_unbuffered(
    ctx: AuthzContext, authz: FastAPI, tmp_path: Path
) -> None:
    """Over a real uvicorn: the first event arrives while the request is still pending."""
    socket_path = tmp_path / "authz.sock"
    config = uvicorn.Config(
        authz, uds=str(socket_path), lifespan="off", log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    person = await enrolled(ctx)
    async with asyncio.TaskGroup() as group:
        serving = group.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        transport = httpx.AsyncHTTPTransport(uds=str(socket_path))
        async with httpx.AsyncClient(transport=transport, base_url=ctx.settings.public_url) as c:
            login_id = (await start(c))["id"]
            seen: list[str] = []
            async with c.stream("GET", f"{API}/{login_id}/events") as r:
                assert r.status_code == 200
                lines = r.aiter_lines()
                while not seen:
                    line = await asyncio.wait_for(anext(lines), 2)
                    if line.startswith("data: "):
                        seen.append(json.loads(line[6:])["status"])
                await approve(ctx, login_id, person)
                async for line in lines:
                    if line.startswith("data: "):
                        seen.append(json.loads(line[6:])["status"])
            assert seen == ["pending", "approved"]
        server.should_exit = True
        await serving


async def test_two_browsers_wait_independently(
    ctx: AuthzContext, authz: FastAPI, waiting: tuple[str, Person]
) -> None:
    login_id, person = waiting
    async with browser_for(authz, ctx.settings.public_url) as second:
        other_id = (await start(second))["id"]
        mine = login_status_events(ctx, LoginRequestId(login_id), poll=60)
        theirs = login_status_events(ctx, LoginRequestId(other_id), poll=60)
        assert await until_status(mine) == "pending"
        assert await until_status(theirs) == "pending"
        await approve(ctx, other_id, person)
        assert await until_status(theirs) == "approved"
        await deny(ctx, login_id)
        assert await until_status(mine) == "denied"
