"""Signed device requests (docs/sign-in-protocol.md, "Device calls").

A device proves possession of its Ed25519 key on every call by signing the method, the path
with its query, a timestamp and the SHA-256 of the body. Binding the body and path means a
captured signature cannot be moved to another request; the ±60 s window bounds replay, and
inside the window every state-changing call is single-use on the server: authz records the
signature of each one (:func:`signature_fingerprint`) and refuses it a second time
(:mod:`lychgate.authz.device.auth`), so a replay inside the window changes nothing. Reads
(GET) may be repeated: they change nothing anyway.

The headers are ``Lychgate-Device``, ``Lychgate-Timestamp`` and ``Lychgate-Signature``, without
the ``X-Lychgate-`` prefix on purpose: the gateway strips every ``X-Lychgate-*`` header a client
sends (those carry identity to apps), and these must reach authz.

Public keys are checked before they are trusted (:func:`is_strong_public_key`): only the
canonical encoding of a curve point of large order is a key. A point of small order (the
all-zero key, say) has no private key behind it, and a constant signature made without any key
passes the verification equation for a good share of messages; a device enrolled with such a
key would be one anyone knowing its id could speak for.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lychgate.errors import ClientError

VERSION: Final = "lychgate-device-v1"
HEADER_DEVICE: Final = "lychgate-device"
HEADER_TIMESTAMP: Final = "lychgate-timestamp"
HEADER_SIGNATURE: Final = "lychgate-signature"
MAX_SKEW: Final = 60  # seconds


#: The ``detail`` of the 401 that refuses a signed request used before (a replay).
REPLAYED: Final = "replayed"


class DeviceAuthError(ClientError):
    """A device call's signature, key or timestamp was refused."""

    status = 401


class ReplayedRequest(DeviceAuthError):
    """A state-changing request whose signature the server has accepted once already.

    Answered apart from the other refusals (``detail`` :data:`REPLAYED`): it tells a replayer
    nothing new (the signature was good), and it tells an honest client that an identical
    request signed in the same second (Ed25519 signs deterministically) was taken for a
    replay, so it can sign again with the next second's timestamp.
    """


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str, *, field: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ClientError("is not base64url", field=field) from None


def sign_input(method: str, path: str, timestamp: int, body: bytes) -> bytes:
    """The exact bytes a device signs for one request."""
    digest = hashlib.sha256(body).hexdigest()
    return f"{VERSION}\n{method.upper()}\n{path}\n{timestamp}\n{digest}".encode()


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    device_id: str
    timestamp: int
    signature: str

    def as_dict(self) -> dict[str, str]:
        return {
            HEADER_DEVICE: self.device_id,
            HEADER_TIMESTAMP: str(self.timestamp),
            HEADER_SIGNATURE: self.signature,
        }


def sign_request(
    key: Ed25519PrivateKey, device_id: str, method: str, path: str, body: bytes, now: int
) -> SignedHeaders:
    """Headers for one signed device request (the client side)."""
    signature = key.sign(sign_input(method, path, now, body))
    return SignedHeaders(device_id, now, b64url(signature))


