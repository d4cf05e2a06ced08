"""A verification cache for the gateway's hot path.

An ES256 verification costs about 87 µs, and a browser presents the same app cookie on every
request. :class:`CachedVerifier` remembers, per exact token string, that its signature verified
and what its claims were. It caches nothing about time: the token functions check ``exp``,
``nbf`` and ``iat`` against ``now`` on every call, cached or not. Only tokens whose signature
verified are stored; a failure raises and leaves no trace. The cache is a bounded LRU, and it is
emptied when the key set changes (a key retired past ``verify_until``, or revoked), so a token
never outlives the key that signed it.

One instance belongs to one gateway worker and its event loop; it is not thread-safe.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

from lychgate.errors import UsageError
from lychgate.tokens.errors import Reason, fail
from lychgate.tokens.jws import VerifiedJWS
from lychgate.tokens.keys import PublicKeyring

DEFAULT_MAX_ENTRIES: Final = 10_000


class CachedVerifier:
    """A :class:`~lychgate.tokens.jws.Verifier` that remembers good signatures."""

    __slots__ = ("_entries", "_keys", "_max_entries", "hits", "misses")

    def __init__(self, keys: PublicKeyring, *, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise UsageError("max_entries must be at least 1", field="max_entries")
        self._keys = keys
        self._max_entries = max_entries
        self._entries: OrderedDict[str, VerifiedJWS] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @property
    def keys(self) -> PublicKeyring:
        """The key set tokens are verified against."""
        return self._keys

    def update_keys(self, keys: PublicKeyring) -> bool:
        """Switch to ``keys`` (e.g. a new JWKS from the feed). Empty the cache if they differ.

        Returns True if the key set changed.
        """
        if keys == self._keys:
            return False
        self._keys = keys
        self._entries.clear()
        return True

    def verify(self, token: str, typ: str) -> VerifiedJWS:
        """Like :meth:`PublicKeyring.verify`, but a token that verified before is not re-checked."""
        cached = self._entries.get(token)
        if cached is not None:
            self._entries.move_to_end(token)
            self.hits += 1
            if cached.typ != typ:
                fail(Reason.WRONG_TYPE, f"token is not of type {typ}")
            return cached
        self.misses += 1
        verified = self._keys.verify(token, typ)  # raises on failure: nothing is cached
        self._entries[token] = verified
        if len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return verified

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"CachedVerifier(keys={self._keys!r}, entries={len(self._entries)})"
