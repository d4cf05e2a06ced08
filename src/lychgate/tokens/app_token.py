"""The app token: an ES256 JWS in the app cookie that names a session, a user and one app.

The gateway runs :func:`verify_app_token` on every request (through a
:class:`~lychgate.tokens.cache.CachedVerifier`), then checks the session id against the revoked
set from its feed. The token never carries an audience: ``app`` plays that part, and passing
``app=`` makes a token issued for another app fail with ``wrong_audience`` (SECURITY.md item 5).
"""

from __future__ import annotations

from datetime import datetime

from lychgate.errors import UsageError
from lychgate.ids import AppSlug, SessionId, UserId
from lychgate.tokens.claims import (
    APP_TOKEN_TYP,
    AppTokenClaims,
    check_issuer,
    check_times,
    dates,
    read_bool,
    read_str,
)
from lychgate.tokens.clock import numeric_date
from lychgate.tokens.errors import Reason, fail
from lychgate.tokens.jws import Verifier
from lychgate.tokens.keys import Keyring


def encode_app_token(keyring: Keyring, claims: AppTokenClaims) -> str:
    """Sign ``claims`` as an app token with the keyring's current signer."""
    iat, exp = numeric_date(claims.iat), numeric_date(claims.exp)
    if exp <= iat:
        raise UsageError("app token would be born expired", field="exp")
    payload = {
        "iss": claims.iss,
        "sub": claims.sub,
        "sid": claims.sid,
        "app": claims.app,
        "adm": claims.adm,
        "iat": iat,
        "exp": exp,
    }
    return keyring.sign(APP_TOKEN_TYP, payload)


def verify_app_token(
    verifier: Verifier,
    token: str,
    *,
    now: datetime,
    issuer: str,
    app: AppSlug | None = None,
) -> AppTokenClaims:
    """Verify an app token: signature, type, ``exp``/``nbf``/``iat``, ``iss``, then ``app``.

    Raises :class:`~lychgate.errors.TokenError` with a :class:`~lychgate.tokens.errors.Reason`.
    """
    verified = verifier.verify(token, APP_TOKEN_TYP)
    claims = verified.claims
    iat, exp = check_times(claims, now)
    check_issuer(claims, issuer)
    slug = read_str(claims, "app")
    if app is not None and slug != app:
        fail(Reason.WRONG_AUDIENCE, "token was issued for another app", field="app")
    issued, expires = dates(iat, exp)
    return AppTokenClaims(
        sid=SessionId(read_str(claims, "sid")),
        sub=UserId(read_str(claims, "sub")),
        app=AppSlug(slug),
        adm=read_bool(claims, "adm"),
        iss=issuer,
        iat=issued,
        exp=expires,
        kid=verified.kid,
    )
