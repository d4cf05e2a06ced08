"""The sealed registration handoff: user data in a compact JWE, ``dir`` + ``A256GCM``.

A customer's server registers a user and gets back a one-time URL. The URL carries the user data
sealed with a 32-byte key that only authz holds: AES-256-GCM (RFC 7518 section 5.3) keeps it
secret and authenticates it together with the protected header, which is the GCM additional
authenticated data (RFC 7516 section 5.1 step 14). Any change to the header, IV, ciphertext or
tag makes decryption fail, and we report that as ``tampered``. The plaintext carries its own
``iat`` and ``exp``, checked like a JWT's (RFC 7519 section 4.1.4).

``dir`` means the key is used as the content encryption key directly, so the JWE Encrypted Key
part must be empty (RFC 7516 section 5.2 step 10). We also refuse any header parameter we did not
write, notably ``zip``, which would make us inflate attacker-chosen data.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Final

from joserfc import jwe
from joserfc.jwk import OctKey

from lychgate.errors import UsageError
from lychgate.secret import Secret
from lychgate.tokens.claims import check_times
from lychgate.tokens.clock import numeric_date, require_aware
from lychgate.tokens.compact import (
    JWE_SHAPE,
    b64decode,
    b64encode,
    check_shape,
    decode_header,
    dumps,
    json_object,
)
from lychgate.tokens.errors import Reason, fail

SEALED_TYP: Final = "lychgate-reg+jwt"
#: Life of a registration handoff URL (DESIGN.md, token table).
REGISTRATION_TTL: Final = timedelta(minutes=10)
KEY_BYTES: Final = 32

_ALG: Final = "dir"
_ENC: Final = "A256GCM"
_REGISTRY: Final = jwe.JWERegistry(algorithms=[_ALG, _ENC])
_HEADER_NAMES: Final = frozenset({"alg", "enc", "typ"})
_IV_BYTES: Final = 12  # 96-bit IV (RFC 7518 section 5.3)
_TAG_BYTES: Final = 16  # 128-bit authentication tag (RFC 7518 section 5.3)

# 32 bytes are 43 base64url characters, the last carrying 2 zero padding bits.
_KEY_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")

SealKey = Secret | bytes


def new_seal_key() -> Secret:
    """A fresh random 256-bit key, base64url inside a :class:`Secret` (for config files)."""
    return Secret(b64encode(secrets.token_bytes(KEY_BYTES)))


def seal(payload: Mapping[str, str | None], key: SealKey, *, now: datetime, ttl: timedelta) -> str:
    """Encrypt ``payload`` for ``ttl`` from ``now``; returns a compact JWE."""
    require_aware(now)
    if ttl <= timedelta(0):
        raise UsageError("ttl must be positive", field="ttl")
    if not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in payload.items()
    ):
        raise UsageError("sealed payload maps strings to strings or None", field="payload")
    body = {"iat": numeric_date(now), "exp": numeric_date(now + ttl), "data": dict(payload)}
    header = {"alg": _ALG, "enc": _ENC, "typ": SEALED_TYP}
    return jwe.encrypt_compact(header, dumps(body), _import_key(key), registry=_REGISTRY)


def unseal(token: str, key: SealKey, *, now: datetime) -> dict[str, str | None]:
    """Decrypt and check a sealed token; return its payload.

    Raises :class:`~lychgate.errors.TokenError`: ``tampered`` when authentication fails,
    ``expired`` after its ``exp``, and the usual shape and header reasons.
    """
    require_aware(now)
    oct_key = _import_key(key)
    token = check_shape(token, JWE_SHAPE, "sealed token")
    header_segment, key_segment, iv_segment, ciphertext_segment, tag_segment = token.split(".")
    header = decode_header(header_segment, "sealed token")
    if header.get("alg") != _ALG or header.get("enc") != _ENC:
        fail(Reason.ALGORITHM_NOT_ALLOWED, "sealed token must use dir and A256GCM")
    if not header.keys() <= _HEADER_NAMES:
        fail(Reason.MALFORMED, "sealed token header has unsupported parameters")
    if header.get("typ") != SEALED_TYP:
        fail(Reason.WRONG_TYPE, f"token is not of type {SEALED_TYP}")
    if key_segment:
        fail(Reason.TAMPERED, "sealed token has an encrypted key, which dir forbids")
    if len(b64decode(iv_segment, "sealed token IV")) != _IV_BYTES:
        fail(Reason.TAMPERED, "sealed token IV has the wrong length")
    if len(b64decode(tag_segment, "sealed token tag")) != _TAG_BYTES:
        fail(Reason.TAMPERED, "sealed token tag has the wrong length")
    b64decode(ciphertext_segment, "sealed token ciphertext")  # canonical spelling only
    try:
        plaintext = jwe.decrypt_compact(token, oct_key, registry=_REGISTRY).plaintext
    except Exception:  # fail closed: the GCM tag failed, or the library refused the input
        plaintext = None
    if plaintext is None:
        fail(Reason.TAMPERED, "sealed token does not decrypt")

    body = json_object(plaintext, "sealed payload")
    check_times(body, now)
    data = body.get("data")
    if not isinstance(data, dict) or not all(
        v is None or isinstance(v, str) for v in data.values()
    ):
        fail(Reason.INVALID_CLAIM, "sealed payload has no data object", field="data")
    return dict(data)


def _is_value(value: object) -> bool:
    return value is None or isinstance(value, str)


def _import_key(key: SealKey) -> OctKey:
    raw: bytes | None
    if isinstance(key, bytes):
        raw = key
    elif _KEY_SHAPE.fullmatch(key.reveal()):
        raw = base64.urlsafe_b64decode(key.reveal() + "=")
    else:
        raw = None
    if raw is None or len(raw) != KEY_BYTES:
        raise UsageError(f"the seal key must be {KEY_BYTES} bytes", field="seal_key")
    return OctKey.import_key(raw)
