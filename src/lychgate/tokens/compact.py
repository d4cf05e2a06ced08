"""Strict reading of compact serializations, before any cryptography runs.

joserfc parses tokens too, but leniently in places that matter to us: Python's base64 decoder
skips characters outside the alphabet and ignores non-zero padding bits, so one token could be
spelled many ways, and ``json.loads`` keeps the last of two duplicate names. We therefore check
the shape ourselves first and refuse anything we would not have produced:

* only the base64url alphabet without padding (RFC 7515 section 2, "Base64url Encoding"), and
  only the canonical spelling (the unused low bits of the last character are zero);
* JSON that is UTF-8 (RFC 8259 section 8.1), has no duplicate member names (RFC 7515 section
  5.2 step 4 and RFC 7519 section 7.2 allow us to reject them), and no NaN or Infinity;
* a size cap far above anything we issue, checked before anything else.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from lychgate.strictjson import NotAnObject, parse_object
from lychgate.tokens.errors import Reason, fail

#: Longest token we look at. Ours are a few hundred characters; browsers cap a cookie at 4 KiB.
MAX_TOKEN_CHARS: Final = 8192
#: Longest protected header we decode (ours are about 100 characters).
MAX_HEADER_CHARS: Final = 1024

JWS_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# Five parts; the encrypted key may be empty (it must be, for "dir": RFC 7516 section 5.2 step 10).
JWE_SHAPE: Final = re.compile(
    r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"
)

_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_INDEX: Final = {c: i for i, c in enumerate(_ALPHABET)}


def check_shape(token: object, shape: re.Pattern[str], what: str) -> str:
    """Return ``token`` if it is a string of the given compact shape; raise otherwise."""
    if not isinstance(token, str):
        fail(Reason.MALFORMED, f"{what} is not a string")
    if len(token) > MAX_TOKEN_CHARS:
        fail(Reason.TOO_LARGE, f"{what} is longer than {MAX_TOKEN_CHARS} characters")
    if shape.fullmatch(token) is None:
        fail(Reason.MALFORMED, f"{what} is not a compact serialization")
    return token


def is_canonical(segment: str) -> bool:
    """True if ``segment`` (already known to use the alphabet) is canonical unpadded base64url.

    A length of 1 mod 4 cannot encode whole bytes. With 2 or 3 characters in the last group the
    final character carries 4 or 2 padding bits, which RFC 4648 section 3.5 says must be zero.
    """
    rest = len(segment) % 4
    if rest == 0:
        return True
    if rest == 1:
        return False
    return _INDEX[segment[-1]] & (0x0F if rest == 2 else 0x03) == 0


def b64decode(segment: str, what: str) -> bytes:
    """Decode one canonical base64url segment whose alphabet the shape check already vouched for."""
    if not is_canonical(segment):
        fail(Reason.MALFORMED, f"{what} is not canonical base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def b64encode(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def json_object(data: bytes, what: str) -> dict[str, object]:
    """Parse strict JSON that must be an object. Any failure is :attr:`Reason.MALFORMED`."""
    try:
        return parse_object(data)
    except NotAnObject as exc:
        fail(Reason.MALFORMED, f"{what} {exc}")


def decode_header(segment: str, what: str) -> dict[str, object]:
    """Decode a protected header segment (size-capped, canonical, strict JSON object)."""
    if len(segment) > MAX_HEADER_CHARS:
        fail(Reason.MALFORMED, f"{what} header is too large")
    return json_object(b64decode(segment, f"{what} header"), f"{what} header")


def freeze(value: object) -> object:
    """A read-only copy of parsed JSON: objects become mapping proxies, arrays become tuples.

    Verified claims may be shared between callers through the verification cache, so nobody
    may be able to change them in place.
    """
    if isinstance(value, dict):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    return value


def freeze_object(value: dict[str, object]) -> Mapping[str, object]:
    """:func:`freeze` for a JSON object, typed as a mapping."""
    return MappingProxyType({k: freeze(v) for k, v in value.items()})


def dumps(value: Mapping[str, object]) -> bytes:
    """Compact JSON for a header or payload we produce (no NaN, UTF-8)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode()
