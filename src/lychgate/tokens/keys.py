"""ES256 signing keys, the keyring that signs and verifies, and the public keyring (JWKS).

Theory of operation. authz keeps a list of :class:`~lychgate.domain.SigningKey` in the store.
The newest key that has been created and not retired signs. :func:`rotate` makes a new key and
retires the previous signer, which keeps verifying until ``verify_until``: by then every token
it signed has expired. A key with ``created_at`` in the future is published in the JWKS but does
not sign yet, so a site can pre-publish the next key before switching to it.

The gateway has no private keys. It receives the JWKS over its config feed and builds a
:class:`PublicKeyring` from it. Both keyrings import their keys once, at construction, so
verification never parses a key.

``kid`` is the RFC 7638 JWK thumbprint (SHA-256) of the public key: stable, collision-free,
and recomputable by anyone holding the JWKS.

Private key material lives only inside :class:`~lychgate.secret.Secret` (for storage) and inside
the keyring's slots (imported). Neither ``repr`` nor any error message shows it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Final, NoReturn

from joserfc.jwk import ECKey

from lychgate.domain import SigningKey
from lychgate.errors import ConfigError, UsageError
from lychgate.ids import KeyId
from lychgate.secret import Secret
from lychgate.tokens import jws
from lychgate.tokens.clock import require_aware

CURVE: Final = "P-256"
_PUBLIC_MEMBERS: Final = ("kty", "crv", "x", "y")


def generate_signing_key(now: datetime) -> SigningKey:
    """A fresh P-256 key for ES256, created at ``now``; its kid is its RFC 7638 thumbprint."""
    require_aware(now)
    key = ECKey.generate_key(CURVE, parameters={"alg": jws.ALGORITHM, "use": "sig"}, private=True)
    kid = KeyId(key.thumbprint())
    private_jwk = json.dumps(key.as_dict(private=True, kid=kid), sort_keys=True)
    return SigningKey(kid=kid, private_jwk=Secret(private_jwk), created_at=now)


def rotate(
    keys: Sequence[SigningKey], now: datetime, max_token_life: timedelta
) -> list[SigningKey]:
    """Return the key list after a rotation at ``now``.

    A new key signs from ``now``. Every key that could still sign is retired at ``now`` and
    verifies until ``now + max_token_life``, the longest a token it signed can live. Retired keys
    past their ``verify_until`` are dropped. The caller stores the result.
    """
    require_aware(now)
    if max_token_life <= timedelta(0):
        raise UsageError("max_token_life must be positive", field="max_token_life")
    kept: list[SigningKey] = []
    for key in keys:
        if not _is_retired(key, now):
            kept.append(replace(key, retired_at=now, verify_until=now + max_token_life))
        elif key.verify_until is not None and key.verify_until > now:
            kept.append(key)
    kept.append(generate_signing_key(now))
    return kept


class PublicKeyring:
    """Public ES256 keys by kid: what a verifier without private keys holds.

    Immutable. Equal keyrings hold the same kids with the same public keys, which is how a cache
    in front of one notices that the key set changed.
    """

    __slots__ = ("_identity", "_jwks", "_keys")

    _keys: Mapping[str, ECKey]
    _jwks: tuple[dict[str, str], ...]
    _identity: frozenset[tuple[str, str, str]]

    def __init__(self, keys: Iterable[ECKey]) -> None:
        """Build from public :class:`joserfc.jwk.ECKey` objects that carry a kid.

        Prefer :meth:`from_jwks` or :attr:`Keyring.public`.
        """
        by_kid: dict[str, ECKey] = {}
        jwks: list[dict[str, str]] = []
        for key in keys:
            kid = key.kid
            if not kid or kid in by_kid:
                _bad_key("every public key needs a distinct kid", "jwks")
            if key.is_private or key.curve_name != CURVE:
                _bad_key(f"key {kid} is not a public {CURVE} key", "jwks")
            by_kid[kid] = key
            jwk = {name: str(key.as_dict(private=False)[name]) for name in _PUBLIC_MEMBERS}
            jwks.append({**jwk, "kid": kid, "alg": jws.ALGORITHM, "use": "sig"})
        object.__setattr__(self, "_keys", by_kid)
        object.__setattr__(self, "_jwks", tuple(jwks))
        object.__setattr__(self, "_identity", frozenset((j["kid"], j["x"], j["y"]) for j in jwks))

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any]) -> PublicKeyring:
        """Import a JWK Set (RFC 7517 section 5) of ES256 public keys, strictly.

        Every key must be EC on P-256 with a kid; ``alg`` and ``use``, when present, must be
        ES256 and ``sig``. A key with private members is refused, never silently stripped.
        Raises :class:`~lychgate.errors.ConfigError` naming the problem.
        """
        members = jwks.get("keys")
        if not isinstance(members, list):
            _bad_key("JWKS has no 'keys' list", "jwks")
        keys: list[ECKey] = []
        for member in members:
            keys.append(_import_public(member))
        return cls(keys)

    @property
    def kids(self) -> frozenset[str]:
        """The kids this keyring verifies."""
        return frozenset(self._keys)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public keys as a JWK Set with kid, alg and use. A fresh copy on every call."""
        return {"keys": [dict(jwk) for jwk in self._jwks]}

    def verify(self, token: str, typ: str) -> jws.VerifiedJWS:
        """Verify a compact JWS of type ``typ``; see :func:`lychgate.tokens.jws.verify`."""
        return jws.verify(token, typ, self._keys)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicKeyring):
            return NotImplemented
        return self._identity == other._identity

    def __hash__(self) -> int:
        return hash(self._identity)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __repr__(self) -> str:
        return f"PublicKeyring(kids={sorted(self._keys)!r})"


