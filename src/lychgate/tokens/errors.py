"""Why a token was refused: the closed set of :attr:`lychgate.errors.TokenError.reason` values.

Every failure in :mod:`lychgate.tokens` raises :class:`~lychgate.errors.TokenError` with one of
these reasons, never a joserfc or cryptography exception. Callers branch on the reason only to
pick a log line or a metric label; the HTTP outcome is the same for all of them (refuse, fail
closed). Messages name the failing check but never echo key material or the token itself.
"""

from __future__ import annotations

import enum
from typing import NoReturn

from lychgate.errors import TokenError


class Reason(enum.StrEnum):
    """Which check a token failed."""

    MALFORMED = "malformed"  # not a compact JWS/JWE, bad base64url, bad JSON, unknown header
    TOO_LARGE = "too_large"  # longer than we ever issue; refused before any parsing
    ALGORITHM_NOT_ALLOWED = "algorithm_not_allowed"  # alg/enc outside the allowlist ("none"...)
    UNKNOWN_KID = "unknown_kid"  # no kid, or a kid that is not in the verification key set
    BAD_SIGNATURE = "bad_signature"  # the ES256 signature does not verify
    TAMPERED = "tampered"  # JWE authentication failed: ciphertext, IV, tag or header changed
    WRONG_TYPE = "wrong_type"  # the typ header names another kind of token
    MISSING_CLAIM = "missing_claim"
    INVALID_CLAIM = "invalid_claim"  # a claim has the wrong JSON type or an empty value
    EXPIRED = "expired"  # now >= exp
    NOT_YET_VALID = "not_yet_valid"  # nbf or iat lies in the future (beyond the clock skew)
    WRONG_ISSUER = "wrong_issuer"
    WRONG_AUDIENCE = "wrong_audience"  # aud, or the app token's app, is not the expected one
    REPLAYED = "replayed"  # a one-time code or link that was already redeemed


def fail(reason: Reason, message: str, *, field: str | None = None) -> NoReturn:
    """Raise a :class:`TokenError` for ``reason``. A helper so every raise site looks alike."""
    raise TokenError(message, reason=reason, field=field)
