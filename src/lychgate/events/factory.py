"""Pick the event bus that matches the store: PostgreSQL shares events, SQLite stays local."""

from __future__ import annotations

from lychgate.errors import ConfigError
from lychgate.events.bus import EventBus
from lychgate.events.inprocess import InProcessBus
from lychgate.events.postgres import DEFAULT_CHANNEL, PostgresBus
from lychgate.events.subscription import DEFAULT_QUEUE_SIZE

_POSTGRES_SCHEMES = frozenset({"postgresql", "postgres", "postgresql+asyncpg", "postgres+asyncpg"})
_SQLITE_SCHEMES = frozenset({"sqlite", "sqlite+aiosqlite"})


async def open_bus(
    database_url: str,
    *,
    channel: str = DEFAULT_CHANNEL,
    queue_size: int = DEFAULT_QUEUE_SIZE,
) -> EventBus:
    """Open the event bus for the store at ``database_url``.

    A PostgreSQL URL (``postgresql://``, ``postgres://``, or SQLAlchemy's
    ``postgresql+asyncpg://``) gives a :class:`PostgresBus` on ``channel``, shared by every authz
    replica on that database. An SQLite URL gives an :class:`InProcessBus`: SQLite means a single
    authz, which has nobody else to tell. Any other scheme is a
    :class:`~lychgate.errors.ConfigError` naming ``database_url``.
    """
    if queue_size < 1:
        raise ConfigError("must be at least 1", field="queue_size")
    scheme, sep, _ = database_url.partition("://")
    scheme = scheme.lower()
    if sep and scheme in _POSTGRES_SCHEMES:
        return await PostgresBus.connect(database_url, channel=channel, queue_size=queue_size)
    if sep and scheme in _SQLITE_SCHEMES:
        return InProcessBus(queue_size=queue_size)
    raise ConfigError(
        "expected a postgresql:// or sqlite:// URL for the event bus", field="database_url"
    )
