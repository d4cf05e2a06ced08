"""What a StoreError says: the driver's own reason, on one bounded line, never a password.

"database error (DBAPIError)" used to be all an operator got, whether the database was
misspelt or the server down. authz never shows this text to a client (see
tests/authz/test_store_outage.py): it reaches logs and the CLI only.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from lychgate.errors import StoreError
from lychgate.store import open_store
from lychgate.store.errors import MAX_DETAIL, driver_message, translating

PASSWORD = "hunter2-s3cret"


def _store_error(exc: BaseException) -> StoreError:
    with pytest.raises(StoreError) as info, translating("users"):
        raise exc
    return info.value


def test_the_drivers_first_line_is_kept_without_sqlalchemys_additions() -> None:
    orig = Exception("no such table: users\nLINE 1: SELECT ...")
    wrapped = OperationalError("SELECT * FROM users", None, orig)
    assert "[SQL:" in str(wrapped)  # what SQLAlchemy adds, and the message leaves out
    error = _store_error(wrapped)
    assert str(error) == "users: database error (OperationalError): no such table: users"
    assert error.__cause__ is wrapped


def test_a_network_error_names_its_reason_not_the_table_asked() -> None:
    # The table was only the first one asked (at start-up, alembic_version): the error is
    # about reaching the server.
    error = _store_error(ConnectionRefusedError(111, "Connection refused"))
    assert str(error) == (
        "database connection failed (ConnectionRefusedError): [Errno 111] Connection refused"
    )


def test_an_error_with_nothing_to_say_names_its_kind() -> None:
    assert str(_store_error(TimeoutError())) == "database connection failed (TimeoutError)"


def test_a_long_message_is_bounded() -> None:
    detail = driver_message(OSError("x" * 5000))
    assert len(detail) == MAX_DETAIL
    assert detail.endswith("\u2026")


@pytest.mark.parametrize(
    "said",
    [
        f"cannot connect to postgresql://ada:{PASSWORD}@db.internal:5432/lychgate",
        f"cannot connect to postgresql+asyncpg://ada:{PASSWORD}@db/x (timeout)",
        f"cannot connect to postgresql://ada:p@ss{PASSWORD}@db/x",  # an @ in the password
        f"bad dsn: host=db user=ada password={PASSWORD} dbname=x",
        f"bad dsn: host=db user=ada password = '{PASSWORD} with spaces' dbname=x",
        f"bad dsn: host=db PASSWORD={PASSWORD}",
    ],
)
def test_a_password_in_what_the_driver_says_is_masked(said: str) -> None:
    message = str(_store_error(OSError(said)))
    assert PASSWORD not in message
    assert "***" in message
    assert said.partition(":")[0] in message  # the rest still helps


@pytest.fixture
def sqlite_dir_url(tmp_path: Path) -> str:
    """A SQLite URL whose path is a directory: the driver cannot open it."""
    where = tmp_path / "a-directory.db"
    where.mkdir()
    return f"sqlite:///{where}"


async def test_sqlite_says_why_it_cannot_open_the_database(sqlite_dir_url: str) -> None:
    with pytest.raises(StoreError) as info:
        await open_store(sqlite_dir_url)
    assert "unable to open database file" in str(info.value)


@pytest.mark.postgres
async def test_postgresql_names_the_database_that_does_not_exist(pg_url: str) -> None:
    # The test server trusts local connections, so the password is accepted, and the
    # database is what fails.
    name = f"lychgate_missing_{secrets.token_hex(4)}"
    url = make_url(pg_url).set(database=name, password=PASSWORD)
    with pytest.raises(StoreError) as info:
        await open_store(url.render_as_string(hide_password=False))
    assert f'database "{name}" does not exist' in str(info.value)
    assert PASSWORD not in str(info.value)
