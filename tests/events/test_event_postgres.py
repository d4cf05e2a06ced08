"""PostgreSQL-only behaviour: several replicas, bad notifications, and losing the connection."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from events.helpers import WAIT, PgBuses, next_item, unique_channel
from events.tcp_proxy import TcpProxy
from lychgate.errors import StoreError
from lychgate.events import (
    ConfigChanged,
    Lagged,
    LoginApproved,
    PostgresBus,
    encode,
    open_bus,
)
from lychgate.ids import DeviceId, LoginRequestId, UserId

pytestmark = pytest.mark.postgres

APPROVED = LoginApproved(LoginRequestId("lr_1"), UserId("u_1"), DeviceId("d_1"))


async def wait_until(predicate: Any, timeout: float = WAIT) -> None:
    """Poll ``predicate`` until it is true, failing the test after ``timeout``."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_a_replica_is_woken_by_a_publish_on_another(pg_buses: PgBuses) -> None:
    # Two buses = two authz replicas, each with its own listening and publishing connections.
    waiting_replica = await pg_buses.open()
    approving_replica = await pg_buses.open()
    assert waiting_replica.listener_pid != approving_replica.listener_pid
    async with waiting_replica.subscribe() as browser, approving_replica.subscribe() as local:
        await approving_replica.publish(APPROVED)
        assert await next_item(browser) == APPROVED
        # The publishing replica hears its own events too, like every other subscriber.
        assert await next_item(local) == APPROVED


async def test_buses_on_other_channels_do_not_hear_each_other(
    pg_buses: PgBuses, events_pg_url: str
) -> None:
    ours = await pg_buses.open()
    other = await PostgresBus.connect(events_pg_url, channel=pg_buses.channel + "_other")
    try:
        async with ours.subscribe() as sub:
            await other.publish(ConfigChanged("theirs"))
            await ours.publish(ConfigChanged("ours"))
            assert await next_item(sub) == ConfigChanged("ours")
    finally:
        await other.close()


async def test_bad_notifications_are_logged_and_dropped(
    pg_buses: PgBuses, pg_admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    bus = await pg_buses.open()
    bad = [
        "not json",
        '{"type":"user.deleted","data":{"user_id":"u_1"}}',  # a type from a newer replica?
        '{"type":"login.denied","data":{}}',
        "",
    ]
    with caplog.at_level(logging.WARNING, logger="lychgate.events"):
        async with bus.subscribe() as sub:
            for payload in bad:
                await pg_admin.execute("SELECT pg_notify($1, $2)", pg_buses.channel, payload)
            await pg_admin.execute("SELECT pg_notify($1, $2)", pg_buses.channel, encode(APPROVED))
            # The listener survived, and the good event is the first thing the subscriber sees.
            assert await next_item(sub) == APPROVED
    assert bus.bad_payloads == len(bad)
    dropped = [r for r in caplog.records if "dropped a bad event payload" in r.getMessage()]
    assert len(dropped) == len(bad)
    assert "unknown event type 'user.deleted'" in dropped[1].getMessage()


async def test_listener_reconnects_after_its_backend_is_terminated(
    pg_buses: PgBuses, pg_admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    replica = await pg_buses.open()
    other = await pg_buses.open()
    old_pid = replica.listener_pid
    assert old_pid is not None
    with caplog.at_level(logging.WARNING, logger="lychgate.events"):
        async with replica.subscribe() as sub:
            assert await pg_admin.fetchval("SELECT pg_terminate_backend($1)", old_pid)
            # Events sent while nobody listened are gone: the subscriber is told to resync,
            # once the bus listens again.
            assert await next_item(sub) == Lagged("reconnect")
            assert replica.listener_pid not in (None, old_pid)
            assert replica.reconnects == 1
            await other.publish(APPROVED)
            assert await next_item(sub) == APPROVED
    messages = [r.getMessage() for r in caplog.records]
    assert any("lost" in m for m in messages)
    assert any("reconnected" in m for m in messages)


async def test_reconnect_backs_off_while_the_database_is_unreachable(
    pg_buses: PgBuses, pg_proxy: tuple[TcpProxy, str], caplog: pytest.LogCaptureFixture
) -> None:
    proxy, proxied_url = pg_proxy
    replica = await pg_buses.open(proxied_url)
    other = await pg_buses.open()
    with caplog.at_level(logging.DEBUG, logger="lychgate.events"):
        async with replica.subscribe() as sub:
            proxy.mode = "refuse"
            proxy.cut_all()
            await wait_until(
                lambda: sum("reconnect attempt" in r.getMessage() for r in caplog.records) >= 3
            )
            assert replica.listener_pid is None
            proxy.mode = "forward"
            assert await next_item(sub) == Lagged("reconnect")
            await other.publish(APPROVED)
            assert await next_item(sub) == APPROVED
    # Each attempt was a warning: some twenty a minute through an outage. Now the first, and
    # then one per ten seconds.
    warned = [
        r
        for r in caplog.records
        if "reconnect attempt" in r.getMessage() and r.levelno == logging.WARNING
    ]
    assert len(warned) == 1


async def test_a_silently_dead_listener_is_caught_by_the_health_check(
    pg_buses: PgBuses, pg_proxy: tuple[TcpProxy, str]
) -> None:
    proxy, proxied_url = pg_proxy
    replica = await pg_buses.open(proxied_url, health_interval=0.2, connect_timeout=0.5)
    other = await pg_buses.open()
    async with replica.subscribe() as sub:
        # No FIN, no RST: bytes just stop flowing, as when a peer's host dies.
        proxy.mode = "blackhole"
        await wait_until(lambda: replica.listener_pid is None)
        proxy.mode = "forward"
        proxy.cut_all()  # the old, half-dead connections go; new ones get through
        assert await next_item(sub) == Lagged("reconnect")
        await other.publish(APPROVED)
        assert await next_item(sub) == APPROVED


async def test_close_while_reconnecting_is_prompt(
    pg_buses: PgBuses, pg_proxy: tuple[TcpProxy, str]
) -> None:
    proxy, proxied_url = pg_proxy
    replica = await pg_buses.open(proxied_url)
    async with replica.subscribe() as sub:
        proxy.mode = "refuse"
        proxy.cut_all()
        await wait_until(lambda: replica.listener_pid is None)
        async with asyncio.timeout(WAIT):
            await replica.close()
        assert sub.closed
        assert [item async for item in sub] == []


async def test_publish_fails_cleanly_when_the_database_is_gone(
    pg_buses: PgBuses, pg_proxy: tuple[TcpProxy, str]
) -> None:
    proxy, proxied_url = pg_proxy
    replica = await pg_buses.open(proxied_url)
    proxy.mode = "refuse"
    proxy.cut_all()
    with pytest.raises(StoreError, match="cannot publish"):
        async with asyncio.timeout(WAIT):
            await replica.publish(APPROVED)


async def test_open_bus_accepts_sqlalchemy_urls(events_pg_url: str) -> None:
    url = events_pg_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    bus = await open_bus(url, channel=unique_channel())
    try:
        assert isinstance(bus, PostgresBus)
        async with bus.subscribe() as sub:
            await bus.publish(APPROVED)
            assert await next_item(sub) == APPROVED
    finally:
        await bus.close()
