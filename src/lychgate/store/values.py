"""The store's own values: what its ports pass besides the dataclasses of :mod:`lychgate.domain`.

:class:`Unset` marks an ``update`` argument that was not given. The named tuples are the
entries of the change feeds read a page at a time (users and apps changed since a value of
the change counter, sessions that end or were revoked): each is also the key a caller hands
back as ``after`` to read the next page.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Final, NamedTuple

from lychgate.domain import App, User
from lychgate.ids import SessionId


class Unset(enum.Enum):
    """Marks an ``update`` argument that was not given (``None`` is a value for some fields)."""

    UNSET = enum.auto()


UNSET: Final = Unset.UNSET


class ChangedUser(NamedTuple):
    """A user as its latest write left it, and the change counter's value at that write."""

    version: int
    user: User


class ChangedApp(NamedTuple):
    """An app as its latest write left it, and the change counter's value at that write."""

    version: int
    app: App


class SessionEnd(NamedTuple):
    """A session the gateways may have to end, and its end (``expires_at``), after which none
    of its tokens is valid."""

    id: SessionId
    expires_at: datetime


class Revocation(NamedTuple):
    """A revoked session, its end, and when it was revoked (by the revoking writer's clock)."""

    id: SessionId
    expires_at: datetime
    revoked_at: datetime
