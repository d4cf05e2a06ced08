"""Small helpers for token tests: read and rewrite compact serializations."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from lychgate.errors import TokenError
from lychgate.tokens import Reason


def b64d(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def header_of(token: str) -> dict[str, Any]:
    header = json.loads(b64d(token.split(".")[0]))
    assert isinstance(header, dict)
    return header


def claims_of(token: str) -> dict[str, Any]:
    claims = json.loads(b64d(token.split(".")[1]))
    assert isinstance(claims, dict)
    return claims


def flip_byte(token: str, part: int, index: int = 0) -> str:
    """Decode part ``part``, flip the low bit of byte ``index``, and re-encode it canonically."""
    parts = token.split(".")
    data = bytearray(b64d(parts[part]))
    data[index] ^= 0x01
    parts[part] = b64e(bytes(data))
    return ".".join(parts)


def expect(reason: Reason, info: pytest.ExceptionInfo[TokenError]) -> None:
    assert info.value.reason == reason, f"{info.value.reason}: {info.value}"
