"""Minting an app token outside the sign-in flow: for operators' scripts and benchmarks.

Whoever can read the deployment directory can already sign anything, so this adds no power;
it makes a real session row, so the token can be revoked like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from lychgate.config import Settings
from lychgate.deployment.keys import load_keyring
from lychgate.domain import AuditEvent, Session
from lychgate.errors import NotFound
from lychgate.ids import (
    SESSION_ID_PREFIX,
    AppSlug,
    SessionId,
    UserId,
    new_id,
    session_handle,
    token_sid,
)
from lychgate.store import Store
from lychgate.tokens import AppTokenClaims, encode_app_token


@dataclass(frozen=True, slots=True)
class Minted:
    token: str
    handle: str  # the session's public name (never its id: ids.session_handle)
    expires_at: datetime


def cookie_name(settings: Settings) -> str:
    """``__Host-lychgate`` on https (RFC 6265bis §4.1.3.2), ``lychgate`` on plain http."""
    return "__Host-lychgate" if settings.is_https else "lychgate"


async def mint_app_token(
    store: Store, settings: Settings, *, user: str, app: str, now: datetime, ttl: int | None = None
) -> Minted:
    """Open a session for ``user`` (id or e-mail) and sign an app token for ``app``."""
    found = await store.users.get_by_email(user)
    if found is None:
        try:
            found = await store.users.get(UserId(user))
        except NotFound:
            raise NotFound(f"no user {user!r}", field="user") from None
    if found.disabled:
        raise NotFound(f"user {user!r} is disabled", field="user")
    target = await store.apps.get_by_slug(AppSlug(app))
    if target is None:
        raise NotFound(f"no app {app!r}", field="app")
    life = timedelta(seconds=min(ttl or settings.app_token_ttl, settings.session_ttl))
    sid = SessionId(new_id(SESSION_ID_PREFIX))
    session = Session(sid, found.id, None, now, now + life, now, False, "lychgate token mint", "")
    await store.sessions.create(session)
    keyring = await load_keyring(store.signing_keys, now)
    claims = AppTokenClaims(
        sid=token_sid(sid),  # never the id: it would open the portal (ids.session_handle)
        sub=found.id,
        app=target.slug,
        adm=found.is_admin,
        iss=settings.public_url,
        iat=now,
        exp=now + life,
    )
    await store.audit.append(
        AuditEvent(None, now, "token.minted", found.id, None, None, {"app": target.slug})
    )
    return Minted(encode_app_token(keyring, claims), session_handle(sid), now + life)
