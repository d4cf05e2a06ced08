"""The identity assertion the gateway sends upstream in ``X-Lychgate-Assertion``.

An ES256 JWS with ``aud`` set to the app's slug, so an assertion minted for one app is useless
at another (RFC 7519 section 4.1.3). It lives 60 seconds; the gateway caches one per
(session, app) and re-mints it shortly before it expires. Upstream apps verify it with any JWT
library against ``/.lychgate/jwks.json``; :func:`verify_assertion` is our own strict verifier.
"""

from __future__ import annotations

from datetime import datetime

from lychgate.errors import UsageError
from lychgate.ids import AppSlug, UserId
from lychgate.tokens.claims import (
    ASSERTION_TYP,
    IdentityAssertion,
    check_issuer,
    check_times,
    dates,
    read_bool,
    read_optional_str,
    read_str,
    read_str_tuple,
)
from lychgate.tokens.clock import numeric_date
from lychgate.tokens.errors import Reason, fail
from lychgate.tokens.jws import Verifier
from lychgate.tokens.keys import Keyring


def encode_assertion(keyring: Keyring, claims: IdentityAssertion) -> str:
    """Sign ``claims`` as an identity assertion. ``email`` is left out when None."""
    iat, exp = numeric_date(claims.iat), numeric_date(claims.exp)
    if exp <= iat:
        raise UsageError("assertion would be born expired", field="exp")
    payload: dict[str, object] = {
        "iss": claims.iss,
        "aud": claims.aud,
        "sub": claims.sub,
        "name": claims.name,
        "groups": list(claims.groups),
        "adm": claims.adm,
        "iat": iat,
        "exp": exp,
    }
    if claims.email is not None:
        payload["email"] = claims.email
    return keyring.sign(ASSERTION_TYP, payload)


def verify_assertion(
    verifier: Verifier,
    token: str,
    *,
    now: datetime,
    issuer: str,
    audience: AppSlug,
) -> IdentityAssertion:
    """Verify an identity assertion: signature, type, times, ``iss``, then ``aud``.

    ``aud`` must be a single string equal to ``audience``: we never issue the array form.
    Raises :class:`~lychgate.errors.TokenError`.
    """
    claims = verifier.verify(token, ASSERTION_TYP).claims
    iat, exp = check_times(claims, now)
    check_issuer(claims, issuer)
    if read_str(claims, "aud") != audience:
        fail(Reason.WRONG_AUDIENCE, "assertion is for another audience", field="aud")
    issued, expires = dates(iat, exp)
    return IdentityAssertion(
        iss=issuer,
        aud=audience,
        sub=UserId(read_str(claims, "sub")),
        email=read_optional_str(claims, "email"),
        name=read_str(claims, "name", empty=True),
        groups=read_str_tuple(claims, "groups"),
        adm=read_bool(claims, "adm"),
        iat=issued,
        exp=expires,
    )
