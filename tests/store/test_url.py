"""Database URL parsing: accepted spellings, refused ones, and the password kept out of sight."""

from __future__ import annotations

import pytest

from lychgate.errors import ConfigError
from lychgate.store.url import backend_of, normalize_url, redact

PASSWORD = "hunter2-s3cret"


@pytest.mark.parametrize(
    ("raw", "driver", "backend"),
    [
        ("sqlite:///lychgate.db", "sqlite+aiosqlite", "sqlite"),
        ("sqlite:////var/lib/lychgate/db.sqlite", "sqlite+aiosqlite", "sqlite"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite", "sqlite"),
        ("sqlite://", "sqlite+aiosqlite", "sqlite"),
        ("postgresql://u@db.example/lychgate", "postgresql+asyncpg", "postgresql"),
        ("postgres://u@db.example:5433/lychgate", "postgresql+asyncpg", "postgresql"),
        ("postgresql+asyncpg://u@db.example/lychgate", "postgresql+asyncpg", "postgresql"),
    ],
)
def test_accepted_spellings_run_on_async_drivers(raw: str, driver: str, backend: str) -> None:
    url = normalize_url(raw)
    assert url.drivername == driver
    assert backend_of(url) == backend


def test_normalizing_keeps_host_port_database_and_query() -> None:
    url = normalize_url(f"postgres://app:{PASSWORD}@db.example:5433/lychgate?ssl=require")
    assert (url.host, url.port, url.database) == ("db.example", 5433, "lychgate")
    assert url.password == PASSWORD
    assert url.query == {"ssl": "require"}


@pytest.mark.parametrize(
    "raw",
    [
        f"mysql://root:{PASSWORD}@db/lychgate",
        f"postgresql+psycopg://u:{PASSWORD}@db/lychgate",
        f"sqlite+pysqlite:///{PASSWORD}.db",
        f"oracle://u:{PASSWORD}@db/x",
    ],
)
def test_unsupported_scheme_is_a_config_error_without_the_password(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        normalize_url(raw)
    assert info.value.field == "database_url"
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in repr(info.value)


@pytest.mark.parametrize("raw", ["", "not a url", f"://u:{PASSWORD}@host/db", "postgresql"])
def test_unparsable_url_is_a_config_error_without_the_password(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        normalize_url(raw)
    assert info.value.field == "database_url"
    assert PASSWORD not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_libpq_sslmode_is_asyncpgs_ssl() -> None:
    # What people paste from libpq's documentation: asyncpg took it for a keyword argument
    # it does not have, and init failed at its first connection with a TypeError.
    url = normalize_url(f"postgresql://u:{PASSWORD}@db.example/lychgate?sslmode=verify-full")
    assert url.query == {"ssl": "verify-full"}


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        ("postgresql://u:{pw}@db.example/x?application_name=lg", "'application_name'"),
        ("postgresql://u:{pw}@db.example/x?sslmode=sometimes", "ssl/sslmode must be one of"),
        ("postgresql://u:{pw}@db.example:99999/x", "port 99999"),
        ("postgresql://u:{pw}@db.example/x\udcff", "not a database URL"),  # undecodable argv
    ],
)
def test_what_the_driver_would_fail_on_is_refused_first(raw: str, said: str) -> None:
    with pytest.raises(ConfigError) as info:
        normalize_url(raw.format(pw=PASSWORD))
    assert said in str(info.value)
    assert PASSWORD not in str(info.value)


def test_postgres_url_must_name_a_database() -> None:
    with pytest.raises(ConfigError, match="database"):
        normalize_url(f"postgresql://u:{PASSWORD}@db.example")


def test_redact_hides_the_password() -> None:
    shown = redact(normalize_url(f"postgres://app:{PASSWORD}@db.example/lychgate"))
    assert PASSWORD not in shown
    assert shown == "postgresql+asyncpg://app:***@db.example/lychgate"
