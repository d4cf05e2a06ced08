"""Keys and tokens, without I/O.

* :mod:`~lychgate.tokens.keys`: ES256 signing keys, :class:`Keyring`, :class:`PublicKeyring`,
  :func:`rotate`, JWKS.
* :mod:`~lychgate.tokens.app_token` and :mod:`~lychgate.tokens.assertion`: the two JWS tokens.
* :mod:`~lychgate.tokens.sealed`: the JWE registration handoff.
* :mod:`~lychgate.tokens.onetime`: one-time codes and links.
* :mod:`~lychgate.tokens.cache`: the gateway's verification cache.
* :mod:`~lychgate.tokens.errors`: the reasons a :class:`~lychgate.errors.TokenError` carries.
"""

from lychgate.tokens.app_token import encode_app_token, verify_app_token
from lychgate.tokens.assertion import encode_assertion, verify_assertion
from lychgate.tokens.cache import CachedVerifier
from lychgate.tokens.claims import (
    APP_TOKEN_TYP,
    ASSERTION_TTL,
    ASSERTION_TYP,
    AppTokenClaims,
    IdentityAssertion,
)
from lychgate.tokens.clock import CLOCK_SKEW
from lychgate.tokens.errors import Reason
from lychgate.tokens.jws import VerifiedJWS, Verifier
from lychgate.tokens.keys import Keyring, PublicKeyring, generate_signing_key, rotate
from lychgate.tokens.onetime import (
    Purpose,
    code_hash,
    make_one_time,
    new_code,
    read_payload,
)
from lychgate.tokens.sealed import REGISTRATION_TTL, new_seal_key, seal, unseal

__all__ = [
    "APP_TOKEN_TYP",
    "ASSERTION_TTL",
    "ASSERTION_TYP",
    "CLOCK_SKEW",
    "REGISTRATION_TTL",
    "AppTokenClaims",
    "CachedVerifier",
    "IdentityAssertion",
    "Keyring",
    "PublicKeyring",
    "Purpose",
    "Reason",
    "VerifiedJWS",
    "Verifier",
    "code_hash",
    "encode_app_token",
    "encode_assertion",
    "generate_signing_key",
    "make_one_time",
    "new_code",
    "new_seal_key",
    "read_payload",
    "rotate",
    "seal",
    "unseal",
    "verify_app_token",
    "verify_assertion",
]
