"""Signing the identity assertion sent upstream in ``X-Lychgate-Assertion``.

The gateway holds no long-lived private key. authz hands it a dedicated **gateway assertion
key** over the config feed (``assertion_key`` in the snapshot); its public half is in the JWKS
that apps fetch from ``/.lychgate/jwks.json``. A signature costs about 43 µs, and an assertion
lives 60 s (DESIGN.md, token table), so :class:`CachedAssertions` keeps one per (session, app,
identity) and mints a new one when the cached one has less than ``refresh_before`` left, so an
upstream never receives an assertion about to expire in transit. The cache is a bounded LRU, and
it keeps the identity headers built around each assertion (:meth:`CachedAssertions.headers`),
so a request reuses them instead of building them again.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Final, Protocol

from lychgate.errors import UsageError
from lychgate.gateway.forwarding import Identity, identity_headers
from lychgate.gateway.types import Headers
from lychgate.tokens import ASSERTION_TTL, IdentityAssertion, Keyring, encode_assertion

DEFAULT_MAX_ENTRIES: Final = 10_000
REFRESH_BEFORE: Final = timedelta(seconds=10)


class AssertionSigner(Protocol):
    """Anything that turns an admitted identity into a signed assertion for its app."""

    def assertion(self, identity: Identity, now: datetime) -> str:
        """A compact JWS asserting ``identity`` to ``identity.app``, valid at ``now``."""
        ...


_CacheKey = tuple[object, ...]


class CachedAssertions:
    """An :class:`AssertionSigner` over one assertion keyring, with a bounded cache."""

    __slots__ = ("_entries", "_issuer", "_keyring", "_max_entries", "_refresh_before", "_ttl")

    def __init__(
        self,
        keyring: Keyring,
        issuer: str,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        refresh_before: timedelta = REFRESH_BEFORE,
        ttl: timedelta = ASSERTION_TTL,
    ) -> None:
        if max_entries < 1 or refresh_before >= ttl:
            raise UsageError("need max_entries >= 1 and refresh_before < ttl")
        self._keyring = keyring
        self._issuer = issuer
        self._max_entries = max_entries
        self._refresh_before = refresh_before
        self._ttl = ttl
        self._entries: OrderedDict[_CacheKey, tuple[str, datetime, Headers]] = OrderedDict()

    @property
    def kid(self) -> str:
        """The kid assertions are signed with."""
        return self._keyring.signer.kid

    @property
    def issuer(self) -> str:
        return self._issuer

    def assertion(self, identity: Identity, now: datetime) -> str:
        return self._entry(identity, now)[0]

    def headers(self, identity: Identity, now: datetime) -> Headers:
        """:func:`~lychgate.gateway.forwarding.identity_headers` around :meth:`assertion`."""
        return self._entry(identity, now)[2]

    def _entry(self, identity: Identity, now: datetime) -> tuple[str, datetime, Headers]:
        # The whole identity is in the key: a changed profile or admin flag gets a new assertion.
        key: _CacheKey = (
            identity.session_id,
            identity.app,
            identity.user_id,
            identity.admin,
            identity.profile,
        )
        entries = self._entries
        cached = entries.get(key)
        if cached is not None and now < cached[1] - self._refresh_before:
            entries.move_to_end(key)
            return cached
        claims = IdentityAssertion.issue(
            issuer=self._issuer,
            app=identity.app,
            sub=identity.user_id,
            email=identity.profile.email,
            name=identity.profile.name,
            groups=identity.profile.groups,
            adm=identity.admin,
            now=now,
            ttl=self._ttl,
        )
        token = encode_assertion(self._keyring, claims)
        entry = (token, claims.exp, identity_headers(identity, token))
        entries[key] = entry
        entries.move_to_end(key)
        if len(entries) > self._max_entries:
            entries.popitem(last=False)
        return entry

    def __len__(self) -> int:
        return len(self._entries)
