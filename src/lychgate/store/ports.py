"""The store's ports: what handlers may ask of storage (STYLE.md item 7).

Handlers depend on these protocols, never on SQL. :mod:`lychgate.store.sql` implements them
over SQLAlchemy for SQLite and PostgreSQL, and one test suite runs against both. The ports for
state that every process shares (counters, used signatures) are in
:mod:`lychgate.store.coordination`.

Conventions, the same in every repository:

* Values in and out are the frozen dataclasses of :mod:`lychgate.domain` (and the few of
  :mod:`lychgate.store.values`), never rows.
* Timestamps are timezone-aware; they come back in UTC. A naive datetime is a
  :class:`~lychgate.errors.UsageError`. Operations that depend on the clock take ``now``
  explicitly, so the caller's clock (and a test's fake clock) is the only clock.
* ``get(id)`` raises :class:`~lychgate.errors.NotFound`; ``get_by_<field>`` returns ``None``.
* ``add``/``create`` raise :class:`~lychgate.errors.Conflict` (``field`` names the clash) on a
  duplicate, and :class:`~lychgate.errors.NotFound` when a referenced row is missing.
* State transitions (approve, redeem, revoke, ...) are single conditional ``UPDATE``
  statements. They return whether *this* call made the change, so of two concurrent callers
  exactly one wins. They return ``False`` (not an error) when the row is absent or not in the
  state the transition starts from.
* Any driver or connection failure is a :class:`~lychgate.errors.StoreError`: fail closed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from lychgate.domain import (
    ApiKey,
    App,
    AuditEvent,
    Device,
    LoginRequest,
    OneTimeCode,
    Registration,
    Session,
    SigningKey,
    User,
)
from lychgate.ids import (
    ApiKeyId,
    AppId,
    AppSlug,
    DeviceId,
    KeyId,
    LoginRequestId,
    RegistrationId,
    SessionId,
    UserId,
)
from lychgate.store.values import (
    UNSET,
    ChangedApp,
    ChangedUser,
    Revocation,
    SessionEnd,
    Unset,
)


class UserRepository(Protocol):
    async def add(self, user: User) -> None:
        """Store a new user. Conflict on a duplicate ``id`` or ``external_id``, and on an
        e-mail address another user has, ignoring case (``field="email"``)."""

    async def get(self, user_id: UserId) -> User:
        """The user with this id. NotFound if there is none."""

    async def get_by_external_id(self, external_id: str) -> User | None:
        """The user a customer's system knows by ``external_id``, if any."""

    async def get_by_email(self, email: str) -> User | None:
        """The user with this e-mail address, ignoring case, if any (there is at most one)."""

    async def list(self, *, limit: int = 1000, offset: int = 0) -> Sequence[User]:
        """Users, oldest first."""

    async def changed_since(
        self,
        version: int,
        *,
        limit: int = 1000,
        after: ChangedUser | None = None,
        enabled_only: bool = False,
    ) -> Sequence[ChangedUser]:
        """Users whose latest write set the change counter above ``version``, in the order
        of that write, then id; ``after`` is the last one of the previous page.
        ``enabled_only`` leaves disabled users out (a reader starting from nothing has none
        to take out).

        Every write to a user records the counter's value
        (:meth:`~lychgate.store.coordination.ConfigChanges.version`) its transaction set, and
        such writes commit in counter order, so a reader that saw the counter at ``v`` finds
        every change up to ``v`` here (and perhaps a few later ones, which it will read
        again)."""

    async def update(
        self,
        user_id: UserId,
        *,
        name: str | Unset = UNSET,
        email: str | Unset | None = UNSET,
        is_admin: bool | Unset = UNSET,
        disabled: bool | Unset = UNSET,
    ) -> User:
        """Change the given fields and return the updated user. NotFound if absent; Conflict
        (``field="email"``) for an e-mail address another user has, ignoring case."""

    async def count_admins(self) -> int:
        """How many enabled admins exist (zero means setup is not finished)."""


class DeviceRepository(Protocol):
    async def add(self, device: Device) -> None:
        """Enroll a device. Conflict on a duplicate ``credential_id``; NotFound if no user."""

    async def get(self, device_id: DeviceId) -> Device:
        """The device with this id, revoked or not. NotFound if there is none."""

    async def get_by_credential_id(self, credential_id: bytes) -> Device | None:
        """The passkey with this WebAuthn credential id, revoked or not."""

    async def list_for_user(
        self, user_id: UserId, *, include_revoked: bool = False
    ) -> Sequence[Device]:
        """The user's devices, oldest first."""

    async def record_use(self, device_id: DeviceId, *, sign_count: int, now: datetime) -> bool:
        """Record a successful signature: store ``sign_count`` and ``last_used_at = now``.

        Returns ``False`` and changes nothing when the device is revoked or when a passkey's
        counter did not grow; the caller must then refuse the login. WebAuthn Level 2, section
        6.1.1 and the ``signCount`` step of section 7.2: if the stored or the new counter is
        non-zero, the new one must be greater, else the authenticator may have been cloned;
        both zero means it keeps no counter. Device keys get no counter check. NotFound if
        there is no such device.
        """

    async def revoke(self, device_id: DeviceId) -> bool:
        """Revoke a device. ``True`` if this call revoked it."""


