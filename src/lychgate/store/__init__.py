"""The store: users, devices, apps, sessions and the rest, over SQLite or PostgreSQL.

Open it with :func:`open_store`; reach it only through the repository ports in
:mod:`lychgate.store.ports` and :mod:`lychgate.store.coordination` (the attributes of
:class:`Store`)::

    async with await open_store("sqlite:///lychgate.db") as store:
        user = await store.users.get(user_id)
"""

from lychgate.store.coordination import UsedSignatures
from lychgate.store.facade import Store, open_store
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
from lychgate.store.values import UNSET, ChangedApp, ChangedUser, Revocation, SessionEnd, Unset

__all__ = [
    "UNSET",
    "ApiKeyRepository",
    "AppRepository",
    "AuditLog",
    "ChangedApp",
    "ChangedUser",
    "DeviceRepository",
    "LoginRequestRepository",
    "OneTimeCodeRepository",
    "RegistrationRepository",
    "Revocation",
    "SessionEnd",
    "SessionRepository",
    "SigningKeyRepository",
    "Store",
    "Unset",
    "UsedSignatures",
    "UserRepository",
    "open_store",
]
