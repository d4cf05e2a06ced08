"""Minting an app token outside the sign-in flow: for operators' scripts and benchmarks.

Whoever can read the deployment directory can already sign anything, so this adds no power;
it makes a real session row, so the token can be revoked like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from lychgate.config import Settings
from lychgate.config.settings import MAX_TTL
from lychgate.deployment.enroll import find_user
from lychgate.deployment.keys import load_keyring
from lychgate.domain import App, AppPolicy, AuditEvent, Session, User
from lychgate.errors import ClientError, Conflict, NotFound
from lychgate.ids import (
    SESSION_ID_PREFIX,
    AppSlug,
    SessionId,
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
    """Open a session for ``user`` (e-mail, id or unique name, as every user command takes)
    and sign an app token for ``app``, lasting ``ttl`` seconds (default ``app_token_ttl``).

    Refuses what the gateway would refuse anyway (a disabled user or app, an admins-only app
    for a user who is not an admin): a token that only ever gets a 403 helps no script.
    """
    life = timedelta(seconds=check_ttl(ttl, settings))
    found = await find_user(store, user)
    if found.disabled:
        raise NotFound(f"user {user!r} is disabled", field="user")
    target = await store.apps.get_by_slug(AppSlug(app))
    if target is None:
        raise NotFound(f"no app {app!r}", field="app")
    check_may_open(found, target)
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


def check_ttl(ttl: int | None, settings: Settings) -> int:
    """The token's lifetime in seconds: ``ttl``, at least 1 and at most ``session_ttl`` (its
    session lasts as long, and no session may outlive that bound, itself at most
    :data:`~lychgate.config.settings.MAX_TTL`); refused otherwise rather than quietly replaced
    by another value."""
    if ttl is None:
        return settings.app_token_ttl
    if ttl < 1:
        raise ClientError("must be at least 1 second", field="ttl")
    if ttl > MAX_TTL:  # no setting allows more: raising session_ttl would not help
        raise ClientError(
            f"must be at most {MAX_TTL} s (400 days, the longest a browser keeps a cookie)",
            field="ttl",
        )
    if ttl > settings.session_ttl:
        raise ClientError(
            f"must be at most session_ttl ({settings.session_ttl} s); raise session_ttl in "
            "lychgate.toml for longer tokens",
            field="ttl",
        )
    return ttl


def check_may_open(user: User, app: App) -> None:
    """Refuse a token the gateway would answer with a 403 (or not route at all)."""
    if not app.enabled:
        raise Conflict(f"app {app.slug!r} is disabled", field="app")
    if app.policy is AppPolicy.ADMINS and not user.is_admin:
        raise Conflict(
            f"app {app.slug!r} is for admins only (policy admins) and {user.name!r} is not an "
            f"admin: choose an admin, or `lychgate app update {app.slug} --policy any-user`",
            field="user",
        )
