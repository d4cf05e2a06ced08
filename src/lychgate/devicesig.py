"""Signed device requests (docs/sign-in-protocol.md, "Device calls").

A device proves possession of its Ed25519 key on every call by signing the method, the path
with its query, a timestamp and the SHA-256 of the body. Binding the body and path means a
captured signature cannot be moved to another request; the ±60 s window bounds replay, and
state-changing calls are single-use on the server (compare-and-set), so a replay inside the
window changes nothing.

The headers are ``Lychgate-Device``, ``Lychgate-Timestamp`` and ``Lychgate-Signature``, without
the ``X-Lychgate-`` prefix on purpose: the gateway strips every ``X-Lychgate-*`` header a client
sends (those carry identity to apps), and these must reach authz.
"""

from __future__ import annotations

import base64
import binascii
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


class DeviceAuthError(ClientError):
    """A device call's signature, key or timestamp was refused."""

    status = 401


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


def public_key_from_raw(raw: bytes) -> Ed25519PublicKey:
    if len(raw) != 32:
        raise ClientError("must be 32 bytes (Ed25519)", field="public_key")
    return Ed25519PublicKey.from_public_bytes(raw)


def verify_request(
    public_key: bytes,
    *,
    method: str,
    path: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    now: int,
) -> None:
    """Raise :class:`DeviceAuthError` unless the signature and timestamp hold."""
    # ASCII digits only: str.isdigit() takes "²", which int() then refuses (a 500).
    digits = timestamp is not None and timestamp.isascii() and timestamp.isdigit()
    if not digits or not signature or len(timestamp or "") > 12:
        raise DeviceAuthError("missing or malformed signature headers", field="signature")
    assert timestamp is not None
    ts = int(timestamp)
    if abs(now - ts) > MAX_SKEW:
        raise DeviceAuthError("timestamp outside the allowed window", field="timestamp")
    try:
        raw_sig = unb64url(signature, field="signature")
        public_key_from_raw(public_key).verify(raw_sig, sign_input(method, path, ts, body))
    except (InvalidSignature, ClientError, ValueError):
        raise DeviceAuthError("bad signature", field="signature") from None