# Ed25519 public keys (RFC 8032 section 5.1): the twisted Edwards curve -x^2 + y^2 = 1 + d x^2 y^2
# over the field of _P elements. A point is encoded as y in 255 bits, little-endian, with the
# low bit of x in the top bit. The curve has 8 * L points (L a large prime); the 8 whose order
# divides 8 make up the small-order subgroup, and multiplying by 8 sends exactly them to the
# identity (0, 1).
_P: Final = 2**255 - 19
_D: Final = -121665 * pow(121666, -1, _P) % _P
_SQRT_M1: Final = pow(2, (_P - 1) // 4, _P)  # a square root of -1 (2 is a non-square mod _P)
_IDENTITY: Final = (0, 1)
_Y_BITS: Final = (1 << 255) - 1


def decode_point(raw: bytes) -> tuple[int, int] | None:
    """The point ``raw`` encodes, as affine ``(x, y)``; None unless it is the canonical
    encoding of a point on the curve.

    RFC 8032 section 5.1.3, strictly: a ``y`` that is not below ``_P`` is refused (step 1 says
    decoding fails; some libraries reduce it instead, which gives one point two encodings), as
    is an ``x`` of 0 with the sign bit set (step 4).
    """
    if len(raw) != 32:
        return None
    number = int.from_bytes(raw, "little")
    x_0 = number >> 255
    y = number & _Y_BITS
    if y >= _P:
        return None
    # Step 2: x^2 = (y^2 - 1) / (d y^2 + 1) = u / v. The candidate root is
    # x = u v^3 (u v^7)^((p-5)/8), which avoids inverting v; v is never 0, since -1/d is not a
    # square.
    yy = y * y % _P
    u = (yy - 1) % _P
    v = (_D * yy + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    # Step 3: the candidate is a root of u / v, or of -u / v (then times sqrt(-1)), or u / v is
    # not a square at all and no point has this y.
    vxx = v * x * x % _P
    if vxx != u:
        if vxx != (-u) % _P:
            return None
        x = x * _SQRT_M1 % _P
    # Step 4: pick the root whose low bit the encoding names; there is no "negative zero".
    if x == 0 and x_0 == 1:
        return None
    if x & 1 != x_0:
        x = _P - x
    return x, y


def _double(point: tuple[int, int]) -> tuple[int, int]:
    """``2 * point``, by the Edwards addition law with both operands equal (a = -1):
    x3 = 2xy / (1 + d x^2 y^2), y3 = (y^2 + x^2) / (1 - d x^2 y^2). The law is complete on this
    curve (d is not a square), so neither denominator is ever 0."""
    x, y = point
    xy = x * y % _P
    dxxyy = _D * xy * xy % _P
    x3 = 2 * xy * pow(1 + dxxyy, -1, _P) % _P
    y3 = (y * y + x * x) * pow(1 - dxxyy, -1, _P) % _P
    return x3, y3


@functools.lru_cache(maxsize=1024)  # a device's key is checked on every call it makes
def is_strong_public_key(raw: bytes) -> bool:
    """Whether ``raw`` may be an Ed25519 public key: the canonical encoding of a point on the
    curve whose order does not divide 8 (so ``8 * point`` is not the identity).

    Points of large order include the "mixed" ones (a key plus a small-order point); they are
    kept, as libsodium keeps them: no constant signature passes for them. What is refused is
    what no key pair makes: the eight small-order points and every non-canonical encoding.
    """
    point = decode_point(raw)
    if point is None:
        return False
    for _ in range(3):
        point = _double(point)
    return point != _IDENTITY


def public_key_from_raw(raw: bytes) -> Ed25519PublicKey:
    """``raw`` as a public key; ClientError (``public_key``) unless it is a strong one."""
    if len(raw) != 32:
        raise ClientError("must be 32 bytes (Ed25519)", field="public_key")
    if not is_strong_public_key(raw):
        raise ClientError(
            "is not the public key of an Ed25519 key pair (not a point on the curve, not "
            "canonically encoded, or of small order)",
            field="public_key",
        )
    return Ed25519PublicKey.from_public_bytes(raw)


def signature_fingerprint(signature: str) -> bytes:
    """The SHA-256 of the signature's raw bytes: what authz records to refuse a replay.

    Of the bytes, not the header's text: base64url decoding here is lenient (characters out
    of the alphabet are skipped, unused low bits ignored), so one signature has many
    spellings. The raw signature has one: OpenSSL refuses an ``S`` that is not below the group
    order, and ``R`` is hashed into the challenge.
    """
    raw = unb64url(signature, field="signature")
    return hashlib.sha256(raw).digest()


def verify_request(
    public_key: bytes,
    *,
    method: str,
    path: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    now: int,
) -> int:
    """Raise :class:`DeviceAuthError` unless the key, the signature and the timestamp hold;
    returns the signed timestamp."""
    # ASCII digits only: str.isdigit() takes "²", which int() then refuses (a 500).
    digits = timestamp is not None and timestamp.isascii() and timestamp.isdigit()
    if not digits or not signature or len(timestamp or "") > 12:
        raise DeviceAuthError("missing or malformed signature headers", field="signature")
    assert timestamp is not None
    ts = int(timestamp)
    if abs(now - ts) > MAX_SKEW:
        raise DeviceAuthError("timestamp outside the allowed window", field="timestamp")
    # A stored key is checked too, not only at enrollment: one enrolled before keys were
    # checked must not keep working.
    try:
        key = public_key_from_raw(public_key)
    except ClientError:
        raise DeviceAuthError(
            "the device's public key is weak or malformed", field="device"
        ) from None
    try:
        raw_sig = unb64url(signature, field="signature")
        key.verify(raw_sig, sign_input(method, path, ts, body))
    except (InvalidSignature, ClientError, ValueError):
        raise DeviceAuthError("bad signature", field="signature") from None
    return ts