class AppRepository(Protocol):
    async def add(self, app: App) -> None:
        """Add an app. Conflict (``field`` = ``id``, ``slug`` or ``host``) on a duplicate."""

    async def get(self, app_id: AppId) -> App:
        """The app with this id. NotFound if there is none."""

    async def get_by_slug(self, slug: AppSlug) -> App | None:
        """The app with this slug, if any."""

    async def get_by_host(self, host: str) -> App | None:
        """The app that answers on exactly this host (callers lower-case it), if any."""

    async def list(self) -> Sequence[App]:
        """Every app, by slug."""

    async def changed_since(
        self, version: int, *, limit: int = 1000, after: ChangedApp | None = None
    ) -> Sequence[ChangedApp]:
        """The apps whose latest write set the change counter above ``version`` (every app
        for ``-1``), in counter order, a page of at most ``limit`` from past ``after``."""

    async def count(self) -> int:
        """How many apps there are (a removal leaves no row to read: this tells of one)."""

    async def ids(self) -> Sequence[AppId]:
        """The id of every app."""

    async def update(self, app: App) -> None:
        """Replace the app with ``app.id`` by ``app``, all but ``enabled`` (:meth:`set_enabled`
        alone changes that). NotFound if absent; Conflict as add."""

    async def set_enabled(self, slug: AppSlug, enabled: bool) -> bool:
        """Enable or disable the app ``slug`` in one conditional UPDATE; True if this call
        changed it, False if it already was so (or there is none)."""

    async def remove(self, slug: AppSlug) -> None:
        """Remove an app. NotFound if there is none with this slug."""


class SessionRepository(Protocol):
    async def create(self, session: Session) -> None:
        """Store a new session. NotFound if its user or device is missing."""

    async def get(self, session_id: SessionId) -> Session:
        """The session, whatever its state. NotFound if there is none."""

    async def touch(self, session_id: SessionId, now: datetime) -> bool:
        """Set ``last_seen_at = now`` on a live session. ``False`` if revoked, expired or absent."""

    async def revoke(self, session_id: SessionId, now: datetime) -> bool:
        """Revoke a session. ``True`` if this call revoked it."""

    async def revoke_all_for_user(self, user_id: UserId, now: datetime) -> Sequence[SessionId]:
        """Revoke every live session of a user; returns the ids this call revoked."""

    async def list_for_user(
        self, user_id: UserId, *, live_at: datetime | None = None
    ) -> Sequence[Session]:
        """The user's sessions, newest first; only those live at ``live_at`` when given."""

    async def revoked_ids(
        self, now: datetime, *, since: datetime | None = None
    ) -> Sequence[SessionId]:
        """Revoked sessions that have not expired at ``now``: the gateway's revoked set.

        With ``since``, only those revoked at or after it (an incremental feed update).
        """

    async def revocations(
        self, now: datetime, *, limit: int = 1000, after: SessionEnd | None = None
    ) -> Sequence[SessionEnd]:
        """:meth:`revoked_ids` with each session's end, a page at a time: by ``expires_at``,
        then id, after ``after`` (the last one of the previous page)."""

    async def revoked_since(
        self, since: datetime, *, limit: int = 1000, after: Revocation | None = None
    ) -> Sequence[Revocation]:
        """Sessions revoked at or after ``since`` (by the revoking writer's clock), expired or
        not, a page at a time: by ``revoked_at``, then id, after ``after``. A range of an
        index: what changed since a look, not every revoked session."""

    async def endings(
        self,
        since: datetime,
        now: datetime,
        *,
        limit: int = 1000,
        after: SessionEnd | None = None,
    ) -> Sequence[SessionEnd]:
        """Sessions whose end (``expires_at``) fell after ``since`` and at or before ``now``,
        revoked or not (the gateways close the WebSockets they still carry), a page at a
        time: by ``expires_at``, then id, after ``after``."""

    async def delete_expired(self, now: datetime) -> int:
        """Delete sessions that expired at or before ``now``; returns how many."""


