"""Enrollment links: how a new device gets bound to a user (DESIGN.md, flows 1 and 3).

An enrollment link is ``<public_url>/.lychgate/enroll/<code>``: a one-time code (256 random
bits, only its hash stored; :mod:`lychgate.tokens.onetime`) that lives 24 hours. The device
posts the code with its public key to ``/.lychgate/api/v1/device/enroll``, which redeems it
atomically, so a link enrolls at most one device (SECURITY.md item 6: replayed links).

Two purposes share the link format:

* ``enroll``: payload ``{"user_id"}``; made by ``lychgate user add`` and ``user enroll-link``.
* ``admin-setup``: no payload; made by ``lychgate init`` while no admin exists. Redeeming it
  creates the first admin. Several may be issued (each ``init`` prints a fresh one), but
  authz refuses every one of them once an admin exists, so after setup they are all dead.
"""

from __future__ import annotations

import io
from datetime import datetime

import segno

from lychgate.config import Settings
from lychgate.deployment.users import all_users, check_email
from lychgate.domain import User
from lychgate.errors import Conflict, NotFound
from lychgate.ids import UserId
from lychgate.store import Store
from lychgate.tokens import Purpose, make_one_time
from lychgate.tokens.onetime import ENROLLMENT_TTL

ENROLL_PATH = "/.lychgate/enroll/"


def enrollment_url(settings: Settings, code: str) -> str:
    """The link a device enrolls with: the code under the public URL."""
    return f"{settings.public_url}{ENROLL_PATH}{code}"


async def issue_enrollment_link(
    store: Store, settings: Settings, user_id: UserId, now: datetime
) -> str:
    """A fresh one-time enrollment link for ``user_id`` (NotFound; Conflict when disabled)."""
    user = await store.users.get(user_id)
    if user.disabled:
        raise Conflict(f"user {user.name!r} is disabled", field="user")
    code, record = make_one_time(Purpose.ENROLL, {"user_id": user.id}, now, ENROLLMENT_TTL)
    await store.one_time_codes.add(record)
    return enrollment_url(settings, code)


async def issue_admin_setup_link(store: Store, settings: Settings, now: datetime) -> str | None:
    """A fresh admin setup link while no (enabled) admin exists; ``None`` once one does."""
    if await store.users.count_admins() > 0:
        return None
    code, record = make_one_time(Purpose.ADMIN_SETUP, {}, now, ENROLLMENT_TTL)
    await store.one_time_codes.add(record)
    return enrollment_url(settings, code)


async def find_user(store: Store, who: str) -> User:
    """The user named by an e-mail address, an id, or an exact (unique) display name."""
    who = who.strip()
    if "@" in who:
        found = await store.users.get_by_email(check_email(who))
        if found is not None:
            return found
    try:
        return await store.users.get(UserId(who))
    except NotFound:
        pass
    named = await users_named(store, who)
    if len(named) > 1:
        raise Conflict(f"{len(named)} users are named {who!r}; give an e-mail or id", field="user")
    if not named:
        raise NotFound(f"no user {who!r}", field="user")
    return named[0]


async def users_named(store: Store, name: str) -> list[User]:
    """Every user whose display name is exactly ``name``."""
    return [user for user in await all_users(store) if user.name == name]


def terminal_qr(url: str) -> str:
    """``url`` as a QR code drawn with half-block characters, for a terminal to print."""
    out = io.StringIO()
    segno.make_qr(url, error="m").terminal(out=out, compact=True)
    return out.getvalue()
