"""The store's ports for state that every process on the database shares (STYLE.md item 7).

Not records of users, apps or sessions but what lets several authz and gateway processes
act as one: a counter of configuration changes, rate-limit counters, the set of device
signatures already used, and the facts about the deployment as a whole. The conventions of
:mod:`lychgate.store.ports` hold here too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from lychgate.ids import DeviceId


class ConfigChanges(Protocol):
    """A counter that moves whenever users or apps change, by whichever process."""

    async def version(self) -> int | None:
        """The counter; None when it is missing (then every poll must rebuild in full)."""


class RateCounts(Protocol):
    """Events counted per ``(scope, key)`` in fixed windows, one counter for every process on
    the database (rate limits shared by authz replicas)."""

    async def add(self, scope: str, key: str, window_start: datetime, step: int) -> int:
        """Add ``step`` (1, or -1 to take one back) to the window's counter, never taking it
        below 0; returns the counter as this call left it."""

    async def get(self, scope: str, key: str, window_start: datetime) -> int:
        """The window's counter (0 when nothing was counted in it)."""

    async def delete_before(self, before: datetime) -> int:
        """Delete the counters of windows that started before ``before``; returns how many."""


class UsedSignatures(Protocol):
    """Signatures of device requests already acted on, one set for every process on the
    database: a captured request replayed inside its time window is refused."""

    async def use(self, device_id: DeviceId, signature_hash: bytes, *, until: datetime) -> bool:
        """Record that ``device_id`` used the signature whose SHA-256 is ``signature_hash``,
        to be remembered until ``until``. ``True`` if this call recorded it; ``False`` (and
        nothing changed) when it was recorded already, by this process or another, even at
        the same moment. NotFound if there is no such device."""

    async def delete_expired(self, before: datetime) -> int:
        """Forget the signatures remembered until before ``before``; returns how many."""


class DeploymentRecord(Protocol):
    """Facts about the deployment as a whole, which every node shares through the database."""

    async def secrets_fingerprint(self) -> str | None:
        """The recorded fingerprint of the deployment's secrets.json; None if none is yet."""

    async def record_secrets_fingerprint(self, fingerprint: str) -> str:
        """Record ``fingerprint`` unless one is recorded already, and return the one recorded:
        ``fingerprint``, or the one an earlier (or concurrent) caller recorded, left as it is.
        Of two callers at once with different values, both get the same one back."""

    async def replace_secrets_fingerprint(self, fingerprint: str) -> None:
        """Record ``fingerprint`` whatever was recorded before (new secrets replaced the old)."""
