"""Turning driver errors into Lychgate errors.

Every repository call runs inside :func:`translating`. Constraint violations become the error
a caller can act on: a unique violation is :class:`~lychgate.errors.Conflict` naming the field,
a foreign-key violation is :class:`~lychgate.errors.NotFound` (the row it points at is missing).
Everything else that the driver or the network raises becomes
:class:`~lychgate.errors.StoreError`, so callers fail closed on one type.

The engine is made with ``hide_parameters=True``, so the chained exception never carries bound
values (hashes, keys, e-mail addresses).

A :class:`StoreError` names the driver's own message (:func:`driver_message`): without it, an
operator told "database error (DBAPIError)" cannot tell a misspelt database from a server that
is down. Only its first line is kept (SQLAlchemy appends the SQL and a link), bounded, and with
anything shaped like a password in a URL or DSN masked. authz never shows a StoreError's text
to a client (it answers a fixed 503), so the message reaches only logs and the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final, Literal

from sqlalchemy.exc import IntegrityError, SQLAlchemyError, StatementError

from lychgate.errors import Conflict, LychgateError, NotFound, StoreError, UsageError

ConstraintKind = Literal["unique", "foreign_key", "check", "not_null", "other"]

MAX_DETAIL: Final = 200  # characters of the driver's message kept in a StoreError

# "scheme://user:password@" and libpq's "password=...": never shown, whatever a driver says.
_URL_PASSWORD: Final = re.compile(r"(://[^:/@\s]*):\S*@")  # to the last @: "p@ss" too
_DSN_PASSWORD: Final = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)

# sqlite3 extended result codes (https://sqlite.org/rescode.html#constraint_unique ...).
_SQLITE_CODES: Final[dict[int, ConstraintKind]] = {
    2067: "unique",  # SQLITE_CONSTRAINT_UNIQUE
    1555: "unique",  # SQLITE_CONSTRAINT_PRIMARYKEY
    787: "foreign_key",  # SQLITE_CONSTRAINT_FOREIGNKEY
    275: "check",  # SQLITE_CONSTRAINT_CHECK
    1299: "not_null",  # SQLITE_CONSTRAINT_NOTNULL
}

# PostgreSQL SQLSTATEs, class 23 (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_PG_STATES: Final[dict[str, ConstraintKind]] = {
    "23505": "unique",
    "23503": "foreign_key",
    "23514": "check",
    "23502": "not_null",
}


def constraint_kind(exc: IntegrityError) -> ConstraintKind:
    """Which kind of constraint an :class:`IntegrityError` broke, on either backend."""
    orig = exc.orig
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return _SQLITE_CODES.get(code, "other")
    state = getattr(orig, "sqlstate", None)
    if isinstance(state, str):
        return _PG_STATES.get(state, "other")
    return "other"


def unique_field(exc: IntegrityError, table: str, fields: tuple[str, ...]) -> str | None:
    """The field whose uniqueness ``exc`` broke, among ``fields`` (the first is the key).

    SQLite says ``UNIQUE constraint failed: apps.slug``; PostgreSQL names the constraint, which
    the naming convention in :mod:`lychgate.store.schema` spells ``uq_apps_slug``/``pk_apps``.
    """
    message = str(exc.orig)
    for index, name in enumerate(fields):
        if f"{table}.{name}" in message or f"uq_{table}_{name}" in message:
            return name
        if index == 0 and f"pk_{table}" in message:
            return name
    return None


@contextmanager
def translating(table: str, fields: tuple[str, ...] = ("id",)) -> Iterator[None]:
    """Run a block of store work, translating driver errors (see the module docstring).

    ``fields`` lists the primary key first, then the unique columns, so that a
    :class:`Conflict` can name the field that clashed.
    """
    try:
        yield
    except LychgateError:
        raise
    except IntegrityError as exc:
        kind = constraint_kind(exc)
        if kind == "unique":
            field = unique_field(exc, table, fields)
            raise Conflict(f"{table}: already exists", field=field) from exc
        if kind == "foreign_key":
            raise NotFound(f"{table}: refers to a row that does not exist") from exc
        if kind in ("check", "not_null"):
            raise UsageError(f"{table}: value refused by a {kind} constraint") from exc
        raise StoreError(f"{table}: integrity error") from exc
    except SQLAlchemyError as exc:
        if isinstance(exc, StatementError) and isinstance(exc.orig, LychgateError):
            # Raised by one of our column types while binding (e.g. a naive datetime).
            raise exc.orig from None
        raise StoreError(_database_error(table, exc)) from exc
    except OSError as exc:
        # A refused or dropped connection, or a connect timeout: about the server, not the
        # table that happened to be asked first (at start-up, alembic's).
        raise StoreError(_connection_error(exc)) from exc


def driver_message(exc: BaseException) -> str:
    """The first line of what the driver said about ``exc``, bounded to :data:`MAX_DETAIL`
    characters, passwords masked; empty if it said nothing.

    For a SQLAlchemy error wrapping a driver's (``orig``) that is the driver's own text, without
    SQLAlchemy's "[SQL: ...]" and link lines.
    """
    orig = getattr(exc, "orig", None)
    text = str(orig if isinstance(orig, BaseException) else exc).strip()
    line = text.splitlines()[0].strip() if text else ""
    line = _DSN_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1:***@", line))
    if len(line) > MAX_DETAIL:
        line = line[: MAX_DETAIL - 1] + "\u2026"
    return line


def _connection_error(exc: OSError) -> str:
    message = f"database connection failed ({type(exc).__name__})"
    detail = driver_message(exc)
    return f"{message}: {detail}" if detail else message


def _database_error(table: str, exc: BaseException) -> str:
    message = f"{table}: database error ({type(exc).__name__})"
    detail = driver_message(exc)
    return f"{message}: {detail}" if detail else message
