"""Database URLs: accept the spellings operators write, run on the async drivers.

Operators write ``sqlite:///lychgate.db`` or ``postgres://user:pw@host/db``; SQLAlchemy's
async engine needs the driver spelled out (``sqlite+aiosqlite``, ``postgresql+asyncpg``). We
map the accepted spellings and refuse everything else at start-up, naming the setting.

A URL may carry a password. It never appears in an error message, a repr or a log line: use
:func:`redact` whenever a URL is shown.
"""

from __future__ import annotations

from typing import Final, Literal

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from lychgate.errors import ConfigError

Backend = Literal["sqlite", "postgresql"]

_FIELD: Final = "database_url"

# Accepted scheme -> the async driver we run it on.
_DRIVERS: Final[dict[str, str]] = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


def normalize_url(raw: str) -> URL:
    """Parse ``raw`` and return it with the async driver set.

    Raises :class:`~lychgate.errors.ConfigError` (``field="database_url"``) for an
    unparsable URL or an unsupported scheme. The message never repeats the URL, which may
    hold a password.
    """
    try:
        raw.encode()  # a lone surrogate (undecodable bytes in argv) cannot reach a driver
        url = make_url(raw)
    except (ArgumentError, ValueError):
        # ``from None``: the parser's message may quote the URL, password included.
        raise ConfigError("not a database URL", field=_FIELD) from None
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        supported = ", ".join(sorted(_DRIVERS))
        raise ConfigError(
            f"unsupported database scheme {url.drivername!r} (use one of: {supported})",
            field=_FIELD,
        )
    url = url.set(drivername=driver)
    if backend_of(url) == "postgresql":
        if not url.database:
            raise ConfigError("a PostgreSQL URL must name a database", field=_FIELD)
        url = _postgresql_options(url)
    return url


# The query parameters a PostgreSQL URL may carry: asyncpg takes each as a connect argument
# (SQLAlchemy passes them on as they are), and libpq's sslmode is its ssl. Any other one
# failed at the first connection, with a TypeError and a traceback.
_SSL_MODES: Final = frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"})
_PG_OPTIONS: Final = frozenset({"ssl", "sslmode", "target_session_attrs", "passfile"})


def _postgresql_options(url: URL) -> URL:
    """``url`` with libpq's ``sslmode`` as asyncpg's ``ssl``, and its port and query checked."""
    if url.port is not None and not 0 < url.port < 65536:
        raise ConfigError(f"port {url.port} is not a TCP port", field=_FIELD)
    unknown = sorted(set(url.query) - _PG_OPTIONS)
    if unknown:
        allowed = ", ".join(sorted(_PG_OPTIONS))
        raise ConfigError(
            f"unsupported query parameter {unknown[0]!r} (use: {allowed})", field=_FIELD
        )
    query = dict(url.query)
    if "sslmode" in query:
        query["ssl"] = query.pop("sslmode")
    ssl = query.get("ssl")
    if ssl is not None and (not isinstance(ssl, str) or ssl not in _SSL_MODES):
        raise ConfigError(
            f"ssl/sslmode must be one of: {', '.join(sorted(_SSL_MODES))}", field=_FIELD
        )
    return url.set(query=query)


def backend_of(url: URL) -> Backend:
    """``"sqlite"`` or ``"postgresql"`` for a URL that went through :func:`normalize_url`."""
    return "sqlite" if url.get_backend_name() == "sqlite" else "postgresql"


def redact(url: URL) -> str:
    """The URL as text with its password replaced by ``***``: the only form we ever show."""
    return url.render_as_string(hide_password=True)
