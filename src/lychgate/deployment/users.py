"""Adding, disabling, enabling and promoting users from the command line or an admin API."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import TYPE_CHECKING, Final

from lychgate.domain import AuditEvent, User
from lychgate.errors import ClientError, Conflict
from lychgate.ids import SessionId, UserId, new_id
from lychgate.tokens import Purpose, read_payload

if TYPE_CHECKING:
    from lychgate.store import Store

_PAGE: Final = 1000  # users read per query

# Deliberately loose (RFC 5322 is not a validation grammar): one @, a dot in the domain.
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+")
LAST_ADMIN = (
    "this is the last admin: make another user an admin first (lychgate user update NAME --admin)"
)


def check_email(email: str) -> str:
    """A well-formed e-mail address, trimmed, its domain in lower case; ClientError if not.

    The local part keeps its case, as given: it is what apps receive. Whether two addresses
    are the same is the store's one rule, whatever the case (``users.email_key``): no two
    users share an address, and a lookup by address finds its user however it is spelt.
    """
    email = email.strip()
    if len(email) > 254 or not _EMAIL.fullmatch(email) or not is_plain_text(email):
        raise ClientError("is not an e-mail address", field="email")
    local, _, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}"


# Unicode categories no name holds: controls (C0, DEL, C1), surrogates, private use,
# unassigned, and line or paragraph separators. Spaces of every kind stay (an ideographic
# space in a Japanese name, a no-break space), and so do the joiners (ZWJ in emoji, ZWNJ in
# Persian); the bidi controls go, which would make a name read otherwise on an approval screen.
_NOT_IN_TEXT: Final = frozenset({"Cc", "Cs", "Co", "Cn", "Zl", "Zp"})
_BIDI_CONTROLS: Final = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def is_plain_text(text: str) -> bool:
    """Whether ``text`` holds only what may be shown as a name (see :data:`_NOT_IN_TEXT`)."""
    return not any(c in _BIDI_CONTROLS or unicodedata.category(c) in _NOT_IN_TEXT for c in text)


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 100 or not is_plain_text(name):
        raise ClientError("give a name of 1-100 printable characters", field="name")
    return name


async def all_users(store: Store) -> list[User]:
    """Every user, oldest first, read a page at a time (the store's pages are bounded)."""
    users: list[User] = []
    while True:
        page = await store.users.list(limit=_PAGE, offset=len(users))
        users.extend(page)
        if len(page) < _PAGE:
            return users


async def add_user(
    store: Store,
    *,
    name: str,
    email: str | None,
    now: datetime,
    is_admin: bool = False,
    external_id: str | None = None,
) -> User:
    """Create a user and audit it.

    Conflict if the e-mail address is taken (ignoring case): the store decides, in the same
    insert, so two adds at once cannot both get it (a look first would let both through).
    """
    clean_email = check_email(email) if email else None
    user = User(
        id=UserId(new_id("usr_")),
        name=check_name(name),
        email=clean_email,
        external_id=external_id,
        is_admin=is_admin,
        disabled=False,
        created_at=now,
    )
    await store.users.add(user)
    await store.audit.append(
        AuditEvent(None, now, "user.added", None, None, None, {"user": user.id})
    )
    return user


async def disable_user(store: Store, user: User, now: datetime) -> list[SessionId]:
    """Disable ``user`` and end every session of theirs; returns the sessions ended.

    From then on authz refuses the user everywhere (sign-in, device API, portal, handoff,
    enrollment), gateways drop them from their snapshot, and the revocations close the
    WebSockets their sessions hold, all within seconds. What they had begun ends too, so that
    :func:`enable_user` brings none of it back: their open enrollment links are cancelled, and
    the sign-ins their devices approved that no browser has finished yet are denied (a browser
    holding one could otherwise finish it into a session once the user is enabled again, for
    the rest of its two minutes). The last enabled admin cannot be disabled (Conflict): nobody
    could administer the deployment afterwards.
    """
    if user.is_admin and not user.disabled and await store.users.count_admins() <= 1:
        raise Conflict(LAST_ADMIN, field="user")
    if not user.disabled:
        await store.users.update(user.id, disabled=True)
    # After the update: an approval racing it either committed before (and is denied here) or
    # finds the user disabled (the store's approve checks it in the same statement).
    ended = list(await store.sessions.revoke_all_for_user(user.id, now))
    denied = await store.login_requests.deny_approved(user_id=user.id)
    links = await cancel_enrollment_links(store, user.id, now)
    details = {
        "user": user.id,
        "sessions_ended": str(len(ended)),
        "sign_ins_denied": str(len(denied)),
        "links_cancelled": str(links),
    }
    await store.audit.append(AuditEvent(None, now, "user.disabled", None, None, None, details))
    return ended


async def cancel_enrollment_links(store: Store, user_id: UserId, now: datetime) -> int:
    """Make every enrollment link of ``user_id`` still open unusable; returns how many.

    For a link sent to the wrong address, or lost; ``lychgate user disable`` does it too, so
    that enabling the user again does not bring old links back.
    """
    mine = [
        code.code_hash
        for code in await store.one_time_codes.pending(Purpose.ENROLL, now)
        if read_payload(code).get("user_id") == user_id
    ]
    return await store.one_time_codes.discard(mine)


async def cancel_links(store: Store, user: User, now: datetime) -> int:
    """:func:`cancel_enrollment_links` on an admin's request, in the audit log."""
    cancelled = await cancel_enrollment_links(store, user.id, now)
    details = {"user": user.id, "links_cancelled": str(cancelled)}
    await store.audit.append(
        AuditEvent(None, now, "user.links_cancelled", None, None, None, details)
    )
    return cancelled


async def enable_user(store: Store, user: User, now: datetime) -> bool:
    """Let ``user`` sign in again (their ended sessions stay ended); returns whether this
    changed anything. A user already enabled is left alone, with no audit event, as an app
    already enabled is (:func:`lychgate.deployment.apps.set_app_enabled`)."""
    if not user.disabled:
        return False
    await store.users.update(user.id, disabled=False)
    await store.audit.append(
        AuditEvent(None, now, "user.enabled", None, None, None, {"user": user.id})
    )
    return True


async def set_admin(store: Store, user: User, is_admin: bool, now: datetime) -> list[SessionId]:
    """Give ``user`` the admin flag or take it away; returns the sessions ended.

    Taking it away ends every session of theirs: their app tokens say ``adm`` and the gateway
    believes the token, so an admins-only app would stay open to them until the tokens
    expired. They sign in again as a plain user. The last enabled admin keeps the flag
    (Conflict), as in :func:`disable_user`. A new admin's rights reach each app with the next
    token the portal hands them (or at their next sign-in).
    """
    if user.is_admin == is_admin:
        return []
    if not is_admin and not user.disabled and await store.users.count_admins() <= 1:
        raise Conflict(LAST_ADMIN, field="user")
    await store.users.update(user.id, is_admin=is_admin)
    ended = [] if is_admin else list(await store.sessions.revoke_all_for_user(user.id, now))
    details = {
        "user": user.id,
        "is_admin": str(is_admin).lower(),
        "sessions_ended": f"{len(ended)}",
    }
    await store.audit.append(AuditEvent(None, now, "user.updated", None, None, None, details))
    return ended
