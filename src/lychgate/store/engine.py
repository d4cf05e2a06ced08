"""The async engine, with per-connection settings for SQLite.

SQLite needs three settings on every new connection (they are per connection, not per file,
except the journal mode, which sticks to the file once set):

* ``journal_mode=WAL`` so readers do not block the writer and the writer does not block readers
  (https://sqlite.org/wal.html). ``synchronous=NORMAL`` is durable enough in WAL mode: a power
  loss can lose the last transactions but never corrupts the file.
* ``foreign_keys=ON``: SQLite ignores FOREIGN KEY clauses unless asked, for compatibility.
* ``busy_timeout``: wait for the write lock instead of failing at once with "database is
  locked" when two connections write at the same moment.

PostgreSQL needs nothing special; ``pool_pre_ping`` replaces connections that a server restart
closed, so the first request after a restart does not fail.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from lychgate.store.url import backend_of

SQLITE_BUSY_TIMEOUT_MS: Final = 5000

_SQLITE_PRAGMAS: Final = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
)


def make_engine(url: URL) -> AsyncEngine:
    """An async engine for a URL that went through :func:`~lychgate.store.url.normalize_url`.

    ``hide_parameters`` keeps bound values (hashes, private keys, e-mail addresses) out of the
    text of every database exception, and so out of logs and tracebacks.
    """
    if backend_of(url) == "sqlite":
        engine = create_async_engine(url, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        return engine
    return create_async_engine(url, hide_parameters=True, pool_pre_ping=True)


def _sqlite_on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Runs inside SQLAlchemy's greenlet: the adapted cursor awaits aiosqlite's own thread, so
    # these statements do not block the event loop.
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()
