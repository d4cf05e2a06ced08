"""Fixtures for the event bus suite: one bus factory, parametrized over both implementations.

The PostgreSQL server comes from ``LYCHGATE_TEST_PG_URL``, read here (not from the shared store
fixtures) so that this suite does not depend on their timing. Without it, the PostgreSQL cases
skip loudly rather than pass vacuously.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from blockbuster import BlockBuster

from events.helpers import TEST_BACKOFF, BusFactory, PgBuses, unique_channel
from events.tcp_proxy import TcpProxy
from lychgate.events import EventBus, InProcessBus, PostgresBus

PG_ENV = "LYCHGATE_TEST_PG_URL"


@pytest.fixture(autouse=True)
def asyncpg_may_read_its_config_files(blockbuster: BlockBuster) -> None:
    """Let asyncpg's ``connect`` read its client files on the loop, and nothing else block.

    When asyncpg parses connection arguments it looks for ``~/.pgpass`` and, for the default
    ``sslmode=prefer``, ``~/.postgresql/*`` (certificates, key, CRL), all synchronously; there is
    no async variant. It happens once per new connection (start-up, pool growth, reconnects),
    never per event. The exemption names that one asyncpg function (and so what it calls), so
    any other blocking call in the bus still fails the test.
    """
    for name, function in blockbuster.functions.items():
        if name.startswith(("os.", "io.")):
            function.can_block_in("asyncpg/connect_utils.py", "_parse_connect_dsn_and_args")


@pytest.fixture
def events_pg_url() -> str:
    """The PostgreSQL URL for these tests; skips the test when none is configured."""
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"PostgreSQL event bus tests need a server: set {PG_ENV}=postgresql://...")
    return url


def make_pg_factory(url: str) -> BusFactory:
    """A factory of :class:`PostgresBus` instances on one fresh channel."""
    channel = unique_channel()

    async def make(queue_size: int) -> EventBus:
        return await PostgresBus.connect(
            url, channel=channel, queue_size=queue_size, backoff=TEST_BACKOFF
        )

    return BusFactory("postgres", make)


@pytest.fixture(
    params=[
        pytest.param("inprocess"),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
async def bus_factory(request: pytest.FixtureRequest) -> AsyncIterator[BusFactory]:
    """A :class:`BusFactory` for each implementation; the shared suite runs once per kind."""
    if request.param == "postgres":
        factory = make_pg_factory(request.getfixturevalue("events_pg_url"))
    else:

        async def make(queue_size: int) -> EventBus:
            return InProcessBus(queue_size=queue_size)

        factory = BusFactory("inprocess", make)
    try:
        yield factory
    finally:
        await factory.close_all()


@pytest.fixture
async def pg_buses(events_pg_url: str) -> AsyncIterator[PgBuses]:
    """PostgreSQL replicas sharing a channel; every one is closed when the test ends."""
    buses = PgBuses(events_pg_url)
    try:
        yield buses
    finally:
        await buses.close_all()


@pytest.fixture
async def pg_proxy(events_pg_url: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    """A :class:`TcpProxy` in front of the test server, and the database URL through it."""
    parts = urlsplit(events_pg_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    netloc = f"{parts.username or 'postgres'}@127.0.0.1:{proxy.port}"
    if parts.password:
        netloc = f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"
    try:
        yield proxy, urlunsplit(parts._replace(netloc=netloc))
    finally:
        await proxy.close()


@pytest.fixture
async def pg_admin(events_pg_url: str) -> AsyncIterator[Any]:
    """A plain asyncpg connection for the test's own NOTIFYs and pg_terminate_backend()."""
    conn = await asyncpg.connect(events_pg_url.replace("+asyncpg", ""))
    try:
        yield conn
    finally:
        await conn.close()
