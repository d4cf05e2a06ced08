"""Remembering admitted cookies, so that a session's next request skips the token checks.

Theory of operation
-------------------
A browser sends the same app cookie on every request of a session. Checking it means a cached
signature look-up, then the claims (types, ``exp``/``nbf``/``iat``, ``iss``, ``app``), the
revoked set and the user table: about 10 µs of Python per request. :class:`AdmissionMemo`
remembers the *outcome* of a successful check, per exact ``Cookie`` header values and routed
app, for one snapshot:

* **Only successes, only one value.** A memo entry is made only when exactly one value of our
  cookie arrived and it was fully valid. Failures are never remembered, so a bad cookie always
  takes the full path (and a cookie-tossing request with several values is always decided in
  full, since a not-yet-valid second value could become valid later).
* **Bound to one snapshot's basis.** Everything the check read besides the token and the
  clock (the keys, the issuer, the apps, the users, the revoked set) is in the snapshot. The
  memo empties itself the first time it is asked about a snapshot of another
  :attr:`~lychgate.gateway.snapshot.ConfigSnapshot.basis`, so any key change, user removal or
  app change invalidates every entry at once. Snapshots of one basis differ only in their
  sessions to end, which change several times a minute as sessions reach their end; they keep
  the entries, and every hit checks the session id against the current snapshot's revoked
  set, so a revocation still refuses the very next request.
* **Bounded in time by the token.** The check's only dependence on the clock is the window
  ``[max(nbf, iat) - skew, exp)``. An entry holds ``[since, exp)``, ``since`` being the moment
  the full check passed, a sub-window of it: a hit at a moment outside it (the token expired,
  or the clock stepped back) drops the entry and the full check runs again.
* **Bounded in size.** At most ``max_entries`` entries, each keyed by at most ``max_key_chars``
  characters of cookie header (longer headers are never remembered) and all together by at most
  ``max_total_chars`` (about 2 MB by default), evicted oldest first.

One instance belongs to one gateway worker and its event loop; it is not thread-safe.
"""

from __future__ import annotations

from typing import Final

from lychgate.domain import App
from lychgate.errors import UsageError
from lychgate.gateway.forwarding import Identity
from lychgate.gateway.snapshot import ConfigSnapshot
from lychgate.ids import AppSlug

DEFAULT_MAX_ENTRIES: Final = 4096
DEFAULT_MAX_KEY_CHARS: Final = 4096
DEFAULT_MAX_TOTAL_CHARS: Final = 2_000_000

#: The exact ``Cookie`` header values of a request, and the app its host routes to (None in
#: single-host mode, where the token names the app).
MemoKey = tuple[tuple[str, ...], AppSlug | None]
# app, identity, since, until (POSIX seconds), characters in the key
_Entry = tuple[App, Identity, float, float, int]


class AdmissionMemo:
    """Successful token checks of the current snapshot; see the module docstring."""

    __slots__ = (
        "_chars",
        "_entries",
        "_max_entries",
        "_max_key_chars",
        "_max_total_chars",
        "_snapshot",
        "hits",
        "misses",
    )

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_key_chars: int = DEFAULT_MAX_KEY_CHARS,
        max_total_chars: int = DEFAULT_MAX_TOTAL_CHARS,
    ) -> None:
        if max_entries < 1 or max_key_chars < 1 or max_total_chars < max_key_chars:
            raise UsageError(
                "need max_entries >= 1, max_key_chars >= 1 and max_total_chars >= max_key_chars"
            )
        self._max_entries = max_entries
        self._max_key_chars = max_key_chars
        self._max_total_chars = max_total_chars
        self._entries: dict[MemoKey, _Entry] = {}
        self._chars = 0
        self._snapshot: ConfigSnapshot | None = None
        self.hits = 0
        self.misses = 0

    def lookup(
        self, snapshot: ConfigSnapshot, key: MemoKey, moment: float
    ) -> tuple[App, Identity] | None:
        """The remembered ``(app, identity)`` for ``key`` at POSIX time ``moment``, or None."""
        if snapshot is not self._snapshot:
            self.follow(snapshot)
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        app, identity, since, until, chars = entry
        if not since <= moment < until or identity.session_id in snapshot.revoked_sessions:
            del self._entries[key]
            self._chars -= chars
            self.misses += 1
            return None
        self.hits += 1
        return app, identity

    def store(
        self, snapshot: ConfigSnapshot, key: MemoKey, moment: float, app: App, identity: Identity
    ) -> None:
        """Remember that ``key`` passed every check against ``snapshot`` at ``moment``."""
        if snapshot is not self._snapshot:
            self.follow(snapshot)
        chars = sum(map(len, key[0]))
        if chars > self._max_key_chars:
            return
        entries = self._entries
        old = entries.pop(key, None)
        if old is not None:
            self._chars -= old[4]
        while entries and (
            len(entries) >= self._max_entries or self._chars + chars > self._max_total_chars
        ):
            oldest = next(iter(entries))  # dicts keep insertion order
            self._chars -= entries.pop(oldest)[4]
        entries[key] = (app, identity, moment, identity.expires_at.timestamp(), chars)
        self._chars += chars

    def follow(self, snapshot: ConfigSnapshot) -> None:
        """Move on to ``snapshot``: keep the entries if it has the same basis, else forget
        them all."""
        previous = self._snapshot
        if previous is None or previous.basis is not snapshot.basis:
            self.clear()
        self._snapshot = snapshot

    def clear(self) -> None:
        """Forget every entry (and the snapshot they belong to)."""
        self._entries.clear()
        self._chars = 0
        self._snapshot = None

    def __len__(self) -> int:
        return len(self._entries)