class LoginRequestRepository(Protocol):
    """Login requests move ``pending -> approved -> finished``, or ``pending -> denied``.

    ``pending`` rows past ``expires_at`` are expired whatever their stored status says; no
    transition starts from them. See DESIGN.md, flow 3.
    """

    async def create(self, request: LoginRequest) -> None:
        """Store a new login request (normally ``pending``)."""

    async def get(self, request_id: LoginRequestId) -> LoginRequest:
        """The request as stored. NotFound if there is none."""

    async def approve(
        self,
        request_id: LoginRequestId,
        *,
        user_id: UserId,
        device_id: DeviceId,
        now: datetime,
    ) -> bool:
        """``pending -> approved``, only before ``expires_at``, and only when ``device_id`` is
        an unrevoked device of ``user_id`` and that user is enabled (SECURITY.md item 7: bind
        the approval to the device and its user). ``True`` if this call approved it."""

    async def deny(self, request_id: LoginRequestId, *, now: datetime) -> bool:
        """``pending -> denied`` before ``expires_at``. ``True`` if this call denied it."""

    async def finish(
        self, request_id: LoginRequestId, *, session_id: SessionId, now: datetime
    ) -> bool:
        """``approved -> finished`` with the new session, only before ``expires_at``, and
        only while the approving device is unrevoked and its user enabled.

        ``True`` if this call finished it; a second finish (a replay) gets ``False``.
        """

    async def deny_approved(
        self,
        *,
        user_id: UserId,
        request_id: LoginRequestId | None = None,
        device_id: DeviceId | None = None,
    ) -> Sequence[LoginRequestId]:
        """``approved -> denied`` for every request a device of ``user_id`` approved that no
        finish used (only ``request_id``, or only those ``device_id`` approved, when given),
        expired or not; returns the ids this call denied. For an approval that must not
        outlive its approver: the user was disabled (enabling them again must not bring it
        back), or the device revoked."""

    async def expire(self, now: datetime) -> int:
        """Mark ``pending`` requests past ``expires_at`` as ``expired``; returns how many."""

    async def delete_ended(self, before: datetime) -> int:
        """Delete requests whose ``expires_at`` is at or before ``before``, in any state (no
        transition starts from them any more); returns how many."""


class RegistrationRepository(Protocol):
    async def create(self, registration: Registration) -> None:
        """Store a new registration. Conflict on a duplicate ``token_hash``."""

    async def get(self, registration_id: RegistrationId) -> Registration:
        """The registration. NotFound if there is none."""

    async def get_by_token_hash(self, token_hash: bytes) -> Registration | None:
        """The registration whose one-time proxying token hashes to ``token_hash``."""

    async def mark_enrolled(
        self, registration_id: RegistrationId, *, user_id: UserId, now: datetime
    ) -> bool:
        """``pending -> enrolled`` for ``user_id``, once and only before ``expires_at``."""


class ApiKeyRepository(Protocol):
    async def add(self, key: ApiKey) -> None:
        """Store a new API key (its hash only). Conflict on a duplicate hash."""

    async def get(self, key_id: ApiKeyId) -> ApiKey:
        """The key, revoked or not. NotFound if there is none."""

    async def get_by_hash(self, key_hash: bytes) -> ApiKey | None:
        """The *unrevoked* key with this hash: a revoked key authenticates nothing."""

    async def list(self) -> Sequence[ApiKey]:
        """Every key, oldest first."""

    async def revoke(self, key_id: ApiKeyId) -> bool:
        """Revoke a key. ``True`` if this call revoked it."""

    async def touch(self, key_id: ApiKeyId, now: datetime) -> None:
        """Record a use of the key at ``now``."""


class SigningKeyRepository(Protocol):
    async def list(self) -> Sequence[SigningKey]:
        """Every stored key, oldest first (the newest unretired one signs)."""

    async def add(self, key: SigningKey) -> None:
        """Store a key. Conflict on a duplicate ``kid``."""

    async def rotate(
        self, new_key: SigningKey, *, retired_at: datetime, verify_until: datetime
    ) -> Sequence[KeyId]:
        """In one transaction: add ``new_key`` and retire every other unretired key, which
        keeps verifying until ``verify_until``. Returns the kids retired."""

    async def replace_all(self, new_key: SigningKey) -> Sequence[KeyId]:
        """In one transaction: delete every key, retired or not, and add ``new_key`` (for keys
        that leaked: nothing they signed verifies any more). Returns the kids deleted."""

    async def retire(self, kid: KeyId, *, retired_at: datetime, verify_until: datetime) -> bool:
        """Retire one key. ``True`` if this call retired it."""

    async def prune(self, now: datetime) -> int:
        """Delete retired keys whose ``verify_until`` is at or before ``now``."""


class OneTimeCodeRepository(Protocol):
    async def add(self, code: OneTimeCode) -> None:
        """Store a code's hash. Conflict on a duplicate hash."""

    async def redeem(self, code_hash: bytes, purpose: str, now: datetime) -> OneTimeCode | None:
        """Use the code once: set ``used_at = now`` and return it, only if it exists, has this
        ``purpose``, is unused and has not expired at ``now``. A replay gets ``None``."""

    async def pending(self, purpose: str, now: datetime) -> Sequence[OneTimeCode]:
        """The codes of this ``purpose`` that could still be redeemed at ``now``."""

    async def discard(self, code_hashes: Sequence[bytes]) -> int:
        """Delete these codes, so that none can be redeemed; returns how many there were."""

    async def delete_expired(self, now: datetime) -> int:
        """Delete codes that expired at or before ``now``."""


class AuditLog(Protocol):
    async def append(self, event: AuditEvent) -> AuditEvent:
        """Append an event; returns it with its ``id`` assigned."""

    async def list(
        self,
        *,
        limit: int = 100,
        action_prefix: str | None = None,
        user_id: UserId | None = None,
    ) -> Sequence[AuditEvent]:
        """Newest first; optionally only actions starting with ``action_prefix`` (e.g.
        ``"login."``) and only those whose actor is ``user_id``."""
