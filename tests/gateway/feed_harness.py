"""The config feed's test harness: snapshots and a running FeedClient (FakeAuthz: conftest)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable

from gateway.fake_authz import FakeAuthz
from gateway.waiting import PATIENCE, eventually
from gateway.world import World
from lychgate.gateway.feed import FeedClient
from lychgate.gateway.snapshot import ConfigSnapshot, SnapshotHolder
from lychgate.ids import SessionId
from lychgate.secret import Secret

WORLD = World("single-host")


def version(serial: int, *revoked: str) -> ConfigSnapshot:
    return WORLD.changed(serial=serial, revoked_sessions=frozenset(map(SessionId, revoked)))


def serial_of(holder: SnapshotHolder) -> int | None:
    return None if holder.current is None else holder.current.serial


def kinds(lines: list[bytes]) -> list[str]:
    """The ``type`` of each feed line."""
    return [json.loads(line)["type"] for line in lines]


async def push_and_apply(
    server: FakeAuthz, holder: SnapshotHolder, line: bytes, serial: int
) -> ConfigSnapshot:
    """Send ``line`` on the open feed and wait until ``holder`` holds ``serial``.

    How fast a change is applied (the issue's second) is measured by the feed benchmark, not
    here: a loaded test machine would make a bound on wall-clock time flake."""
    server.push(line)
    await eventually(lambda: serial_of(holder) == serial)
    assert holder.current is not None
    return holder.current


class Running:
    """A FeedClient running in a task, stopped and awaited at the end."""

    def __init__(self, client: FeedClient) -> None:
        self.client = client
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> FeedClient:
        self.task = asyncio.create_task(self.client.run())
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        self.client.stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, PATIENCE)


def client_for(
    server: FakeAuthz,
    base: str,
    holder: SnapshotHolder,
    hurry: Callable[[], bool] = lambda: False,
    **kw: float,
) -> FeedClient:
    options = {"initial_backoff": 0.02, "max_backoff": 0.1} | kw
    return FeedClient(base, Secret(server.secret), holder, hurry=hurry, **options)


@contextlib.asynccontextmanager
async def following(
    feed: tuple[FakeAuthz, str],
) -> AsyncIterator[tuple[FakeAuthz, SnapshotHolder, FeedClient]]:
    """A FeedClient running against ``feed`` (the ``feed_authz`` fixture), once it holds
    the greeting's snapshot 1: (the server, the holder, the client)."""
    server, base = feed
    holder = SnapshotHolder()
    async with Running(client_for(server, base, holder)) as client:
        await eventually(lambda: serial_of(holder) == 1)
        yield server, holder, client