class Keyring:
    """Signing keys as of ``now``: one signer (if any) and the keys that verify. Immutable.

    Build a new keyring when the key list or the time window changes; it is cheap next to the
    tokens it signs. Only keys that verify at ``now`` are imported.
    """

    __slots__ = ("_public", "_signer", "_signer_key", "_verification")

    _signer: SigningKey | None
    _signer_key: ECKey | None
    _verification: tuple[SigningKey, ...]
    _public: PublicKeyring

    def __init__(self, keys: Sequence[SigningKey], now: datetime) -> None:
        require_aware(now)
        if len({k.kid for k in keys}) != len(keys):
            _bad_key("two signing keys share a kid", "signing_keys")
        verification = tuple(k for k in keys if _verifies(k, now))
        imported = {k.kid: _import_private(k) for k in verification}
        candidates = [k for k in verification if not _is_retired(k, now) and k.created_at <= now]
        signer = max(candidates, key=lambda k: (k.created_at, k.kid), default=None)
        object.__setattr__(self, "_signer", signer)
        object.__setattr__(self, "_signer_key", None if signer is None else imported[signer.kid])
        object.__setattr__(self, "_verification", verification)
        public = PublicKeyring(_public_of(kid, key) for kid, key in imported.items())
        object.__setattr__(self, "_public", public)

    @property
    def signer(self) -> SigningKey:
        """The key that signs: the newest created, non-retired key. ConfigError if none."""
        if self._signer is None:
            raise ConfigError("no active signing key: rotate the keys", field="signing_keys")
        return self._signer

    @property
    def verification_keys(self) -> tuple[SigningKey, ...]:
        """Non-retired keys, plus retired keys whose ``verify_until`` is still ahead."""
        return self._verification

    @property
    def public(self) -> PublicKeyring:
        """The public half, for verification and for the JWKS."""
        return self._public

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The JWK Set served at ``/.lychgate/jwks.json``: public keys only, with kid/alg/use."""
        return self._public.jwks()

    def sign(self, typ: str, claims: Mapping[str, object]) -> str:
        """Sign ``claims`` as a compact ES256 JWS of type ``typ`` with the current signer."""
        signer = self.signer
        assert self._signer_key is not None
        return jws.sign(self._signer_key, signer.kid, typ, claims)

    def verify(self, token: str, typ: str) -> jws.VerifiedJWS:
        """Verify a compact JWS of type ``typ`` against :attr:`verification_keys`."""
        return self._public.verify(token, typ)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __repr__(self) -> str:
        signer = None if self._signer is None else self._signer.kid
        return f"Keyring(signer={signer!r}, verifies={sorted(self._public.kids)!r})"


def _is_retired(key: SigningKey, now: datetime) -> bool:
    return key.retired_at is not None and key.retired_at <= now


def _verifies(key: SigningKey, now: datetime) -> bool:
    if not _is_retired(key, now):
        return True
    return key.verify_until is not None and key.verify_until > now


def _bad_key(message: str, field: str) -> NoReturn:
    raise ConfigError(message, field=field)


def _import_private(key: SigningKey) -> ECKey:
    # Errors are raised "from None" and name only the kid: a library message or a chained
    # exception could quote the key material.
    try:
        data = json.loads(key.private_jwk.reveal())
        imported = ECKey.import_key(data) if isinstance(data, dict) else None
    except Exception:
        imported = None
    if imported is None or not imported.is_private or imported.curve_name != CURVE:
        raise ConfigError(
            f"signing key {key.kid} is not a private {CURVE} JWK", field="signing_keys"
        ) from None
    if imported.kid not in (None, key.kid):
        raise ConfigError(
            f"signing key {key.kid} holds a JWK with another kid", field="signing_keys"
        )
    return imported


def _public_of(kid: str, key: ECKey) -> ECKey:
    data = key.as_dict(private=False)
    return ECKey.import_key({name: data[name] for name in _PUBLIC_MEMBERS} | {"kid": kid})


def _import_public(member: object) -> ECKey:
    if not isinstance(member, dict):
        _bad_key("a JWKS member is not an object", "jwks")
    kid = member.get("kid")
    if not isinstance(kid, str) or not kid:
        _bad_key("a JWKS key has no kid", "jwks")
    if member.get("kty") != "EC" or member.get("crv") != CURVE:
        _bad_key(f"JWKS key {kid} is not an EC {CURVE} key", "jwks")
    if member.get("alg", jws.ALGORITHM) != jws.ALGORITHM or member.get("use", "sig") != "sig":
        _bad_key(f"JWKS key {kid} is not for ES256 signatures", "jwks")
    if "d" in member:
        _bad_key(f"JWKS key {kid} holds private key material", "jwks")
    x, y = member.get("x"), member.get("y")
    if not isinstance(x, str) or not isinstance(y, str):
        _bad_key(f"JWKS key {kid} has no x and y coordinates", "jwks")
    try:
        # cryptography checks that (x, y) is on the curve (no invalid-curve points).
        return ECKey.import_key({"kty": "EC", "crv": CURVE, "x": x, "y": y, "kid": kid})
    except Exception:
        raise ConfigError(f"JWKS key {kid} is not a valid public key", field="jwks") from None
