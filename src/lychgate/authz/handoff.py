"""One-time handoff codes: how a signed-in browser gets an app's cookie from the gateway.

authz issues a code bound to (session, app) and sends the browser to the app host's
``/.lychgate/callback?code=…&state=…``; the gateway redeems it over the back channel and sets
the cookie. A code lives 60 s and redeems once (an atomic UPDATE in the store); the session, the
user and the app's policy are checked again at redemption, not only at issue.

Codes are made only by the portal's ``open`` (:mod:`lychgate.authz.portal.page`), for a request
carrying the sign-in state that the app host's gateway set in a cookie at ``/.lychgate/start``;
the callback takes the code only with that same state, so a code works only in the browser that
asked for it (login CSRF, THREAT_MODEL T30: see :mod:`lychgate.gateway.signin_state`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from lychgate.authz.context import AuthzContext
from lychgate.domain import AppPolicy
from lychgate.errors import TokenError
from lychgate.ids import AppSlug, SessionId, token_sid
from lychgate.tokens import (
    AppTokenClaims,
    Keyring,
    Purpose,
    Reason,
    code_hash,
    encode_app_token,
    make_one_time,
    read_payload,
)
from lychgate.tokens.onetime import HANDOFF_TTL


async def issue_handoff(ctx: AuthzContext, session_id: SessionId, app: AppSlug) -> str:
    """A fresh one-time code that the gateway exchanges for an app token."""
    code, record = make_one_time(
        Purpose.HANDOFF, {"sid": session_id, "app": app}, ctx.clock(), HANDOFF_TTL
    )
    await ctx.store.one_time_codes.add(record)
    return code


def _refuse(message: str) -> TokenError:
    return TokenError(message, reason=Reason.REPLAYED, field="code")


async def redeem_handoff(ctx: AuthzContext, code: str) -> str:
    """Redeem ``code`` once and return the app token (TokenError when refused)."""
    now = ctx.clock()
    # The keyring first: without a usable signing key (ConfigError, answered 503) the code must
    # not be spent, or every sign-in during a key outage would have to start over.
    keyring = Keyring(await ctx.store.signing_keys.list(), now)
    _ = keyring.signer  # raises ConfigError now, before the code is spent
    record = await ctx.store.one_time_codes.redeem(code_hash(code), Purpose.HANDOFF, now)
    if record is None:
        raise _refuse("unknown, used or expired code")
    payload = read_payload(record)
    sid, slug = SessionId(str(payload["sid"])), AppSlug(str(payload["app"]))
    return await app_token_for(ctx, sid, slug, now, keyring=keyring)


async def app_token_for(
    ctx: AuthzContext,
    sid: SessionId,
    slug: AppSlug,
    now: datetime,
    *,
    keyring: Keyring | None = None,
) -> str:
    """Sign an app token for a live session and an app its user may open."""
    store = ctx.store
    session = await store.sessions.get(sid)
    if session.revoked or session.expires_at <= now:
        raise _refuse("session is no longer valid")
    user = await store.users.get(session.user_id)
    app = await store.apps.get_by_slug(slug)
    if user.disabled or app is None or not app.enabled:
        raise _refuse("user or app is no longer available")
    if app.policy is AppPolicy.ADMINS and not user.is_admin:
        raise TokenError("app is for admins only", reason=Reason.WRONG_AUDIENCE, field="app")
    ttl = ctx.settings.app_token_ttl
    exp = min(session.expires_at, now + _seconds(ttl))
    claims = AppTokenClaims(
        sid=token_sid(sid),  # never the id: the portal's cookie holds that (ids.session_handle)
        sub=user.id,
        app=slug,
        adm=user.is_admin,
        iss=ctx.settings.public_url,
        iat=now,
        exp=exp,
    )
    if keyring is None:
        keyring = Keyring(await store.signing_keys.list(), now)
    return encode_app_token(keyring, claims)


def _seconds(n: int) -> timedelta:
    return timedelta(seconds=n)
