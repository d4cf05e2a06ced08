"""Compact JWS signed with ES256, and nothing else (RFC 7515, RFC 7518 section 3.4).

Signing goes through joserfc with an explicit one-algorithm registry. Verification first reads
the token strictly (:mod:`lychgate.tokens.compact`), refuses any header we did not write, picks
the key by ``kid`` from a set imported once, and then checks the signature with joserfc's ES256
model from that same registry. Skipping joserfc's own re-parse keeps the gateway's hot path lean;
the allowlist is enforced twice (our header check and the registry).

Token kinds are told apart by the ``typ`` header (explicit typing, RFC 8725 section 3.11), so an
identity assertion can never pass as an app token or the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from joserfc import jws
from joserfc.jwk import ECKey

from lychgate.tokens.compact import (
    JWS_SHAPE,
    b64decode,
    check_shape,
    decode_header,
    dumps,
    freeze_object,
    json_object,
)
from lychgate.tokens.errors import Reason, fail

ALGORITHM: Final = "ES256"
_REGISTRY: Final = jws.JWSRegistry(algorithms=[ALGORITHM])
_ES256: Final = _REGISTRY.get_alg(ALGORITHM)

# We write exactly these header parameters. Anything else is refused: "crit" names extensions we
# do not implement (RFC 7515 section 4.1.11), "b64" changes the signing input (RFC 7797), and
# "jwk", "jku", "x5u", "x5c" would let the token choose its own verification key.
_HEADER_NAMES: Final = frozenset({"alg", "kid", "typ"})
# An ES256 signature is R || S, 32 octets each (RFC 7518 section 3.4): 86 base64url characters.
_SIGNATURE_CHARS: Final = 86


@dataclass(frozen=True, slots=True)
class VerifiedJWS:
    """A JWS whose signature verified. ``claims`` is read-only; nothing about time is checked."""

    kid: str
    typ: str
    claims: Mapping[str, object]


class Verifier(Protocol):
    """Anything that checks a compact JWS signature: a keyring or a cache in front of one."""

    def verify(self, token: str, typ: str) -> VerifiedJWS:
        """Check shape, header, ``typ`` and signature; return the claims. Raise TokenError."""
        ...


def sign(key: ECKey, kid: str, typ: str, claims: Mapping[str, object]) -> str:
    """Sign ``claims`` as a compact JWS with ``{"alg": "ES256", "kid": kid, "typ": typ}``."""
    header = {"alg": ALGORITHM, "kid": kid, "typ": typ}
    return jws.serialize_compact(header, dumps(claims), key, registry=_REGISTRY)


def verify(token: str, typ: str, keys: Mapping[str, ECKey]) -> VerifiedJWS:
    """Verify a compact JWS of type ``typ`` against public ``keys`` (by kid).

    Raises :class:`~lychgate.errors.TokenError`; no library exception escapes.
    """
    token = check_shape(token, JWS_SHAPE, "token")
    header_segment, payload_segment, signature_segment = token.split(".")
    header = decode_header(header_segment, "token")

    # RFC 8725 section 3.1: the algorithm comes from our allowlist, never from the token.
    # This refuses "none", HS256 keyed with our public key, RS*, EdDSA and everything else.
    if header.get("alg") != ALGORITHM:
        fail(Reason.ALGORITHM_NOT_ALLOWED, "token algorithm is not allowed (only ES256)")
    if not header.keys() <= _HEADER_NAMES:
        fail(Reason.MALFORMED, "token header has unsupported parameters")
    if header.get("typ") != typ:
        fail(Reason.WRONG_TYPE, f"token is not of type {typ}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        fail(Reason.UNKNOWN_KID, "token has no kid")
    key = keys.get(kid)
    if key is None:
        fail(Reason.UNKNOWN_KID, "token kid is not a current verification key")

    if len(signature_segment) != _SIGNATURE_CHARS:
        fail(Reason.BAD_SIGNATURE, "token signature has the wrong length")
    signature = b64decode(signature_segment, "token signature")
    signing_input = f"{header_segment}.{payload_segment}".encode("ascii")
    try:
        good = _ES256.verify(signing_input, signature, key)
    except Exception:  # fail closed: whatever the library raises on odd input is a bad signature
        good = False
    if not good:
        fail(Reason.BAD_SIGNATURE, "token signature does not verify")

    claims = json_object(b64decode(payload_segment, "token payload"), "token payload")
    return VerifiedJWS(kid=kid, typ=typ, claims=freeze_object(claims))
