"""Choosing and configuring a bus from the database URL, with no database needed."""

from __future__ import annotations

import pytest

from lychgate.errors import ConfigError, StoreError
from lychgate.events import InProcessBus, PostgresBus, open_bus
from lychgate.events.postgres import Backoff, asyncpg_dsn


@pytest.mark.parametrize(
    "url",
    ["sqlite:///lychgate.db", "sqlite+aiosqlite:///data/lychgate.db", "SQLite+aiosqlite://"],
)
async def test_sqlite_gets_the_in_process_bus(url: str) -> None:
    bus = await open_bus(url)
    try:
        assert isinstance(bus, InProcessBus)
    finally:
        await bus.close()


@pytest.mark.parametrize(
    "url",
    ["mysql://root@db/x", "postgresql+psycopg://u@h/d", "lychgate.db", "", "sqlite:relative"],
)
async def test_other_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        await open_bus(url)
    assert info.value.field == "database_url"


@pytest.mark.parametrize(
    ("url", "dsn"),
    [
        ("postgresql://u@h:5432/d", "postgresql://u@h:5432/d"),
        ("postgresql+asyncpg://u:p@h/d?sslmode=require", "postgresql://u:p@h/d?sslmode=require"),
        ("postgres://u@h/d", "postgres://u@h/d"),
        ("POSTGRESQL+ASYNCPG://u@h/d", "postgresql://u@h/d"),
    ],
)
def test_asyncpg_dsn(url: str, dsn: str) -> None:
    assert asyncpg_dsn(url) == dsn


@pytest.mark.parametrize("url", ["postgresql+psycopg://u@h/d", "sqlite:///x", "no-scheme"])
def test_asyncpg_dsn_refuses_other_drivers(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        asyncpg_dsn(url)
    assert info.value.field == "database_url"


@pytest.mark.parametrize(
    "channel", ["", "Upper", "has-dash", "1starts_with_digit", "x" * 64, 'q"uote', "a;b"]
)
async def test_bad_channel_names_are_refused_before_connecting(channel: str) -> None:
    with pytest.raises(ConfigError) as info:
        await PostgresBus.connect("postgresql://u@127.0.0.1:1/d", channel=channel)
    assert info.value.field == "channel"


async def test_unreachable_database_is_a_store_error_without_the_password() -> None:
    # Port 1 on loopback refuses at once; nothing listens there.
    with pytest.raises(StoreError) as info:
        await PostgresBus.connect("postgresql://lychgate:hunter2@127.0.0.1:1/d", connect_timeout=2)
    assert "hunter2" not in str(info.value)
    assert "cannot reach PostgreSQL" in str(info.value)


async def test_bad_dsn_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        await PostgresBus.connect("postgresql://u:p@127.0.0.1:1/d?sslmode=sometimes")
    assert info.value.field == "database_url"


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    backoff = Backoff(initial=0.1, maximum=2.0)
    for attempt, step in [(0, 0.1), (1, 0.2), (3, 0.8), (5, 2.0), (60, 2.0)]:
        for _ in range(20):
            assert step * 0.5 <= backoff.delay(attempt) <= step
