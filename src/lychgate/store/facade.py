"""The :class:`Store`: one object that holds the engine and every repository."""

from __future__ import annotations

import asyncio
from types import TracebackType

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from lychgate.store.coordination import (
    ConfigChanges,
    DeploymentRecord,
    RateCounts,
    UsedSignatures,
)
from lychgate.store.engine import make_engine
from lychgate.store.errors import translating
from lychgate.store.migrate import check_current, upgrade
from lychgate.store.ports import (
    ApiKeyRepository,
    AppRepository,
    AuditLog,
    DeviceRepository,
    LoginRequestRepository,
    OneTimeCodeRepository,
    RegistrationRepository,
    SessionRepository,
    SigningKeyRepository,
    UserRepository,
)
from lychgate.store.sql.api_keys import SqlApiKeyRepository
from lychgate.store.sql.apps import SqlAppRepository
from lychgate.store.sql.audit import SqlAuditLog
from lychgate.store.sql.config_changes import SqlConfigChanges
from lychgate.store.sql.deployment import SqlDeploymentRecord
from lychgate.store.sql.devices import SqlDeviceRepository
from lychgate.store.sql.login_requests import SqlLoginRequestRepository
from lychgate.store.sql.one_time_codes import SqlOneTimeCodeRepository
from lychgate.store.sql.rate_counts import SqlRateCounts
from lychgate.store.sql.registrations import SqlRegistrationRepository
from lychgate.store.sql.sessions import SqlSessionRepository
from lychgate.store.sql.signing_keys import SqlSigningKeyRepository
from lychgate.store.sql.used_signatures import SqlUsedSignatures
from lychgate.store.sql.users import SqlUserRepository
from lychgate.store.url import Backend, backend_of, normalize_url, redact


class Store:
    """The repositories over one database. Handlers use the attributes, typed as ports.

    ``engine`` is exposed for tests and tooling only; application code never issues SQL.
    Use :func:`open_store` to make one, and close it with :meth:`close` or ``async with``.
    """

    __slots__ = (
        "_url",
        "api_keys",
        "apps",
        "audit",
        "backend",
        "config_changes",
        "deployment",
        "devices",
        "engine",
        "login_requests",
        "one_time_codes",
        "rate_counts",
        "registrations",
        "sessions",
        "signing_keys",
        "used_signatures",
        "users",
    )

    def __init__(self, engine: AsyncEngine, url: URL) -> None:
        self.engine = engine
        self._url = url
        self.backend: Backend = backend_of(url)
        self.users: UserRepository = SqlUserRepository(engine)
        self.devices: DeviceRepository = SqlDeviceRepository(engine)
        self.apps: AppRepository = SqlAppRepository(engine)
        self.sessions: SessionRepository = SqlSessionRepository(engine)
        self.login_requests: LoginRequestRepository = SqlLoginRequestRepository(engine)
        self.registrations: RegistrationRepository = SqlRegistrationRepository(engine)
        self.api_keys: ApiKeyRepository = SqlApiKeyRepository(engine)
        self.signing_keys: SigningKeyRepository = SqlSigningKeyRepository(engine)
        self.one_time_codes: OneTimeCodeRepository = SqlOneTimeCodeRepository(engine)
        self.audit: AuditLog = SqlAuditLog(engine)
        self.config_changes: ConfigChanges = SqlConfigChanges(engine)
        self.deployment: DeploymentRecord = SqlDeploymentRecord(engine)
        self.rate_counts: RateCounts = SqlRateCounts(engine)
        self.used_signatures: UsedSignatures = SqlUsedSignatures(engine)

    @property
    def url(self) -> str:
        """The database URL with its password redacted: safe to log."""
        return redact(self._url)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    async def ping(self) -> None:
        """Round-trip to the database; :class:`~lychgate.errors.StoreError` if it fails."""
        with translating("store"):
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        """Close every pooled connection. The store is unusable afterwards."""
        await self.engine.dispose()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def open_store(url: str, *, migrate: bool = True) -> Store:
    """Open the database at ``url`` and, by default, migrate it to the newest schema.

    Accepts ``sqlite:///path``, ``sqlite+aiosqlite:///path``, ``postgresql://``,
    ``postgres://`` and ``postgresql+asyncpg://`` URLs. A bad URL raises
    :class:`~lychgate.errors.ConfigError` (``field="database_url"``); an unreachable database
    raises :class:`~lychgate.errors.StoreError`. With ``migrate=False`` the schema must already
    be current, else :class:`~lychgate.errors.StoreError`.
    """
    normalized = normalize_url(url)
    # In a worker thread: for SQLite, SQLAlchemy resolves the file path (os.path.abspath,
    # which may call getcwd) while building the engine. Nothing in it is bound to a loop.
    engine = await asyncio.to_thread(make_engine, normalized)
    try:
        if migrate:
            await upgrade(engine)
        else:
            await check_current(engine)
    except BaseException:
        await engine.dispose()
        raise
    return Store(engine, normalized)
