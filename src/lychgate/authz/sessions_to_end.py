"""The sessions the gateways must end, kept current for the config snapshot.

Theory of operation
-------------------
The snapshot's revoked set (:mod:`lychgate.authz.snapshots`) lists sessions by the names their
tokens carry (handles, never ids): revoked ones while their tokens could still be valid, and for
a while (:func:`ended_listed_for`) ones that reached their end, whose WebSockets would otherwise
outlive them. :func:`sessions_to_end` reads that set in full; the publisher keeps its own with
:class:`SessionsToEnd`, whose looks read only the ranges of two indexes: the sessions revoked
since the last look (and :data:`REREAD_REVOCATIONS` before it, for a writer's clock a little
behind) and those that reached their end since. Every read goes a page (:data:`PAGE`) at a time,
so that other work runs between pages however big the store.
"""

from __future__ import annotations

import heapq
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Final, TypeVar

from lychgate.authz.context import AuthzContext
from lychgate.ids import SessionId, token_sid
from lychgate.store import Revocation, SessionEnd, SessionRepository

PAGE: Final = 1000  # rows a read of the store takes at a time (the snapshot's users' too)
_End = TypeVar("_End", SessionEnd, Revocation)
# How long a session that reached its end stays in the snapshot's revoked set, at least: a
# gateway that was cut off from the feed when it ended still closes its sockets on
# reconnecting. It is listed for a minute longer than feed_max_stale too, since a gateway cut
# off for longer has closed every socket already (lychgate.gateway.feed_guard).
ENDED_LISTED_FOR: Final = timedelta(minutes=10)


def ended_listed_for(ctx: AuthzContext) -> timedelta:
    """How long an ended session is listed (see :data:`ENDED_LISTED_FOR`)."""
    stale = timedelta(seconds=ctx.settings.feed_max_stale) + timedelta(minutes=1)
    return max(ENDED_LISTED_FOR, stale)


# How long before the last look each look reads revocations again. A revocation is stamped by
# its writer's clock (``revoked_at``) and commits a moment later, so one stamped just before
# the last look may have become visible only since, and another replica's clock may be a
# little behind this one's. One stamped earlier still is found by the next full rebuild.
REREAD_REVOCATIONS: Final = timedelta(seconds=30)


async def sessions_to_end(ctx: AuthzContext, now: datetime) -> frozenset[SessionId]:
    """Sessions the gateways must end, by the names their tokens carry (handles, never ids):
    revoked ones while their tokens could still be valid, and for a while, ones that reached
    their end, whose WebSockets would otherwise outlive them (their tokens have expired
    already: app tokens never outlive their session). Read in full; the publisher keeps its
    set with :class:`SessionsToEnd`."""
    return await SessionsToEnd(ended_listed_for(ctx)).look(ctx.store.sessions, now)


class SessionsToEnd:
    """:func:`sessions_to_end`, kept current by reading only what changed.

    A session is listed from the look that finds it revoked, or at its end, until
    ``listed_for`` after its end (``expires_at``): the set a full read gives, which is the
    revoked sessions not yet at their end and every session whose end is less than
    ``listed_for`` ago. The first look reads that set, a page at a time. Later looks read the
    sessions revoked since the last look (and :data:`REREAD_REVOCATIONS` before it) and those
    that reached their end since, hash each new one's handle once, and drop the sessions whose
    listing is over, the first to leave first: a look at a store where nothing changed reads
    no session and returns the very set it returned before. A look reads everything again when
    asked to (``full``: the publisher's safety net) and when the clock went back.
    """

    __slots__ = ("_handles", "_leaving", "_listed", "_listed_for", "_looked_at")

    def __init__(self, listed_for: timedelta) -> None:
        self._listed_for = listed_for
        # id -> (handle, (when it leaves, id)), the latter also an item of the heap below,
        # which a full read takes over rather than make anew (as read_user_changes does).
        self._listed: dict[SessionId, tuple[SessionId, tuple[datetime, SessionId]]] = {}
        self._leaving: list[tuple[datetime, SessionId]] = []  # a heap: the next to leave first
        self._looked_at: datetime | None = None  # the ``now`` of the last look that ended well
        self._handles: frozenset[SessionId] | None = frozenset()  # None: changed since built

    async def look(
        self, sessions: SessionRepository, now: datetime, *, full: bool = False
    ) -> frozenset[SessionId]:
        """The handles of the sessions to end at ``now``."""
        last = self._looked_at
        if full or last is None or now < last:
            await self._read_all(sessions, now)
        else:
            since = last - REREAD_REVOCATIONS
            await _each(partial(sessions.revoked_since, since), partial(self._add, now))
            await _each(partial(sessions.endings, last, now), partial(self._add, now))
        self._looked_at = now
        heap, listed = self._leaving, self._listed
        while heap and heap[0][0] <= now:
            item = heapq.heappop(heap)
            sid = item[1]
            if sid in listed and listed[sid][1] is item:
                del listed[sid]
                self._handles = None
        if self._handles is None:
            self._handles = frozenset(handle for handle, _ in listed.values())
        return self._handles

    async def _read_all(self, sessions: SessionRepository, now: datetime) -> None:
        """Read the whole set again, into a new one that replaces the last once it is read,
        keeping the handles already known."""
        known = self._listed
        fresh = SessionsToEnd(self._listed_for)
        add = partial(fresh._add, now, known=known)
        await _each(partial(sessions.revocations, now), add)
        await _each(partial(sessions.endings, now - self._listed_for, now), add)
        self._listed, self._leaving, self._handles = fresh._listed, fresh._leaving, None

    def _add(
        self,
        now: datetime,
        end: SessionEnd | Revocation,
        *,
        known: dict[SessionId, tuple[SessionId, tuple[datetime, SessionId]]] | None = None,
    ) -> None:
        """List ``end`` until ``listed_for`` after its end, as ``known`` has it if there
        (its handle hashed already), else anew; unless its listing is over, or it is listed
        already."""
        leaves = end.expires_at + self._listed_for
        listed = self._listed
        if leaves <= now or end.id in listed:
            return
        entry = None if known is None else known.get(end.id)
        if entry is None or entry[1][0] != leaves:
            entry = (token_sid(end.id), (leaves, end.id))
        listed[end.id] = entry
        heapq.heappush(self._leaving, entry[1])
        self._handles = None


async def _each(
    read: Callable[..., Awaitable[Sequence[_End]]], use: Callable[[_End], None]
) -> None:
    """Call ``use`` on every session ``read`` gives, a page (:data:`PAGE`) at a time: the
    event loop runs other work while the next page is read."""
    after: _End | None = None
    while True:
        page = await read(limit=PAGE, after=after)
        for end in page:
            use(end)
        if len(page) < PAGE:
            return
        after = page[-1]
